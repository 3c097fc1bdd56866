"""SweepScorer: results in (fake clock), scores through a real in-memory Tracker out."""

from __future__ import annotations

import json
import math
import pickle

import pytest

from orchestrator.config import SweepConfig
from orchestrator.scoring_wiring import (
    DECISION_KEYS,
    RANKING_JSON,
    RANKING_MD,
    SweepScorer,
    space_specs,
)
from orchestrator.tracking import InMemoryTracker
from search.hygiene import REDACTED


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


CFG = SweepConfig.model_validate({
    "name": "wiring", "trainable": "trials.examples.mlp:train", "metric": "acc", "mode": "max",
    "max_epochs": 4, "num_samples": 3, "resources": {"cpu": 2, "gpu": 0},
    "search": {"algorithm": "random", "space": {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
        "width": {"type": "randint", "low": 8, "high": 64},
        "opt": {"type": "choice", "values": ["adam", "sgd"]}}},
    "scoring": {"target": 0.8, "objective": "score"}})

TOKEN = "ghp_" + "Z9" * 18


def run_sweep(clock: Clock, tracker: InMemoryTracker) -> SweepScorer:
    scorer = SweepScorer.from_config(CFG, clock=clock)
    tracker.start_sweep("wiring", {"name": "wiring"})
    trials = {
        "good": ({"lr": 0.01, "width": 32, "opt": "adam", "max_epochs": 4},
                 [0.5, 0.7, 0.8, 0.85]),
        "nan": ({"lr": 0.05, "width": 16, "opt": "sgd", "max_epochs": 4},
                [0.4, 0.6, math.nan, math.nan]),
        "leaky": ({"lr": 0.02, "width": 40, "opt": "adam", "max_epochs": 4, "hub_token": TOKEN},
                  [0.6, 0.8, 0.9, 0.95]),
    }
    for tid, (params, _) in trials.items():
        tracker.start_trial(tid, params)
        scorer.on_trial_start(tid, params)
    for epoch in range(1, 5):
        for tid, (_, vals) in trials.items():
            clock.t += 900.0  # 15 min per epoch per trial
            result = {"epoch": epoch, "training_iteration": epoch, "acc": vals[epoch - 1],
                      "loss": 1.0 - vals[epoch - 1], "time_this_iter_s": 900.0}
            assert scorer.on_result(tid, result)
            assert not scorer.on_result(tid, dict(result))  # same result again: ignored
            assert scorer.score_trial(tid).rank is None  # decision point: unranked
            scorer.log_decision(tracker, tid)
    for tid in trials:
        scorer.on_trial_end(tid, "completed")
        tracker.end_trial(tid, "completed")
    return scorer


def test_sweep_scored_recorded_and_gated():
    clock, tracker = Clock(), InMemoryTracker()
    scorer = run_sweep(clock, tracker)
    scores = scorer.finalize(tracker)
    by = {s.trial_id: s for s in scores}

    # every trial ran from t=0 to its end at t=3 h (12 results, 15 min apart) on 2 CPUs
    assert clock.t == 3 * 3600
    assert by["good"].unit == "cpu" and by["good"].cost_spent == pytest.approx(6.0)
    # the NaN trial: acc and loss are NaN at epochs 3, 4: 4 of 8 values (Tune keys not counted)
    assert by["nan"].hygiene.non_finite == pytest.approx(4 / 8)
    assert by["nan"].hygiene.value == pytest.approx(0.4)
    assert by["nan"].gates == ("non_finite_final",)
    assert by["leaky"].gates == ("secret",) and by["leaky"].hygiene.value == 1.0
    assert [s.trial_id for s in scores] == ["good", "leaky", "nan"]
    assert by["good"].p_target == 1.0 and by["good"].eligible

    # recorded: decision points at every epoch, full set + rank at the end, tags, artifacts
    good = tracker.trials["good"]
    assert [st for st, _ in good["metrics"]["p_target"]] == [1, 2, 3, 4, 4]
    for k in DECISION_KEYS:
        assert k in good["metrics"]
    assert good["metrics"]["rank"] == [(4, 1.0)]
    assert "penalty.hygiene.non_finite" in good["metrics"]
    assert "penalty.cohesion" not in good["metrics"]
    assert good["tags"]["sweepcast.rank"] == "1" and good["tags"]["sweepcast.gates"] == "none"
    assert tracker.trials["leaky"]["tags"]["sweepcast.gates"] == "secret"
    assert tracker.trials["leaky"]["params"]["hub_token"] == REDACTED
    assert TOKEN not in json.dumps(tracker.trials, default=str)
    md = tracker.parent["artifacts"][f"scoring/{RANKING_MD}"].decode()
    assert md.splitlines()[2].startswith("| 1 | good |")
    rows = json.loads(tracker.parent["artifacts"][f"scoring/{RANKING_JSON}"])["rows"]
    assert [r["trial"] for r in rows] == ["good", "leaky", "nan"]
    assert tracker.parent["tags"]["sweepcast.winner"] == "good"
    assert TOKEN not in md


