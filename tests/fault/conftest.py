"""Fixtures and helpers for the fault tests: real clusters, real drivers, real MLflow servers.

* ``fault_cluster`` (session): a local cluster (``cluster.local.up``): head with 0 CPUs and two
  1-CPU workers, faster GCS health checks so a lost node is noticed in seconds.
* ``fresh_cluster``: the same, for one test (the node-loss test kills a worker).
Helpers live in ``faultkit.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.local import ClusterState, stop, up

# Notice a dead node within ~3 s instead of Ray's default ~30 s.
FAST_HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3,
               "health_check_timeout_ms": 1000}


FAULT_DIR = Path(__file__).resolve().parent


def _cluster(run_dir: Path) -> ClusterState:
    # The workers import the fault trainable from tests/fault (not an installed package).
    # Trials write what they report under <run_dir>/points/<experiment>/ (see faultkit.points_dir).
    return up(run_dir, workers=2, head_cpus=0, cpus_per_worker=1, dashboard=False,
              object_store_mb=100, system_config=FAST_HEALTH, timeout_s=240,
              env={"PYTHONPATH": str(FAULT_DIR), "SC_FAULT_LOG": str(run_dir / "points")})


@pytest.fixture(scope="session")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """A session-wide local cluster (head + 2 one-CPU workers) for the fault tests."""
    run_dir = tmp_path_factory.mktemp("fault_cluster")
    state = _cluster(run_dir)
    try:
        yield state
    finally:
        stop(state)  # from memory: works even if the run dir was cleaned up


@pytest.fixture()
def fresh_cluster(tmp_path: Path) -> Iterator[ClusterState]:
    """A local cluster of its own, for a test that damages it."""
    state = _cluster(tmp_path / "cluster")
    try:
        yield state
    finally:
        stop(state)


