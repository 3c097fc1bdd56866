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


def test_replay_cli_reads_a_sweeps_own_experiment_from_its_config(tmp_path, monkeypatch):
    """`sweepcast replay --config sweep.yaml`: that sweep's experiment, metric and mode, in the
    store `sweepcast run` uses; an unknown experiment or a dead server: exit non-zero, named."""
    import json

    from click.testing import CliRunner
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from orchestrator.commands.replay import command

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("past-sweep", artifact_location=str(tmp_path / "art"))
    for i in range(6):
        run = c.create_run(exp, tags={"sweepcast.kind": "trial", "sweepcast.trial_id": f"t{i}"}).info.run_id
        c.log_batch(run, metrics=[Metric("val_loss", 1.0 / (s + i), 0, s) for s in range(1, 6)])
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        "name: s\ntrainable: trials.examples.mlp:train\nmetric: val_loss\nmode: min\n"
        "max_epochs: 5\nsearch: {algorithm: random, space: {lr: {type: loguniform, low: 1.0e-4, high: 0.1}}}\n"
        "tracking: {experiment: past-sweep}\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)  # restored after the test; the CLI sets them
    out = tmp_path / "r.json"
    res = CliRunner().invoke(command, ["--config", str(cfg), "--schedulers", "fifo", "--seeds", "1",
                                       "--workers", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["settings"]["source"] == "mlflow:past-sweep"
    assert [r["fifo_epochs"] for r in data["results"]] == [30]
    bad = CliRunner().invoke(command, ["--config", str(cfg), "--from-mlflow", "nope", "--schedulers", "fifo"])
    assert bad.exit_code == 2 and "'nope' not found" in bad.output
    dead = CliRunner().invoke(command, ["--config", str(cfg), "--schedulers", "fifo",
                                        "--tracking-uri", "http://user:secret@127.0.0.1:9/"])
    assert dead.exit_code == 1 and "cannot read 'past-sweep'" in dead.output
    assert "secret" not in dead.output
