"""CurveScheduler's Tune hooks without starting Ray: properties, idempotence, state as data."""

from __future__ import annotations

import json
import pickle

import pytest
import ray  # noqa: F401
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from search.adapters.ray_tune import CurveScheduler


class FakeTrial:
    def __init__(self, trial_id, status=Trial.RUNNING, checkpoint=None):
        self.trial_id, self.status, self.checkpoint = trial_id, status, checkpoint


def feed(s, tid, values, start=1, metric="acc"):
    out = []
    for e, v in enumerate(values, start=start):
        out.append(s.on_trial_result(None, FakeTrial(tid), {"epoch": e, metric: v}))
    return out


def test_properties_from_tuneconfig_and_horizon_from_stop():
    s = CurveScheduler(model="last-value")
    assert s.set_search_properties("acc", "max", stop={"epoch": 7}) is True
    assert s.stopper.horizon == 7.0 and s.stopper.mode == "max"
    # Tune then raises: metric/mode given twice
    assert CurveScheduler(metric="acc", mode="max", max_t=3).set_search_properties("acc", "max") \
        is False


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'up'"):
        CurveScheduler(mode="up")
    with pytest.raises(ValueError, match="max_t must be a finite number > 0, got -1"):
        CurveScheduler(max_t=-1)
    with pytest.raises(ValueError, match="threshold must be in"):
        CurveScheduler(threshold=0)
    s = CurveScheduler(metric="acc", mode="max", model="last-value")
    with pytest.raises(ValueError, match="needs the horizon"):
        s.on_trial_add(None, FakeTrial("a"))
    s = CurveScheduler(max_t=5, model="last-value")
    with pytest.raises(ValueError, match="needs a metric and a mode"):
        s.on_trial_add(None, FakeTrial("a"))


def test_stops_a_trial_that_cannot_win_and_continues_on_missing_keys():
    s = CurveScheduler(metric="acc", mode="max", max_t=4, model="last-value", grace_epochs=2)
    s.on_trial_add(None, FakeTrial("a"))
    s.on_trial_add(None, FakeTrial("a"))  # idempotent
    assert feed(s, "a", [0.5, 0.7, 0.8, 0.9]) == [TrialScheduler.CONTINUE] * 4
    s.on_trial_complete(None, FakeTrial("a"), {"epoch": 4, "acc": 0.9})
    s.on_trial_add(None, FakeTrial("b"))
    assert s.on_trial_result(None, FakeTrial("b"), {"done": True}) == TrialScheduler.CONTINUE
    assert s.on_trial_result(None, FakeTrial("b"), {"epoch": 1}) == TrialScheduler.CONTINUE
    assert s.last_verdict("b")["reason"] == "bad_metric"
    assert feed(s, "b", [0.1, 0.2]) == [TrialScheduler.CONTINUE, TrialScheduler.STOP]
    v = s.last_verdict("b")
    assert v["reason"] == "p_beat_low" and v["incumbent"] == 0.9
    s.on_trial_error(None, FakeTrial("c"))
    s.on_trial_remove(None, FakeTrial("d"))
    assert "CurveScheduler" in s.debug_string()


def test_pickle_holds_no_curves_and_state_restores_from_json(tmp_path):
    seen = []
    s = CurveScheduler(metric="loss", mode="min", max_t=4, model="last-value", grace_epochs=2,
                       state_path=tmp_path / "state.json", save_period_s=0)
    s.on_trial_add(None, FakeTrial("a"))
    feed(s, "a", [0.9, 0.5, 0.4, 0.3], metric="loss")
    s.on_trial_complete(None, FakeTrial("a"), {})
    blob = pickle.dumps(s)
    assert b"CurveStopper" not in blob and b"CurveStore" not in blob  # settings only
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["stopper"]["completed_best"] == -0.3  # internal units: higher is better
    r = pickle.loads(blob)  # what Tune restores: settings only
    r._on_verdict = seen.append
    r._config = s._config
    r.on_trial_add(None, FakeTrial("a", status=Trial.TERMINATED))  # loads the JSON state
    assert r.stopper.incumbent == pytest.approx(0.3)
    assert feed(r, "b", [1.0, 0.9], metric="loss") == [TrialScheduler.CONTINUE, TrialScheduler.STOP]


class FakeController:
    def __init__(self, trials):
        self.trials = trials

    def get_live_trials(self):
        return [t for t in self.trials if t.status != Trial.TERMINATED]


def test_pause_ahead_pauses_a_trial_ahead_of_its_peers_only_while_others_wait():
    s = CurveScheduler(metric="acc", mode="max", max_t=10, model="last-value", grace_epochs=2,
                       pause_ahead=True, min_samples=2)
    a, b = FakeTrial("a"), FakeTrial("b", Trial.PENDING)
    ctl = FakeController([a, b])
    for t in (a, b):
        s.on_trial_add(ctl, t)
    # epoch 1 is in the grace period; epoch 2 is past it and nobody else reached it, but a
    # trial without a checkpoint is not paused (it would restart from scratch)
    assert s.on_trial_result(ctl, a, {"epoch": 1, "acc": 0.5}) == TrialScheduler.CONTINUE
    assert s.on_trial_result(ctl, a, {"epoch": 2, "acc": 0.6}) == TrialScheduler.CONTINUE
    assert s.last_verdict("a")["wait"] is True
    a.checkpoint = object()
    assert s.on_trial_result(ctl, a, {"epoch": 3, "acc": 0.65}) == TrialScheduler.PAUSE
    # nobody waits to run: the same verdict continues
    b.status = Trial.RUNNING
    b.checkpoint = object()
    assert s.on_trial_result(ctl, b, {"epoch": 1, "acc": 0.6}) == TrialScheduler.CONTINUE
    assert s.on_trial_result(ctl, b, {"epoch": 2, "acc": 0.7}) == TrialScheduler.CONTINUE
    assert s.last_verdict("b")["wait"] is True  # one other trial at epoch 2 < min_samples 2
    # without the option nothing is ever paused
    s2 = CurveScheduler(metric="acc", mode="max", max_t=10, model="last-value", grace_epochs=2)
    s2.on_trial_add(ctl, a)
    b.status = Trial.PENDING
    assert [s2.on_trial_result(ctl, a, {"epoch": e, "acc": 0.5}) for e in (1, 2, 3)] == \
        [TrialScheduler.CONTINUE] * 3
    assert s2.last_verdict("a")["wait"] is False
