"""Fixtures and helpers for the fault tests: real clusters, real drivers, real MLflow servers.

* ``fault_cluster`` (session): a local cluster (``cluster.local.up``): head with 0 CPUs and two
  1-CPU workers, faster GCS health checks so a lost node is noticed in seconds.
* ``fresh_cluster``: the same, for one test (the node-loss test kills a worker).
* ``SweepRun``: a ``sweepcast run`` / ``sweepcast resume`` driver as a subprocess (its own
  session, so a test can SIGKILL it), pointed at a cluster by ``RAY_ADDRESS``.
* ``reported_points`` / ``mlflow_trials``: what the trials reported (the trainable's own log)
  and what MLflow holds, for comparison.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.local import ClusterState, down, up

FAULT_DIR = Path(__file__).resolve().parent
REPO = FAULT_DIR.parents[1]
TRAINABLE = "sc_fault_trainables:train"
# Notice a dead node within ~3 s instead of Ray's default ~30 s.
FAST_HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3,
               "health_check_timeout_ms": 1000}


def _cluster(run_dir: Path) -> ClusterState:
    return up(run_dir, workers=2, head_cpus=0, cpus_per_worker=1, dashboard=False,
              object_store_mb=100, system_config=FAST_HEALTH, timeout_s=240)


@pytest.fixture(scope="session")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """A session-wide local cluster (head + 2 one-CPU workers) for the fault tests."""
    run_dir = tmp_path_factory.mktemp("fault_cluster")
    state = _cluster(run_dir)
    try:
        yield state
    finally:
        down(run_dir)


@pytest.fixture()
def fresh_cluster(tmp_path: Path) -> Iterator[ClusterState]:
    """A local cluster of its own, for a test that damages it."""
    state = _cluster(tmp_path / "cluster")
    try:
        yield state
    finally:
        down(tmp_path / "cluster")


def write_config(path: Path, name: str, storage: Path, **over: Any) -> Path:
    """A sweep config for the fault trainable; ``over`` replaces top-level keys."""
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": TRAINABLE,
        "metric": "score",
        "mode": "max",
        "max_epochs": 8,
        "num_samples": 1,
        "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
        "search": {
            "algorithm": "grid",
            "seed": 0,
            "space": {
                "x": {"type": "grid", "values": [0.2, 0.5, 0.7, 0.9]},
                "sleep": {"type": "choice", "values": [0.5]},
                "fail_above": {"type": "choice", "values": [-1.0]},
            },
        },
        "pruning": {"scheduler": "fifo"},
        "tracking": {"experiment": name},
        "failure": {"max_failures": 0},
        "storage_path": str(storage),
    }
    cfg.update(over)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def sweep_env(gcs_address: str | None, mlflow_uri: str, log_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    if gcs_address:
        env["RAY_ADDRESS"] = gcs_address
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    env["SC_FAULT_LOG"] = str(log_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(FAULT_DIR), str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    env["RAY_DEDUP_LOGS"] = "0"
    log_dir.mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class SweepRun:
    """A ``sweepcast`` driver subprocess (``run`` or ``resume``) with its output in a file."""

    proc: subprocess.Popen
    out: Path

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], cwd: Path, out: Path) -> SweepRun:
        exe = Path(sys.executable).with_name("sweepcast")
        with open(out, "ab") as f:
            proc = subprocess.Popen([str(exe), *args], cwd=cwd, env=env, stdout=f,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return cls(proc, out)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"driver still running after {timeout_s}s; output:\n"
                                 f"{self.output()[-4000:]}") from None

    def kill(self) -> None:
        """SIGKILL the driver (only it: no cleanup handler runs)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.out.read_text(errors="replace")


def wait_for(pred: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.5,
             run: SweepRun | None = None) -> Any:
    """Poll ``pred`` until truthy; fail with ``what`` (and the driver's output) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(f"driver exited ({run.proc.returncode}) while waiting for "
                                 f"{what}; output:\n{run.output()[-4000:]}")
        time.sleep(poll_s)
    tail = f"; driver output:\n{run.output()[-4000:]}" if run else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{tail}")


def reported_points(log_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """trial id -> every point the trainable reported (in order, with pid/node of the report)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(log_dir.glob("*.jsonl")):
        out[f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


@dataclass
class MlflowTrial:
    run_id: str
    trial_id: str
    status: str  # MLflow run status
    sweepcast_status: str | None
    history: dict[int, float]  # step -> value of "score" (the last if a step repeats)
    n_points: int  # number of "score" points, duplicates included
    artifacts: list[str]


def mlflow_sweep(uri: str, experiment: str) -> tuple[list[Any], list[MlflowTrial]]:
    """(parent runs, child trials) of ``experiment`` on the server at ``uri``."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweepcast.kind") == "sweep"]
    trials = []
    for r in runs:
        if r.data.tags.get("sweepcast.kind") != "trial":
            continue
        hist = c.get_metric_history(r.info.run_id, "score")
        trials.append(MlflowTrial(
            run_id=r.info.run_id,
            trial_id=r.data.tags.get("sweepcast.trial_id", ""),
            status=r.info.status,
            sweepcast_status=r.data.tags.get("sweepcast.status"),
            history={m.step: m.value for m in hist},
            n_points=len(hist),
            artifacts=[a.path for a in c.list_artifacts(r.info.run_id)],
        ))
    return parents, trials
