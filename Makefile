# sweepcast: the two set-up commands of the README live here.
#   make quickstart   install, then run examples/quickstart.yaml on local Ray into sqlite:///mlflow.db
#   make test         install (Python deps + Debian chromium for the browser test), then lint + tests
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system-deps quickstart test lint ui clean

install: $(VENV)/.installed

# torch is pinned and installed first: the pin takes the CPU build already on disk.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Debian's Chromium + ChromeDriver for the MLflow UI browser test (no browser download).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

quickstart: install
	$(BIN)/sweepcast run examples/quickstart.yaml
	@echo
	@echo "Browse the sweep:  $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000"
	@echo "                   then open http://127.0.0.1:5000"

lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check orchestrator search trials cluster benchmarks tests

test: install system-deps lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts sweepcast_results test-artifacts
