"""Fault 3: the MLflow server is stopped for 30 s mid-sweep, then started again.

The sweep keeps running, and not a single metric point is lost: every point every trial
reported (the trainable's own log) is in MLflow at the right step with the right value.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faultkit import (
    SweepRun,
    mlflow_sweep,
    points_dir,
    reported_points,
    start_mlflow_server,
    stop_mlflow_server,
    sweep_env,
    wait_for,
    write_config,
)

from cluster.local import ClusterState

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.integration]

OUTAGE_S = 30.0


def test_mlflow_outage_loses_no_metric_point(fault_cluster: ClusterState, tmp_path: Path) -> None:
    root = tmp_path / "mlflow"
    proc, uri = start_mlflow_server(root)
    port = int(uri.rsplit(":", 1)[1])
    name = "fault-mlflow-outage"
    cfg = write_config(
        tmp_path / "sweep.yaml", name, tmp_path / "results",
        max_epochs=16,
        search={"algorithm": "grid", "seed": 0, "space": {
            "x": {"type": "grid", "values": [0.3, 0.5, 0.7, 0.9]},
            "sleep": {"type": "choice", "values": [1.0]},
            "fail_above": {"type": "choice", "values": [-1.0]},
        }},
    )
    logs = points_dir(fault_cluster, name)
    env = sweep_env(fault_cluster, uri)
    run = SweepRun.start(["run", str(cfg)], env, tmp_path, tmp_path / "run.out")
    try:
        wait_for(lambda: sum(len(v) for v in reported_points(logs).values()) >= 2, 180,
                 "the first reported points", run=run)
        stop_mlflow_server(proc)
        t_down = time.monotonic()
        n_before = sum(len(v) for v in reported_points(logs).values())
        time.sleep(OUTAGE_S)
        during = sum(len(v) for v in reported_points(logs).values()) - n_before
        still_running = run.proc.poll() is None
        proc, _ = start_mlflow_server(root, port=port)
        outage = time.monotonic() - t_down
        rc = run.wait(timeout_s=300)
        out = run.output()
        assert still_running, f"the sweep stopped during the outage:\n{out[-3000:]}"
        assert during > 0, "no trial reported during the outage: the test proves nothing"
        assert rc == 0, out[-3000:]

        points = reported_points(logs)
        parents, trials = mlflow_sweep(uri, name)
        assert len(parents) == 1 and len(trials) == 4
        lost = 0
        for t in trials:
            reported = {p["epoch"]: p["quality"] for p in points[t.trial_id]}
            lost += sum(1 for e in reported if e not in t.history)
            for e, v in reported.items():
                if e in t.history:
                    assert t.history[e] == pytest.approx(v, rel=1e-9), (t.trial_id, e)
            assert t.n_points == len(reported), (t.trial_id, t.n_points, len(reported))
            assert t.status == "FINISHED" and t.sweepcast_status == "completed"
        assert lost == 0, f"{lost} metric points lost"
        print(f"outage {outage:.1f}s, {during} points reported during it, "
              f"{sum(len(v) for v in points.values())} points reported in all, {lost} lost")
    finally:
        run.kill()
        stop_mlflow_server(proc)
