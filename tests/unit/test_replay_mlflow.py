"""``--from-mlflow``: a past sweep's curves read back from a real MLflow store (SQLite file)."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow


def test_load_sweep_curves_keeps_full_runs_and_skips_the_parent(tmp_path):
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking.history import load_sweep_curves
    from search.replay.sim import FifoReplay, replay

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("past-sweep", artifact_location=str(tmp_path / "art"))
    parent = c.create_run(exp, tags={"sweepcast.kind": "sweep"}).info.run_id
    c.log_metric(parent, "val_loss", 0.1, step=1)
    curves = {"t0": [0.9, 0.5, 0.4], "t1": [0.8, 0.7, float("nan")], "t2": [0.9, 0.6]}
    for tid, vals in curves.items():
        run = c.create_run(exp, tags={"sweepcast.kind": "trial", "sweepcast.trial_id": tid,
                                      "mlflow.parentRunId": parent}).info.run_id
        c.log_batch(run, metrics=[Metric("val_loss", v, 0, s) for s, v in enumerate(vals, 1)])
    task = load_sweep_curves("past-sweep", metric="val_loss", mode="min", tracking_uri=uri)
    assert task.config_ids == ("t0", "t1")  # t2 stopped early (2 of 3 epochs): left out
    assert task.horizon == 3 and task.mode == "min"
    assert task.values[0].tolist() == [0.9, 0.5, 0.4] and math.isnan(task.values[1, 2])
    r = replay(task, FifoReplay(), workers=1)
    assert r.epochs == 6
    with pytest.raises(ValueError, match="'nope' not found"):
        load_sweep_curves("nope", metric="val_loss", mode="min", tracking_uri=uri)
    with pytest.raises(ValueError, match="no run with metric 'acc'"):
        load_sweep_curves("past-sweep", metric="acc", mode="max", tracking_uri=uri)
    assert mlflow is not None
