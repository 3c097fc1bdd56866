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

    Fails (with the path in the message) if the shared data folder is absent: the checkout must
    sit beside ``shared/`` as in CI; a missing data set is not a reason to pass.
    """
    path = (repo_root / ".." / "shared" / "data" / "curves").resolve()
    if not path.is_dir():
        pytest.fail(f"shared curves not found at {path} (clone the project beside shared/)")
    return path


from servers import start_mlflow_server, stop_mlflow_server


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
