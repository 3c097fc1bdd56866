"""An in-memory :class:`Tracker` for tests: records everything in plain dicts, synchronously."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from orchestrator.tracking.base import Tracker


def _new_run() -> dict[str, Any]:
    return {
        "run_id": None,
        "name": None,
        "params": {},
        "tags": {},
        "metrics": {},  # name -> [(step, value), ...] in logging order
        "artifacts": {},  # "dir/name" -> bytes
        "status": "RUNNING",
    }


_MLFLOW_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
_SWEEP_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


class InMemoryTracker(Tracker):
    """Records the sweep in :attr:`parent` and :attr:`trials` (run dicts, see ``_new_run``).

    Statuses use MLflow's vocabulary (``FINISHED`` / ``KILLED`` / ``FAILED``) so that tests
    can compare trackers. Run ids are ``mem-0``, ``mem-1``, ...
    """

    _ids = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.parent: dict[str, Any] = _new_run()
        self.trials: dict[str, dict[str, Any]] = {}
        self.config: dict[str, Any] | None = None
        self.reopened: list[str] = []

    def _run(self, key: str | None) -> dict[str, Any]:
        return self.parent if key is None else self.trials[key]

    def _record_start_sweep(self, name, config, params, tags) -> str:
        if self.parent["run_id"] is None:
            self.parent["run_id"] = self._parent_run_id or f"mem-{next(self._ids)}"
        self.parent["name"] = name
        self.parent["params"].update(params)
        self.parent["tags"].update({"mlflow.runName": name, **tags})
        self.parent["status"] = "RUNNING"
        self.config = config
        self.parent["artifacts"]["sweep_config.json"] = json.dumps(
            config, indent=2, default=str
        ).encode()
        return self.parent["run_id"]

    def _record_start_trial(self, trial_id, params, tags) -> None:
        run = self.trials.setdefault(trial_id, _new_run())
        if run["run_id"] is None:
            run["run_id"] = f"mem-{next(self._ids)}"
        run["name"] = trial_id
        run["params"].update(params)
        run["tags"].update(
            {"mlflow.parentRunId": self.parent["run_id"], "mlflow.runName": trial_id, **tags}
        )

    def _record_reopen_trial(self, trial_id) -> None:
        run = self.trials.setdefault(trial_id, _new_run())
        run["status"] = "RUNNING"
        self.reopened.append(trial_id)

    def _record_metrics(self, key, step, values, timestamp_ms) -> None:
        run = self._run(key)
        for k, v in values.items():
            run["metrics"].setdefault(k, []).append((step, v))

    def _record_tags(self, key, tags) -> None:
        self._run(key)["tags"].update(tags)

    def _record_artifact(self, key, artifact, artifact_path) -> None:
        if isinstance(artifact, tuple):
            name, data = artifact
        else:
            name, data = Path(artifact).name, Path(artifact).read_bytes()
        full = f"{artifact_path.strip('/')}/{name}" if artifact_path else name
        self._run(key)["artifacts"][full] = data

    def _record_end_trial(self, trial_id, status) -> None:
        self.trials[trial_id]["status"] = _MLFLOW_STATUS[status]

    def _record_end_sweep(self, status) -> None:
        self.parent["status"] = _SWEEP_STATUS[status]

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def trial_run_id(self, trial_id: str) -> str | None:
        run = self.trials.get(trial_id)
        return None if run is None else run["run_id"]

    def restore(self, state) -> None:
        super().restore(state)
        self.parent["run_id"] = state.get("parent_run_id")
        for t, info in (state.get("trials") or {}).items():
            run = self.trials.setdefault(t, _new_run())
            run["run_id"] = info.get("run_id")
