"""The Tune glue of scoring, driven by hand (no Ray runtime): callback, scheduler wrapper."""

from __future__ import annotations

import io
import json
import os
import pickle
from types import SimpleNamespace

import pytest

from orchestrator.config import SweepConfig
from orchestrator.scoring_tune import (
    ScoreObjectiveScheduler,
    ScoringCallback,
    attach_scoring,
    wrap_for_objective,
)
from orchestrator.scoring_wiring import SweepScorer, tune_objective
from orchestrator.tracking import InMemoryTracker
from orchestrator.tracking.registry import register_tracker, unregister_tracker


def cfg(**over):
    base = {"name": "glue", "trainable": "trials.examples.mlp:train", "metric": "acc",
            "mode": "max", "max_epochs": 2, "num_samples": 2,
            "search": {"algorithm": "random",
                       "space": {"lr": {"type": "uniform", "low": 0.0, "high": 1.0}}}}
    base.update(over)
    return SweepConfig.model_validate(base)


def trial(tid, **config):
    return SimpleNamespace(trial_id=tid, config=config)


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_callback_records_through_registry_and_resumes(tmp_path):
    key, clock, tracker = str(tmp_path / "exp"), Clock(), InMemoryTracker()
    register_tracker(key, tracker)
    try:
        tracker.start_sweep("glue", {})
        state = tmp_path / "scoring_state.json"
        out = io.StringIO()
        cb = ScoringCallback(SweepScorer.from_config(cfg(), clock=clock), sweep_key=key,
                             state_path=state, out=out)
        a, b = trial("a", lr=0.1), trial("b", lr=0.2)
        for t in (a, b):
            tracker.start_trial(t.trial_id, t.config)
            cb.on_trial_start(0, [], t)
        for epoch in (1, 2):
            for t, v in ((a, 0.5 * epoch), (b, 0.3 * epoch)):
                clock.t += 60
                result = {"epoch": epoch, "training_iteration": epoch, "acc": v}
                cb.on_trial_result(0, [], t, result)
                assert result["score"] == cb.scorer.objective_value(t.trial_id)
        cb.on_trial_complete(0, [], a)
        assert json.loads(state.read_text())["trials"]["a"]["status"] == "finished"
        # pickled like Tune does: the tracker is not, the key and the scorer data are
        clone = pickle.loads(pickle.dumps(ScoringCallback(cb.scorer, tracker, sweep_key=key)))
        assert clone.tracker is None and clone.sweep_key == key
        # a resumed sweep: a fresh scorer picks the state up in setup()
        fresh = ScoringCallback(SweepScorer.from_config(cfg(), clock=clock), sweep_key=key,
                                state_path=state)
        fresh.setup()
        assert sorted(fresh.scorer.known_trials()) == ["a", "b"]
        cb.on_trial_complete(0, [], b)
        cb.on_experiment_end([])
    finally:
        unregister_tracker(key)
    assert tracker.trials["a"]["metrics"]["p_target"][-1] == (2, 1.0)
    assert tracker.trials["a"]["tags"]["sweepcast.rank"] == "1"
    assert "scoring/ranking.md" in tracker.parent["artifacts"]
    assert "| 1 | a | finished |" in out.getvalue()


class SpyScheduler:
    """Records every hook the wrapper forwards."""

    metric = "acc"
    supports_buffered_results = True

    def __init__(self):
        self.calls = []

    def set_search_properties(self, metric, mode, **spec):
        self.calls.append(("props", metric, mode))
        return True

    def __getattr__(self, name):
        if not name.startswith("on_") and name not in (
                "choose_trial_to_run", "debug_string", "save", "restore"):
            raise AttributeError(name)

        def hook(*args):
            self.calls.append((name, *[a for a in args if isinstance(a, (dict, str))]))
            return "CONTINUE" if name == "on_trial_result" else "inner"
        return hook


