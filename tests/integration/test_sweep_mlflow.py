"""End-to-end sweeps on a real local Ray into a real ``mlflow server``, read back via MlflowClient.

1. The built-in MLP (3 trials x 3 epochs, Optuna TPE, FIFO): one parent, 3 nested children,
   every reported point with its step, statuses FINISHED/completed, params logged.
2. A fast synthetic trainable on a grid with ASHA: trials ASHA stops are KILLED/pruned with a
   stop reason, a raising trial is FAILED with its traceback as an artifact, a fake token in
   the search space is redacted everywhere (params, tags, config artifact).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAKE_TOKEN = "hf_FAKEtokenFAKEtokenFAKEtokenFAKE1234"


def synthetic_train(config: dict[str, Any]) -> None:
    """Reports ``val_accuracy = quality * (1 - exp(-epoch / 3))`` per epoch; quality < 0 raises
    before its first report (so no scheduler can stop it first)."""
    from trials.api import report

    q = float(config["quality"])
    for epoch in range(1, int(config["max_epochs"]) + 1):
        if q < 0:
            raise ValueError("synthetic failure before any report")
        time.sleep(0.3)  # let the scheduler see results in arrival order
        report(epoch, val_accuracy=q * (1 - math.exp(-epoch / 3)), train_loss=1.0 / epoch)


class Recorder:
    """A Tune callback remembering every result the trials reported (the ground truth)."""

    def __new__(cls):
        from ray import tune

        class _Rec(tune.Callback):
            def __init__(self) -> None:
                self.points: dict[str, list[tuple[int, dict[str, Any]]]] = {}

            def on_trial_result(self, iteration, trials, trial, result, **info):
                self.points.setdefault(trial.trial_id, []).append((int(result["epoch"]), {
                    k: v for k, v in result.items()
                    if k in ("val_accuracy", "val_loss", "train_loss", "lr")
                }))

        return _Rec()


def _write(tmp: Path, cfg: dict[str, Any]) -> Path:
    p = tmp / f"{cfg['name']}.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def _runs(uri: str, experiment: str) -> tuple[Any, list[Any], Any]:
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return c, parents, children


def _history(c: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in c.get_metric_history(run_id, key))


def _assert_same_points(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def test_mlp_sweep_lands_in_mlflow_with_every_point(
    mlflow_server, ray_local, tmp_path, monkeypatch
) -> None:
    from orchestrator.config import load_config
    from orchestrator.sweep import run_sweep

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    experiment = "it-mlp"
    path = _write(tmp_path, {
        "name": "it-mlp", "trainable": "trials.examples.mlp:train", "metric": "val_accuracy",
        "mode": "max", "max_epochs": 3, "num_samples": 3, "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
        "search": {"algorithm": "optuna-tpe", "seed": 1, "space": {
            "lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
            "width": {"type": "choice", "values": [16, 32]},
        }},
        "pruning": {"scheduler": "fifo"},
        "tracking": {"experiment": experiment},
        "storage_path": str(tmp_path / "results"),
    })
    rec = Recorder()
    result = run_sweep(load_config(path), out=sys.stdout, extra_callbacks=[rec])
    assert result.exit_code == 0
    assert result.counts == {"completed": 3, "pruned": 0, "failed": 0}

    c, parents, children = _runs(mlflow_server, experiment)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.run_id == result.parent_run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_completed"] == 3
    assert parent.data.params["search.algorithm"] == "optuna-tpe"
    by_trial = {r.data.tags["sweepcast.trial_id"]: r for r in children}
    assert set(by_trial) == set(rec.points)
    for tid, run in by_trial.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.tags["sweepcast.status"] == "completed"
        assert set(run.data.params) >= {"lr", "width", "max_epochs"}
        reported = rec.points[tid]
        assert [e for e, _ in reported] == [1, 2, 3]
        for key in ("val_accuracy", "val_loss", "train_loss"):
            want = [(e, float(m[key])) for e, m in reported]
            _assert_same_points(_history(c, run.info.run_id, key), want)
    # the tracker's state for `sweepcast resume` names these runs
    state = json.loads((Path(result.experiment_path) / "sweepcast_tracker.json").read_text())
    assert state["parent_run_id"] == parent.info.run_id
    assert {t: v["run_id"] for t, v in state["trials"].items()} == {
        t: r.info.run_id for t, r in by_trial.items()
    }


def test_asha_sweep_marks_pruned_and_failed_trials_and_redacts_secrets(
    mlflow_server, ray_local, tmp_path, monkeypatch
) -> None:
    from ray import cloudpickle

    from orchestrator.config import load_config
    from orchestrator.sweep import run_sweep

    # Ray workers cannot import this test module: ship the trainable by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    experiment = "it-asha"
    max_epochs = 6
    qualities = [0.9, 0.8, 0.3, 0.2, -1.0]
    path = _write(tmp_path, {
        "name": "it-asha", "trainable": f"{__name__}:synthetic_train",
        "metric": "val_accuracy", "mode": "max", "max_epochs": max_epochs, "num_samples": 1,
        "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0},
        "search": {"algorithm": "grid", "seed": 0, "space": {
            "quality": {"type": "grid", "values": qualities},
            "api_token": {"type": "choice", "values": [FAKE_TOKEN]},
        }},
        "pruning": {"scheduler": "asha", "grace_period": 1, "reduction_factor": 2},
        "tracking": {"experiment": experiment},
        "storage_path": str(tmp_path / "results"),
    })
    rec = Recorder()
    result = run_sweep(load_config(path), out=sys.stdout, extra_callbacks=[rec])
    counts = result.counts
    assert counts["failed"] == 1
    assert counts["pruned"] >= 1, result.trials  # ASHA cuts the weak late trials
    assert result.exit_code == 3  # a trial failed

    c, parents, children = _runs(mlflow_server, experiment)
    assert len(parents) == 1 and len(children) == len(qualities)
    status_map = {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
    for run in children:
        tid = run.data.tags["sweepcast.trial_id"]
        ledger = result.trials[tid]
        assert run.info.status == status_map[ledger["status"]], (tid, ledger)
        assert run.data.tags["sweepcast.status"] == ledger["status"]
        hist = _history(c, run.info.run_id, "val_accuracy") if ledger["epochs"] else []
        want = [(e, float(m["val_accuracy"])) for e, m in rec.points.get(tid, [])]
        _assert_same_points(hist, want)
        if ledger["status"] == "pruned":
            assert ledger["epochs"] < max_epochs
            assert run.data.tags["sweepcast.stop_reason"]
        if ledger["status"] == "completed":
            assert ledger["epochs"] == max_epochs
        if ledger["status"] == "failed":
            assert float(run.data.params["quality"]) < 0
            local = c.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))
            assert "synthetic failure before any report" in Path(local).read_text()
        # the fake token never reaches MLflow
        assert FAKE_TOKEN not in json.dumps(
            [run.data.params, run.data.tags], default=str
        ), tid
        assert run.data.params.get("api_token") != FAKE_TOKEN
    parent = parents[0]
    assert FAKE_TOKEN not in json.dumps([parent.data.params, parent.data.tags])
    cfg_file = c.download_artifacts(parent.info.run_id, "sweep_config.yaml", str(tmp_path))
    text = Path(cfg_file).read_text()
    assert "api_token" in text and FAKE_TOKEN not in text
    assert parent.data.metrics["trials_failed"] == 1