def test_score_trial_matches_full_scoring():
    clock, tracker = Clock(), InMemoryTracker()
    scorer = run_sweep(clock, tracker)
    scorer.on_trial_start("late", {"lr": 0.03})
    clock.t += 100
    scorer.on_result("late", {"epoch": 1, "acc": 0.7})
    full = {s.trial_id: s for s in scorer.score()}
    for tid, f in full.items():
        one = scorer.score_trial(tid)
        assert one.score == pytest.approx(f.score)
        assert one.p_survive == pytest.approx(f.p_survive)
        assert one.hygiene == f.hygiene and one.gates == f.gates


def test_running_trial_goes_quiet():
    clock = Clock()
    scorer = SweepScorer.from_config(CFG, clock=clock)
    scorer.on_trial_start("a", {"lr": 0.01})
    for e in (1, 2):
        clock.t += 100.0
        scorer.on_result("a", {"epoch": e, "acc": 0.5})
    (s,) = scorer.score()
    assert s.observability.staleness == 0.0
    clock.t += 500.0  # 5 intervals without a report
    (s,) = scorer.score()
    assert s.observability.staleness == 1.0
    assert s.observability.missing_reports == pytest.approx(2 / 4)  # reached max_epochs=4
    assert s.cost_remaining == pytest.approx(2 * 2 * 100 / 3600)


def test_retry_failures_and_unlogged_params():
    clock, tracker = Clock(), InMemoryTracker()
    tracker.start_sweep("wiring", {})
    scorer = SweepScorer.from_config(CFG, clock=clock)
    scorer.on_trial_start("a", {"lr": 0.01})
    tracker.start_trial("a", {"lr": 0.01})
    clock.t += 60
    scorer.on_result("a", {"epoch": 1, "acc": 0.5})
    scorer.on_trial_error("a", will_retry=True)
    clock.t += 1000  # down time is not run time
    scorer.on_trial_start("a", {"lr": 0.01})
    clock.t += 60
    scorer.on_result("a", {"epoch": 1, "acc": 0.55})  # re-reported epoch replaces the old one
    clock.t += 60
    scorer.on_result("a", {"epoch": 2, "acc": 0.6})
    scorer.on_trial_start("b", {"lr": 0.5, "width": 7.5})  # never reached the tracker
    scorer.on_result("b", {"epoch": 1, "acc": 0.1})
    scorer.on_trial_error("b")
    by = {s.trial_id: s for s in scorer.finalize(tracker)}
    rec = {r.trial_id: r for r in scorer.records()}
    assert rec["a"].failures == 1 and rec["a"].steps.tolist() == [1.0, 2.0]
    assert rec["a"].wall_time_s == pytest.approx(180.0)
    assert by["b"].status == "failed" and by["b"].p_survive == 0.0
    assert by["b"].hygiene.unlogged_keys == 1.0
    assert by["b"].hygiene.space_mismatch == 1.0  # lr out of range, width not an int
    assert by["a"].p_survive < 1.0  # history has 2 failures


def test_state_round_trip_and_pickle():
    clock, tracker = Clock(), InMemoryTracker()
    scorer = run_sweep(clock, tracker)
    before = {s.trial_id: s for s in scorer.score()}
    state = json.loads(json.dumps(scorer.state()))
    fresh = SweepScorer.from_config(CFG, clock=clock)
    fresh.restore(state)
    after = {s.trial_id: s for s in fresh.score()}
    for tid, b in before.items():
        assert after[tid].rank == b.rank
        assert after[tid].reward_total == pytest.approx(b.reward_total)
        assert after[tid].gates == b.gates
    assert TOKEN not in json.dumps(state)
    clone = pickle.loads(pickle.dumps(scorer))
    assert [s.trial_id for s in clone.score()] == [s.trial_id for s in scorer.score()]


def test_space_specs_and_bad_input():
    specs = {s.name: s for s in space_specs(CFG.search.space)}
    assert specs["width"].kind == "int" and (specs["width"].low, specs["width"].high) == (8, 64)
    assert specs["opt"].choices == ("adam", "sgd")
    with pytest.raises(ValueError, match="objective"):
        SweepScorer(metric="m", mode="max", max_epochs=3, objective="reward")
    scorer = SweepScorer(metric="m", mode="max", max_epochs=3)
    scorer.on_trial_start("t", {})
    with pytest.raises(ValueError, match="status"):
        scorer.on_trial_end("t", "done")
    scorer.on_trial_end("never-started", "pruned")  # resumed without state: tolerated
    scorer.on_trial_error("also-unknown")
    assert {s.trial_id: s.status for s in scorer.score()} == {
        "t": "running", "never-started": "pruned", "also-unknown": "failed"}
