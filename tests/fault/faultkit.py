"""Helpers for the fault tests (see ``conftest.py`` for the fixtures).

* ``write_config``: a sweep config for the fault trainable (``sc_fault_trainables``).
* ``SweepRun``: a ``sweepcast run`` / ``sweepcast resume`` driver as a subprocess (its own
  session, so a test can SIGKILL it), pointed at a cluster by ``RAY_ADDRESS``.
* ``reported_points`` / ``mlflow_sweep``: what the trials reported (the trainable's own log)
  and what MLflow holds, for comparison; ``wait_reporters_gone``: until the processes that
  reported have exited (a killed driver's trials outlive it for a moment).
* ``start_mlflow_server`` / ``stop_mlflow_server``: the root conftest's, loaded by path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.local import _pid_alive  # a zombie counts as gone

FAULT_DIR = Path(__file__).resolve().parent
REPO = FAULT_DIR.parents[1]
TRAINABLE = "sc_fault_trainables:train"


def _root_conftest() -> Any:
    spec = importlib.util.spec_from_file_location("sc_root_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_root = _root_conftest()
start_mlflow_server = _root.start_mlflow_server
stop_mlflow_server = _root.stop_mlflow_server


def write_config(path: Path, name: str, storage: Path, **over: Any) -> Path:
    """A sweep config for the fault trainable; ``over`` replaces top-level keys."""
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": TRAINABLE,
        "metric": "quality",
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


def points_dir(cluster: Any, experiment: str) -> Path:
    """Where the trials of ``experiment`` on ``cluster`` log what they report."""
    return Path(cluster.run_dir) / "points" / experiment


def _driver_env(mlflow_uri: str) -> dict[str, str]:
    """What every fault test's driver needs: this environment without ``RAY_ADDRESS``, the
    MLflow URI, the fault trainables importable, one thread per trial, no Tune file loggers."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    env["PYTHONPATH"] = os.pathsep.join([str(FAULT_DIR), str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    return env


def sweep_env(cluster: Any, mlflow_uri: str) -> dict[str, str]:
    """Environment for a driver on ``cluster`` (a ``ClusterState``)."""
    env = _driver_env(mlflow_uri)
    env.update(cluster.client_env())
    env["RAY_DEDUP_LOGS"] = "0"
    return env


def local_driver_env(mlflow_uri: str, points: Path, **extra: str) -> dict[str, str]:
    """Environment for a driver that starts its own local Ray (no cluster), reporting points
    under ``points``; ``extra`` variables are added."""
    env = _driver_env(mlflow_uri)
    env.update(extra)
    env["SC_FAULT_LOG"] = str(points)
    env.pop("SWEEPCAST_STORAGE_PATH", None)
    return env


def grid(values: list[float], sleep: float = 0.5) -> dict[str, Any]:
    """A grid search over the fault trainable's ``x`` (no injected failure)."""
    return {"algorithm": "grid", "seed": 0, "space": {
        "x": {"type": "grid", "values": list(values)},
        "sleep": {"type": "choice", "values": [sleep]},
        "fail_above": {"type": "choice", "values": [-1.0]},
    }}


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


def wait_reporters_gone(log_dir: Path, timeout_s: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Wait until every process that reported a point has exited; return the points then.

    A SIGKILLed driver's trial actors run on until Ray notices the job is dead and kills them
    (about a second): a point one reports meanwhile is the old run's, not the resume's. The
    fault clusters run on this machine, so the reporting pids are local.
    """
    pids = {int(p["pid"]) for ps in reported_points(log_dir).values() for p in ps}
    wait_for(lambda: not any(_pid_alive(pid) for pid in pids), timeout_s,
             f"the killed run's trial processes {sorted(pids)} to exit")
    return reported_points(log_dir)


@dataclass
class MlflowTrial:
    run_id: str
    trial_id: str
    status: str  # MLflow run status
    sweepcast_status: str | None
    history: dict[int, float]  # step -> value of "quality" (the last if a step repeats)
    n_points: int  # number of "quality" points, duplicates included
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
        hist = c.get_metric_history(r.info.run_id, "quality")
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
