"""Fault 4: a trainable that raises on some configs.

Those trials end FAILED (after their retries) with the traceback as an MLflow artifact; the
others finish; ``sweepcast run`` exits 3 and its final table names the failures.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faultkit import SweepRun, mlflow_sweep, points_dir, reported_points, sweep_env, write_config
from mlflow.tracking import MlflowClient

from cluster.local import ClusterState

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.integration]


def test_raising_trials_fail_with_traceback_others_finish(
    fault_cluster: ClusterState, mlflow_server: str, tmp_path: Path
) -> None:
    name = "fault-trial-errors"
    cfg = write_config(
        tmp_path / "sweep.yaml", name, tmp_path / "results",
        max_epochs=4,
        failure={"max_failures": 1},
        search={"algorithm": "grid", "seed": 0, "space": {
            "x": {"type": "grid", "values": [0.2, 0.4, 0.6, 0.8]},
            "sleep": {"type": "choice", "values": [0.3]},
            "fail_above": {"type": "choice", "values": [0.5]},
        }},
    )
    logs = points_dir(fault_cluster, name)
    env = sweep_env(fault_cluster, mlflow_server)
    run = SweepRun.start(["run", str(cfg)], env, tmp_path, tmp_path / "run.out")
    rc = run.wait(timeout_s=240)
    out = run.output()

    assert rc == 3, out[-3000:]  # the sweep ran, some trials failed for good
    assert "4 trials: 2 completed, 0 pruned, 2 failed" in out, out[-3000:]
    # final table rows (progress lines start with "[")
    failed_rows = [ln for ln in out.splitlines()
                   if re.match(r"^\w+\s+failed\s", ln) and "injected failure" in ln]
    assert len(failed_rows) == 2, out[-3000:]

    parents, trials = mlflow_sweep(mlflow_server, name)
    assert len(parents) == 1 and len(trials) == 4
    by_x = {}
    client = MlflowClient(tracking_uri=mlflow_server)
    for t in trials:
        x = float(client.get_run(t.run_id).data.params["x"])
        by_x[x] = t
    for x in (0.6, 0.8):
        t = by_x[x]
        assert t.status == "FAILED" and t.sweepcast_status == "failed"
        assert "error.txt" in t.artifacts
        text = Path(client.download_artifacts(t.run_id, "error.txt", str(tmp_path))).read_text()
        # Ray's traceback: the frames down to the raise in the trainable, then the error
        assert "ValueError: injected failure" in text
        assert "sc_fault_trainables.py" in text and 'raise ValueError(f"injected failure' in text
        assert client.get_run(t.run_id).data.tags.get("sweepcast.retries") == "1"
        # epoch 1 once; the retry restarts from its checkpoint and fails again at epoch 2
        assert set(t.history) == {1} and t.n_points == 1
    for x in (0.2, 0.4):
        t = by_x[x]
        assert t.status == "FINISHED" and t.sweepcast_status == "completed"
        assert sorted(t.history) == [1, 2, 3, 4]
    # every point the trials reported reached MLflow
    points = reported_points(logs)
    for t in trials:
        assert {p["epoch"] for p in points[t.trial_id]} == set(t.history)
