"""Scoring in a real Ray Tune run, recorded in a real MLflow server.

A 4-trial grid on local Ray: a good trial, a better one, one that reports NaN, one whose config
carries a fake GitHub token; the sweep declares a two-step pipeline and the good trial reads an
input its step did not declare (``trials.api.read_input``), which the coupling penalty counts. The scorer runs as a Tune callback (and, with ``objective:
score``, as a scheduler wrapper whose inner scheduler must see ``score`` in every result).
Read back through ``MlflowClient``: the NaN and token trials are penalised and gated (tags,
metrics), the token never reaches MLflow, the ranking table is on the parent run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "ghp_" + "Q7" * 18
SETUPS = [
    {"kind": "good", "final": 0.8},
    {"kind": "better", "final": 0.9},
    {"kind": "nan", "final": 0.95},
    {"kind": "leaky", "final": 0.97, "hub_token": TOKEN},
]


def _train(config: dict[str, Any]) -> None:
    from trials.api import read_input, report

    s = config["setup"]
    read_input("load", "dataset")  # declared in PIPELINE
    read_input("train", "load")  # declared
    if s["kind"] == "good":
        read_input("train", "dataset")  # undeclared: train reads the raw data behind load's back
    for epoch in range(1, config["max_epochs"] + 1):
        v = s["final"] * epoch / config["max_epochs"]
        if s["kind"] == "nan" and epoch == config["max_epochs"]:
            v = math.nan
        report(epoch, acc=v, loss=1.0 - v)


PIPELINE = {"steps": [
    {"name": "load", "responsibilities": ["read"], "inputs": ["dataset"]},
    {"name": "train", "responsibilities": ["fit"], "inputs": ["load"]},
]}


def _cfg(objective: str):
    from orchestrator.config import SweepConfig

    return SweepConfig.model_validate({
        "name": "scoring-it", "trainable": "trials.examples.mlp:train", "metric": "acc",
        "mode": "max", "max_epochs": 3, "num_samples": 4,
        # (the Tuner below samples its own grid; this space only feeds the hygiene check)
        "search": {"algorithm": "random", "space": {"x": {"type": "uniform", "low": 0, "high": 1}}},
        "scoring": {"objective": objective, "target": 0.85}, "pipeline": PIPELINE})


def _tracking_callback(tracker):
    """The minimal driver-side recording the run path does (trial runs, metric points)."""
    from ray.tune import Callback

    class Track(Callback):
        # Tune pickles its callbacks into the experiment folder; the tracker holds locks, so
        # it is an attribute (dropped when pickled), never a closure variable of the class.
        def __init__(self, tracker):
            self.tracker = tracker

        def __getstate__(self):
            return {"tracker": None}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.tracker.start_trial(trial.trial_id, trial.config)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.tracker.log_metrics(trial.trial_id, int(result["epoch"]),
                                     {"acc": result["acc"], "loss": result["loss"]})

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.tracker.end_trial(trial.trial_id, "completed")

    return Track(tracker)


def _run(tmp_path: Path, objective: str, tracker) -> tuple[Any, Any, list]:
    from ray import cloudpickle, tune
    from ray.tune.schedulers import FIFOScheduler

    from orchestrator.scoring_tune import ScoreObjectiveScheduler, ScoringCallback, objective_env
    from orchestrator.scoring_wiring import SweepScorer

    # test modules are not importable on Ray workers: ship this one's functions by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    seen: list[tuple[str, bool]] = []

    class Spy(FIFOScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            seen.append((trial.trial_id, "score" in result))
            return super().on_trial_result(tune_controller, trial, result)

    scorer = SweepScorer.from_config(_cfg(objective))
    tracker.start_sweep("scoring-it", {"objective": objective})
    if objective == "score":
        os.environ.update(objective_env())
        scheduler = ScoreObjectiveScheduler(Spy(), scorer)
        tune_cfg = tune.TuneConfig(metric="score", mode="max", scheduler=scheduler)
    else:
        tune_cfg = tune.TuneConfig(metric="acc", mode="max", scheduler=Spy())
    tuner = tune.Tuner(
        _train,
        param_space={"setup": tune.grid_search(SETUPS), "max_epochs": 3},
        tune_config=tune_cfg,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray"), name=f"scoring-{objective}", verbose=0,
            callbacks=[_tracking_callback(tracker),
                       ScoringCallback(scorer, tracker, finalize_on_end=False)]),
    )
    grid = tuner.fit()
    scores = scorer.finalize(tracker)
    tracker.end_sweep({"trials": 4})
    assert tracker.flush(30)
    return grid, scorer, scores, seen


def _kind(trial_config: dict) -> str:
    return trial_config["setup"]["kind"]


def test_nan_and_token_trials_are_penalised_gated_and_recorded(
        ray_local, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    from orchestrator.tracking import MlflowTracker

    tracker = MlflowTracker(mlflow_server, experiment=f"scoring-{uuid.uuid4().hex[:8]}",
                            spill_dir=tmp_path / "spill", linger_s=0.05)
    try:
        grid, _scorer, scores, seen = _run(tmp_path, "metric", tracker)
    finally:
        tracker.close()
    assert not grid.errors
    kinds = {r.metrics["trial_id"]: _kind(r.config) for r in grid}
    order = [kinds[s.trial_id] for s in scores]
    assert order == ["better", "good", "leaky", "nan"]  # gated last, despite higher accuracy
    assert all(not has for _, has in seen)  # objective: metric: the scheduler never sees it

    c = MlflowClient(tracking_uri=mlflow_server)
    runs = {r.data.tags["sweepcast.trial_id"]: r for r in c.search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'")}
    by_kind = {kinds[tid]: r for tid, r in runs.items()}
    leaky, nan, better = by_kind["leaky"], by_kind["nan"], by_kind["better"]
    assert leaky.data.tags["sweepcast.gates"] == "secret"
    assert leaky.data.metrics["penalty.hygiene"] == 1.0
    assert nan.data.tags["sweepcast.gates"] == "non_finite_final"
    assert nan.data.metrics["penalty.hygiene.non_finite"] > 0
    assert better.data.tags["sweepcast.rank"] == "1" and better.data.metrics["rank"] == 1.0
    for key in ("score", "reward", "p_success", "p_target", "p_survive", "cost_hours",
                "penalty", "penalty.observability", "penalty.hygiene"):
        assert key in better.data.metrics, key
    assert TOKEN not in json.dumps({k: dict(r.data.params) for k, r in runs.items()})
    # coupling from the reads the trials reported at run time (trials.api.read_input)
    assert by_kind["good"].data.metrics["penalty.coupling"] == pytest.approx(1 / 3)
    assert better.data.metrics["penalty.coupling"] == 0.0
    assert by_kind["good"].data.tags["sweepcast.undeclared_reads"] == "train:dataset"
    assert better.data.tags["sweepcast.undeclared_reads"] == "none"
    assert better.data.metrics["penalty.cohesion"] == 0.0  # one responsibility per step
    hist = c.get_metric_history(better.info.run_id, "p_target")
    assert sorted(m.step for m in hist) == [1, 2, 3, 3]  # each decision point + final

    dl = c.download_artifacts(tracker.parent_run_id, "scoring", str(tmp_path / "dl"))
    md = (Path(dl) / "ranking.md").read_text()
    assert md.splitlines()[2].split("|")[2].strip() == scores[0].trial_id
    assert TOKEN not in md


def test_objective_score_reaches_scheduler_and_result(ray_local, tmp_path, monkeypatch):
    from orchestrator.tracking import InMemoryTracker

    monkeypatch.delenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", raising=False)
    grid, _scorer, scores, seen = _run(tmp_path, "score", InMemoryTracker())
    assert not grid.errors
    assert len(seen) == 12 and all(has for _, has in seen)  # 4 trials x 3 epochs, all scored
    # every trial's last result carries the score the callback put there
    assert all(math.isfinite(r.metrics["score"]) for r in grid)
    best = grid.get_best_result(metric="score", mode="max")
    assert best.metrics["score"] == max(r.metrics["score"] for r in grid)
    assert [_kind(r.config) for r in grid if r.metrics["trial_id"] == scores[0].trial_id] == [
        "better"]
