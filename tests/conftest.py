"""Shared pytest fixtures for every sweepcast test.

Fixtures:
    repo_root: the project root (the folder holding ``pyproject.toml``).
    curves_dir: ``../shared/data/curves`` resolved from the repo root (read-only real curves).
    mlflow_server: session-scoped real ``mlflow server`` subprocess on 127.0.0.1 with a SQLite
        backend and a local artifact destination in a temp dir; yields its ``http://`` URI.
    ray_local: session-scoped local Ray (``num_cpus=2``, no dashboard); yields nothing useful,
        it only guarantees ``ray.is_initialized()`` for the test and shuts Ray down at the end.

Heavy imports (ray, mlflow) happen inside the fixtures, so pure unit tests stay fast.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The project root (contains ``pyproject.toml``)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def curves_dir(repo_root: Path) -> Path:
    """The shared real learning curves, ``../shared/data/curves`` from the repo root.

    Skips (with the path in the message) only if the shared data folder is absent.
    """
    path = (repo_root / ".." / "shared" / "data" / "curves").resolve()
    if not path.is_dir():
        pytest.skip(f"shared curves not found at {path}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mlflow_executable() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "mlflow"]


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} was up")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:  # not up yet
            last = e
        time.sleep(0.25)
    raise TimeoutError(f"{url} not healthy after {timeout_s}s (last error: {last})")


def start_mlflow_server(root: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start a real ``mlflow server`` on 127.0.0.1 storing under ``root``.

    Returns ``(process, uri)``. The process is the leader of a new session so that
    :func:`stop_mlflow_server` can stop it and its workers by process group. Reusing the same
    ``root`` and ``port`` after a stop restarts the same server (used by outage tests).
    """
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        *_mlflow_executable(),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(root / f"server-{port}.log", "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{uri}/health", timeout_s=120, proc=proc)
    except (RuntimeError, TimeoutError):
        stop_mlflow_server(proc)
        tail = (root / f"server-{port}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"mlflow server failed to start on {uri}; log tail:\n{tail}")
    return proc, uri


def stop_mlflow_server(proc: subprocess.Popen, timeout_s: float = 5) -> None:
    """Stop a server started by :func:`start_mlflow_server` (its whole process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (random free port); yields its URI.

    Backend: ``sqlite:///<tmp>/mlflow.db``; artifacts proxied to ``<tmp>/artifacts``.
    Shared by the whole session: tests must use their own experiment names.
    """
    root = tmp_path_factory.mktemp("mlflow_server")
    proc, uri = start_mlflow_server(root)
    try:
        yield uri
    finally:
        stop_mlflow_server(proc)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A session-wide local Ray: ``ray.init(num_cpus=2, include_dashboard=False)``.

    If Ray is already initialised (by another fixture) it is reused and left running.
    """
    import ray

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            # Keep trials CPU-only and single-threaded on the shared 2-core CI box.
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}},
        )
        started = True
    try:
        yield None
    finally:
        if started:
            ray.shutdown()
