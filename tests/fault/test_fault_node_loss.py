"""Fault 1: a worker node's raylet is SIGKILLed while trials run on it.

Its trials are retried (``max_failures``) from their last checkpoint on the remaining node, the
sweep completes, and MLflow has every trial exactly once with a terminal status and no gap in
its metric history (the trainable checkpoints every epoch, so a retry loses no epoch).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from faultkit import (
    SweepRun,
    mlflow_sweep,
    points_dir,
    reported_points,
    sweep_env,
    wait_for,
    write_config,
)

from cluster.local import ClusterState, raylet_pid

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.integration]


def test_worker_raylet_sigkill_retries_trials_on_remaining_node(
    fresh_cluster: ClusterState, mlflow_server: str, tmp_path: Path
) -> None:
    name = "fault-node-loss"
    max_epochs = 12
    cfg = write_config(
        tmp_path / "sweep.yaml", name, tmp_path / "results",
        max_epochs=max_epochs,
        failure={"max_failures": 3},
        search={"algorithm": "grid", "seed": 0, "space": {
            "x": {"type": "grid", "values": [0.3, 0.5, 0.7, 0.9]},
            "sleep": {"type": "choice", "values": [1.0]},
            "fail_above": {"type": "choice", "values": [-1.0]},
        }},
    )
    logs = points_dir(fresh_cluster, name)
    env = sweep_env(fresh_cluster, mlflow_server)
    victim = fresh_cluster.node("sweepcast-worker-0")
    run = SweepRun.start(["run", str(cfg)], env, tmp_path, tmp_path / "run.out")

    def on_victim_with_progress() -> list[str]:
        # trials on worker-0 that are well into training but far from done
        pts = reported_points(logs)
        return [t for t, ps in pts.items() if ps and ps[-1]["node_id"] == victim.node_id
                and 3 <= len(ps) <= max_epochs - 5]

    on_victim = wait_for(on_victim_with_progress, 240, "a trial with 3 epochs on worker-0",
                         run=run)
    pid = raylet_pid(fresh_cluster, victim.name)
    os.kill(pid, signal.SIGKILL)
    rc = run.wait(timeout_s=420)
    out = run.output()
    assert rc == 0, out[-4000:]

    points = reported_points(logs)
    parents, trials = mlflow_sweep(mlflow_server, name)
    assert len(parents) == 1
    assert len(trials) == 4 and len({t.trial_id for t in trials}) == 4  # each trial once
    retried = []
    for t in trials:
        assert t.status == "FINISHED" and t.sweepcast_status == "completed", t
        assert sorted(t.history) == list(range(1, max_epochs + 1)), (t.trial_id, t.history)
        ps = points[t.trial_id]
        assert {p["epoch"]: p["quality"] for p in ps} == pytest.approx(t.history)
        if len({p["pid"] for p in ps}) > 1:
            retried.append(t.trial_id)
            first_pid = ps[0]["pid"]
            k = next(i for i, p in enumerate(ps) if p["pid"] != first_pid)
            # retried on the surviving node, from its last checkpoint
            assert all(p["node_id"] != victim.node_id for p in ps[k:]), ps
            assert ps[k]["resumed_from"] >= ps[k - 1]["epoch"] - 1, (ps[k - 1], ps[k])
    assert set(on_victim) <= set(retried), (on_victim, retried)
    assert "retry" in out
    print(f"trials completed: {len(trials)}, retried: {len(retried)} {sorted(retried)}, "
          f"points lost: 0")