def test_wrapper_injects_score_and_forwards_every_hook():
    scorer = SweepScorer.from_config(cfg(scoring={"objective": "score"}))
    spy = SpyScheduler()
    w = ScoreObjectiveScheduler(spy, scorer)
    t = trial("a", lr=0.5)
    scorer.on_trial_start("a", t.config)
    assert w.set_search_properties("score", "max")
    result = {"epoch": 1, "acc": 0.5}
    assert w.on_trial_result(None, t, result) == "CONTINUE"
    assert result["score"] == scorer.objective_value("a")
    w.on_trial_add(None, t)
    w.on_trial_error(None, t)
    w.on_trial_complete(None, t, {"epoch": 2, "acc": 0.6})
    w.on_trial_remove(None, t)
    w.choose_trial_to_run(None)
    w.save("p")
    w.restore("p")
    names = [c[0] for c in spy.calls]
    assert names == ["props", "on_trial_result", "on_trial_add", "on_trial_error",
                     "on_trial_complete", "on_trial_remove", "choose_trial_to_run", "save",
                     "restore"]
    assert spy.calls[0] == ("props", "score", "max")
    assert "score" in spy.calls[1][1]  # the inner scheduler saw the score
    assert "score" in spy.calls[4][1]
    # a forecasting scheduler keeps the raw metric
    spy2 = SpyScheduler()
    ScoreObjectiveScheduler(spy2, scorer, inner_metric="acc", inner_mode="max") \
        .set_search_properties("score", "max")
    assert spy2.calls == [("props", "acc", "max")]


def test_reward_stop_on_top_of_the_inner_scheduler(tmp_path):
    key, clock, tracker = str(tmp_path / "exp"), Clock(), InMemoryTracker()
    # V tiny: continuing never pays once a trial has a pace (its remaining hours cost > V)
    c = cfg(max_epochs=5, scoring={"stop_on_reward": True, "value": 1e-9},
            pruning={"scheduler": "asha", "grace_period": 2})
    spy = SpyScheduler()
    w = wrap_for_objective(c, spy, SweepScorer.from_config(c, clock=clock), key)
    assert isinstance(w, ScoreObjectiveScheduler) and not w.inject_score
    assert w.set_search_properties("acc", "max") and spy.calls[0] == ("props", "acc", "max")
    register_tracker(key, tracker)
    try:
        tracker.start_sweep("glue", {})
        tracker.start_trial("a", {})
        t = trial("a", lr=0.5)
        w.scorer.on_trial_start("a", t.config)
        decisions = []
        for epoch in (1, 2):
            clock.t += 3600
            result = {"epoch": epoch, "acc": 0.9}
            decisions.append(w.on_trial_result(None, t, result))
            assert "score" not in result  # objective: metric
    finally:
        unregister_tracker(key)
    assert decisions == ["CONTINUE", "STOP"]  # grace period 2, then the reward rule
    assert w.reward_stops == 1
    assert tracker.trials["a"]["tags"]["sweepcast.stop_reason"] == "reward_low"


def test_objective_selection(monkeypatch):
    monkeypatch.delenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", raising=False)
    plain = cfg()
    assert tune_objective(plain) == ("acc", "max")
    sched = SpyScheduler()
    assert wrap_for_objective(plain, sched, SweepScorer.from_config(plain)) is sched
    assert "TUNE_DISABLE_STRICT_METRIC_CHECKING" not in os.environ
    scored = cfg(scoring={"objective": "score"}, mode="min")
    assert tune_objective(scored) == ("score", "max")
    wrapped, cb, (metric, mode) = attach_scoring(scored, sched, "k")
    assert isinstance(wrapped, ScoreObjectiveScheduler) and (metric, mode) == ("score", "max")
    assert os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] == "1"
    assert cb.scorer.mode == "min" and cb.state_path is None


@pytest.mark.parametrize("pruning, model", [
    ({"scheduler": "asha"}, "last-value"),
    ({"scheduler": "curve", "model": "parametric", "grace_epochs": 1}, "parametric"),
])
def test_scoring_model_follows_the_curve_scheduler(pruning, model):
    _, cb, _ = attach_scoring(cfg(pruning=pruning), SpyScheduler(), "k")
    assert cb.scorer.model_spec == model
