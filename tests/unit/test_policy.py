"""The curve stopping policy and stopper: reason codes, edge cases, mode, state, batching."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from search.forecast.base import CurveModel, LastValueModel, SampleForecast, check_batch
from search.policy import QUANTILE_GRID, PolicyConfig, Reason, Verdict, grid_cdf, judge
from search.stopper import CurveStopper


class GaussModel(CurveModel):
    """Final value ~ N(last finite value, sd^2), as 400 deterministic quantile samples."""

    name = "gauss"

    def __init__(self, sd: float = 0.05):
        self.sd = sd
        self.calls: list[int] = []

    def forecast(self, curves, target_step, *, mode="max"):
        check_batch(curves, target_step)
        self.calls.append(len(curves))
        z = norm.ppf((np.arange(400) + 0.5) / 400)
        last = np.array([c.values[np.isfinite(c.values)][-1] for c in curves])
        return SampleForecast(last[:, None] + self.sd * z[None, :])


class BrokenModel(CurveModel):
    def forecast(self, curves, target_step, *, mode="max"):
        raise RuntimeError("boom")


class NanModel(CurveModel):
    def forecast(self, curves, target_step, *, mode="max"):
        return SampleForecast(np.full((len(curves), 3), np.nan))


def stopper(model=None, mode="max", horizon=10, **kw):
    kw.setdefault("grace_epochs", 2)
    return CurveStopper(model or GaussModel(), horizon=horizon, mode=mode, config=PolicyConfig(**kw))


def finish(s: CurveStopper, tid: str, final: float, horizon: int = 10):
    for e in range(1, horizon + 1):
        s.observe(tid, e, final)
    s.complete_trial(tid)


def test_reason_grace_then_no_incumbent_for_a_single_trial():
    s = stopper()
    assert s.observe("a", 1, 0.5).reason == Reason.GRACE.value
    v = s.observe("a", 2, 0.5)
    assert (v.stop, v.reason) == (False, "no_incumbent")
    assert v.p_beat is None


def test_p_beat_low_stops_and_carries_forecast_in_user_units():
    s = stopper()
    finish(s, "good", 0.9)
    assert s.incumbent == pytest.approx(0.9)
    s.observe("bad", 1, 0.3)
    v = s.observe("bad", 2, 0.3)
    assert v.stop and v.reason == "p_beat_low"
    assert v.p_beat < 0.05
    assert v.q05 < v.q50 < v.q95
    assert v.q50 == pytest.approx(0.3, abs=1e-3)
    assert v.incumbent == pytest.approx(0.9)


def test_p_beat_ok_when_close_to_incumbent():
    s = stopper(model=GaussModel(0.1))
    finish(s, "good", 0.9)
    s.observe("near", 1, 0.85)
    v = s.observe("near", 2, 0.85)
    assert not v.stop and v.reason == "p_beat_ok"
    assert v.p_beat == pytest.approx(1 - norm.cdf(0.5), abs=0.02)


def test_beats_incumbent_is_never_stopped_even_if_forecast_is_low():
    s = stopper(model=LastValueModel())
    finish(s, "good", 0.9)
    s.observe("x", 1, 0.95)
    v = s.observe("x", 2, 0.93)  # the latest value beats the best final: kept
    assert not v.stop and v.reason == "beats_incumbent"


@pytest.mark.parametrize("incumbent, stop, reason", [
    ("completed", True, "p_beat_low"),  # a final is compared with the latest value
    ("best_seen", False, "beats_incumbent"),  # Domhan's y_best with the best value
])
def test_a_past_lead_protects_only_against_a_best_seen_incumbent(incumbent, stop, reason):
    s = stopper(model=LastValueModel(), incumbent=incumbent)
    finish(s, "good", 0.9)
    s.observe("x", 1, 0.95)  # was ahead of every final (for best_seen: of every value but
    s.observe("x", 2, 0.96)  # good's 0.9, then its own)
    s.observe("y", 1, 0.1)
    v = s.observe("x", 3, 0.1)  # then collapsed (an overfitting validation metric)
    assert (v.stop, v.reason) == (stop, reason)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_diverged_stops_even_during_grace(bad):
    s = stopper()
    v = s.observe("a", 1, bad)
    assert v.stop and v.reason == "diverged"


@pytest.mark.parametrize("missing", [None, "abc", True])
def test_missing_or_non_numeric_metric_is_an_error_verdict_not_a_crash(missing):
    s = stopper()
    v = s.observe("a", 3, missing)
    assert not v.stop and v.reason == "bad_metric" and v.is_error


@pytest.mark.parametrize("model", [BrokenModel(), NanModel()])
def test_model_failure_gives_model_error_and_continues(model):
    s = stopper(model=model)
    finish(s, "good", 0.9)
    s.observe("b", 1, 0.1)
    v = s.observe("b", 2, 0.1)
    assert not v.stop and v.reason == "model_error" and v.is_error


def test_mode_min_mirrors_max_and_reports_user_quantiles():
    smax, smin = stopper(mode="max"), stopper(mode="min")
    finish(smax, "good", 0.9)
    finish(smin, "good", -0.9)
    smax.observe("b", 1, 0.8)
    smin.observe("b", 1, -0.8)
    vmax, vmin = smax.observe("b", 2, 0.8), smin.observe("b", 2, -0.8)
    assert vmax.reason == vmin.reason
    assert vmax.p_beat == pytest.approx(vmin.p_beat)
    assert vmin.q05 == pytest.approx(-vmax.q95) and vmin.q95 == pytest.approx(-vmax.q05)
    assert vmin.q05 < vmin.q50 < vmin.q95
    assert vmin.incumbent == pytest.approx(-0.9)
    # in min mode a *lower* loss beats the incumbent
    smin.observe("c", 1, -0.95)
    assert smin.observe("c", 2, -0.95).reason == "beats_incumbent"


def test_all_trials_equal_do_not_crash_and_are_not_strictly_better():
    s = stopper(model=LastValueModel())
    finish(s, "a", 0.5)
    s.observe("b", 1, 0.5)
    v = s.observe("b", 2, 0.5)
    # a point forecast equal to the incumbent cannot strictly beat it
    assert v.p_beat == 0.0 and v.stop


def test_same_step_incumbent_before_any_completion_and_none_option():
    s = stopper(model=LastValueModel())
    for tid, val in (("a", 0.9), ("b", 0.2)):
        s.observe(tid, 1, val)
    s.observe("a", 2, 0.9)
    v = s.observe("b", 2, 0.2)
    assert v.stop and v.incumbent == pytest.approx(0.9)
    s2 = stopper(model=LastValueModel(), before_completion="none")
    for tid, val in (("a", 0.9), ("b", 0.2)):
        s2.observe(tid, 1, val)
    s2.observe("a", 2, 0.9)
    assert s2.observe("b", 2, 0.2).reason == "no_incumbent"


def test_decision_interval_and_horizon():
    s = stopper(model=LastValueModel(), decision_interval=3)
    finish(s, "good", 0.9)
    reasons = [s.observe("b", e, 0.1).reason for e in range(1, 3)]
    assert reasons[0] == "grace" and reasons[1] == "p_beat_low"
    s2 = stopper(model=LastValueModel(), decision_interval=3)
    finish(s2, "good", 0.9)
    got = [s2.observe("c", e, 0.95).reason for e in (1, 2, 3, 4, 5)]
    assert got == ["grace", "beats_incumbent", "not_due", "not_due", "beats_incumbent"]
    assert s2.observe("c", 10, 0.1).reason == "horizon"


def test_compute_exponent_lowers_the_threshold_near_the_horizon():
    cfg = PolicyConfig(threshold=0.2, compute_exponent=1.0, grace_epochs=1)
    steps = np.array([1.0, 9.0])
    grid = np.tile(QUANTILE_GRID, (2, 1))  # uniform(0, 1) final value
    inc = np.array([0.9, 0.9])  # p_beat = 0.1 for both
    vs = judge(cfg, trial_ids=["a", "b"], steps=steps, latest=np.array([0.1, 0.1]),
               best=np.array([0.1, 0.1]), incumbent=inc, grid=grid, horizon=10, mode="max")
    assert vs[0].stop and vs[0].threshold == pytest.approx(0.18)
    assert not vs[1].stop and vs[1].threshold == pytest.approx(0.02)


def test_grid_cdf_interpolates_and_handles_point_masses():
    grid = np.vstack([QUANTILE_GRID, np.full_like(QUANTILE_GRID, 0.3)])
    cdf = grid_cdf(grid, np.array([0.5, 0.3]))
    assert cdf[0] == pytest.approx(0.5)
    assert cdf[1] == 1.0


@pytest.mark.parametrize("kw,match", [
    ({"threshold": 0.0}, "threshold must be in \\(0, 1\\), got 0.0"),
    ({"threshold": 1.5}, "got 1.5"),
    ({"grace_epochs": -1}, "grace_epochs must be an integer >= 0, got -1"),
    ({"decision_interval": 0}, "decision_interval must be an integer >= 1, got 0"),
    ({"compute_exponent": -1.0}, "compute_exponent"),
    ({"incumbent": "median"}, "incumbent must be"),
    ({"pause_ahead": "yes"}, "pause_ahead must be true or false, got 'yes'"),
    ({"bar_confidence": 1.0}, "bar_confidence must be in \\(0, 1\\), got 1.0"),
    ({"bar_confidence": True}, "bar_confidence must be in \\(0, 1\\), got True"),
])
def test_config_errors_name_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        PolicyConfig(**kw)


def test_constructor_errors():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'up'"):
        CurveStopper(GaussModel(), horizon=10, mode="up")
    with pytest.raises(ValueError, match="horizon must be a finite number > 0, got 0"):
        CurveStopper(GaussModel(), horizon=0, mode="max")


def test_batched_forecasts_amortise_over_trials_and_reuse_cache():
    m = GaussModel()
    s = stopper(model=m, max_forecast_age=1)
    finish(s, "good", 0.9)
    n = 20
    for e in range(1, 6):
        for i in range(n):
            s.observe(f"t{i}", e, 0.85)
    # 3 decision steps x 20 trials = 60 decisions, far fewer forecast calls
    assert sum(m.calls) >= n
    assert len(m.calls) <= 6
    assert max(m.calls) >= n - 1


def test_new_incumbent_applies_to_cached_forecasts():
    s = stopper(model=GaussModel(0.05), max_forecast_age=5)
    finish(s, "good", 0.5)
    s.observe("b", 1, 0.6)
    assert s.observe("b", 2, 0.6).reason == "beats_incumbent"
    finish(s, "better", 0.9)
    s.observe("c", 1, 0.2)  # another trial, forecast cached for b at step 2 is reused
    v = s.observe("b", 3, 0.6)
    assert v.stop and v.incumbent == pytest.approx(0.9)


def test_state_round_trips_through_json_and_keeps_decisions():
    s = stopper(model=LastValueModel())
    finish(s, "good", 0.9)
    s.observe("b", 1, float("nan"))
    s.observe("c", 1, 0.4)
    data = json.loads(json.dumps(s.to_dict()))
    r = CurveStopper.from_dict(data, LastValueModel())
    assert r.incumbent == pytest.approx(0.9)
    assert math.isnan(r.store.values("b")[0])
    assert r.last_verdict_of("b")["reason"] == "diverged"
    v = r.observe("c", 2, 0.4)
    assert v.stop and v.reason == "p_beat_low"
    with pytest.raises(ValueError, match="mode='max'"):
        CurveStopper(LastValueModel(), horizon=10, mode="min").load_dict(data)


def test_restarted_trial_drops_later_points_and_add_is_idempotent():
    s = stopper(model=LastValueModel())
    s.add_trial("a")
    for e in (1, 2, 3):
        s.observe("a", e, 0.1 * e)
    s.add_trial("a")
    assert s.store.length("a") == 3
    s.observe("a", 2, 0.7)  # restarted from a checkpoint at epoch 1
    assert s.store.values("a").tolist() == [0.1, 0.7]


def test_verdict_sink_and_metrics():
    seen: list[Verdict] = []
    s = CurveStopper(GaussModel(), horizon=10, mode="max",
                     config=PolicyConfig(grace_epochs=1), on_verdict=seen.append)
    finish(s, "good", 0.9)
    v = s.observe("b", 1, 0.2)
    assert seen[-1] is v
    assert set(v.metrics()) == {"p_beat", "forecast_q05", "forecast_q50", "forecast_q95"}
    assert json.loads(json.dumps(v.to_dict()))["reason"] == "p_beat_low"


def test_median_gate_spares_trials_at_or_above_the_median_of_others():
    s = stopper(model=LastValueModel(), rank_gate="median", min_samples=3, grace_epochs=1)
    finish(s, "good", 0.9)
    for tid, val in (("a", 0.2), ("b", 0.4), ("c", 0.6)):
        s.observe(tid, 1, val)
    # others at step 1: 0.9 (good), 0.2, 0.4, 0.6 -> median 0.5
    v = s.observe("d", 1, 0.55)
    assert not v.stop and v.reason == "above_median"
    v = s.observe("e", 1, 0.3)
    assert v.stop and v.reason == "p_beat_low"


def test_median_gate_needs_min_samples():
    s = stopper(model=LastValueModel(), rank_gate="median", min_samples=3, grace_epochs=1)
    finish(s, "good", 0.9)
    v = s.observe("x", 1, 0.1)  # only one other trial at step 1
    assert not v.stop and v.reason == "above_median"


def test_batch_wait_turns_per_trial_forecasts_into_one_batch_per_step():
    m = GaussModel()
    s = stopper(model=m, grace_epochs=1, batch_wait=1, max_forecast_age=1)
    finish(s, "good", 0.9)
    m.calls.clear()
    first = [s.observe(f"t{i}", 1, 0.2).reason for i in range(50)]
    assert set(first) == {"forecast_pending"} and m.calls == []
    second = [s.observe(f"t{i}", 2, 0.2) for i in range(50)]
    assert m.calls == [50]  # the first trial that waited a step forecasts for everyone
    assert all(v.stop and v.reason == "p_beat_low" for v in second)


@pytest.mark.parametrize("veto, stopped", [(0.5, True), (0.06, False), (0.05, False)])
def test_median_or_stops_below_median_unless_the_forecast_vetoes(veto, stopped):
    # N(last, 0.3^2) forecasts, incumbent 0.9: at 0.45, P(beat) = 1 - Phi(1.5) = 0.067
    s = stopper(model=GaussModel(sd=0.3), rank_gate="median_or", veto_threshold=veto,
                min_samples=3, grace_epochs=1)
    finish(s, "good", 0.9)
    for tid, val in (("a", 0.2), ("b", 0.4), ("c", 0.6)):
        s.observe(tid, 1, val)  # others at step 1: 0.9, 0.2, 0.4, 0.6 -> median 0.5
    v = s.observe("d", 1, 0.45)
    assert v.p_beat == pytest.approx(1 - norm.cdf(1.5), abs=0.01)
    assert v.stop is stopped
    assert v.reason == ("below_median" if stopped else "p_beat_ok")
    above = s.observe("e", 1, 0.55)  # above the median: only the forecast rule applies
    assert not above.stop and above.reason == "p_beat_ok"
    low = s.observe("f", 1, 0.1)  # hopeless: the plain rule, whatever the veto
    assert low.stop and low.reason == "p_beat_low"


def test_veto_threshold_must_lie_between_threshold_and_one():
    with pytest.raises(ValueError, match="veto_threshold"):
        PolicyConfig(threshold=0.1, veto_threshold=0.05, rank_gate="median_or")
    with pytest.raises(ValueError, match="veto_threshold"):
        PolicyConfig(veto_threshold=1.5)
    PolicyConfig(threshold=0.6)  # the veto's default (0.5) matters only with median_or
    with pytest.raises(ValueError, match="rank_gate"):
        PolicyConfig(rank_gate="mean")


@pytest.mark.parametrize("incumbent, stop, reason, bar", [
    ("completed", True, "p_beat_low", 0.9),
    ("top_fraction", False, "beats_incumbent", 0.8),
])
def test_top_fraction_incumbent_is_the_kth_best_final(incumbent, stop, reason, bar):
    s = stopper(incumbent=incumbent, top_fraction=0.2, grace_epochs=1)
    for i in range(10):  # finals 0.9, 0.8, ..., 0.0: k = ceil(0.2 * 10) = 2
        s.record_final(f"c{i}", round(0.9 - 0.1 * i, 1))
    v = s.observe("t", 1, 0.81)  # N(0.81, 0.05^2): P(> 0.9) = 0.036
    assert (v.stop, v.reason, v.incumbent) == (stop, reason, bar)
    low = s.observe("u", 1, 0.5)  # far below the bar either way
    assert low.stop and low.reason == "p_beat_low"
    if incumbent == "top_fraction":
        # the stopped trial counts with its forecast median (0.5): 11 values, k = 3 -> 0.7
        assert s._incumbent_for(s.store.row("t"), 2.0) == pytest.approx(0.7)
    back = CurveStopper.from_dict(json.loads(json.dumps(s.to_dict())), GaussModel())
    assert back._incumbent_for(back.store.row("t"), 1.0) == s._incumbent_for(s.store.row("t"), 1.0)


def test_top_fraction_bar_counts_live_forecasts_before_any_completion():
    """With no final value yet, the live trials' forecast medians place the top fraction (the
    best same-step value, a far stricter bar, would stop a trial that may well end in it)."""
    s = stopper(incumbent="top_fraction", top_fraction=0.2, grace_epochs=1, threshold=0.05)
    for i in range(10):  # live trials at 0.1 .. 1.0; GaussModel forecasts each at its value
        s.observe(f"o{i}", 1, round(0.1 * (i + 1), 1))
    s._forecast_batch()  # every live trial gets a forecast median
    assert s._n_completed == 0
    # besides o8's own: medians 0.1 .. 0.8 and o9's best value 1.0 (it leads, so it has no
    # forecast): 9 estimates, k = ceil(0.2 * 9) = 2 -> 0.8
    assert s._incumbent_for(s.store.row("o8"), 1.0) == pytest.approx(0.8)
    # t sees all ten others: k = 2 -> 0.9 (the best same-step value, 1.0, would be the bar
    # without the estimates)
    v = s.observe("t", 1, 0.85)  # P(N(0.85, 0.05^2) > 0.9) = 0.16: kept
    assert not v.stop and v.incumbent == pytest.approx(0.9)
    assert s.observe("u", 1, 0.72).stop  # P(> 0.9) = 2e-4
    few = stopper(incumbent="top_fraction", top_fraction=0.2, grace_epochs=1)
    for i in range(3):  # 3 estimates < 1 / 0.2: the same-step rule (best other value) decides
        few.observe(f"o{i}", 1, 0.3 + 0.1 * i)
    assert few._incumbent_for(few.store.row("o0"), 1.0) == pytest.approx(0.5)


def test_bar_confidence_builds_the_bar_from_less_optimistic_forecasts():
    """bar_confidence 0.7: the other trials enter the bar with the value they reach with
    probability 0.7 (their 30% quantile), not their median, so a trial the median bar stops is
    kept; a stopped trial then counts with its own 30% quantile too."""
    z30 = 0.05 * norm.ppf(0.3)  # GaussModel: N(value, 0.05^2); its 30% quantile is value + z30
    verdicts = {}
    for bc in (0.5, 0.7):
        s = stopper(incumbent="top_fraction", top_fraction=0.2, grace_epochs=1, threshold=0.05,
                    bar_confidence=bc)
        for i in range(7):  # live trials at 0.1 .. 0.7, two at 0.8, one at 1.0
            s.observe(f"o{i}", 1, round(0.1 * (i + 1), 1))
        for tid, val in (("h1", 0.8), ("h2", 0.8), ("top", 1.0)):
            s.observe(tid, 1, val)
        s._forecast_batch()  # "top" beats its bar (0.8): no forecast, it enters with 1.0
        shift = 0.0 if bc == 0.5 else z30
        # u sees ten others, k = 2: 1.0, then h1's (or h2's) estimate 0.8 (+ shift)
        v = s.observe("u", 1, 0.7)  # P(N(0.7, 0.05^2) > 0.8) = 0.023; > 0.774: 0.070
        verdicts[bc] = v
        assert v.incumbent == pytest.approx(0.8 + shift, abs=1e-3)  # 400 samples
        w = s.observe("w", 1, 0.2)  # stopped either way; enters the bar at 0.2 + shift
        assert w.stop and s._pop[0] == pytest.approx(0.2 + shift, abs=1e-3)
    assert verdicts[0.5].stop and verdicts[0.5].reason == "p_beat_low"
    assert not verdicts[0.7].stop
    assert verdicts[0.7].p_beat == pytest.approx(1 - norm.cdf((0.8 + z30 - 0.7) / 0.05), abs=0.01)


def test_median_or_before_any_completion_is_the_median_rule_alone():
    # no trial has completed: the incumbent is the best value at the same step (0.9), not a
    # final value, so the forecast cannot veto a median stop (Ray's median rule decides)
    s = stopper(model=GaussModel(sd=0.3), rank_gate="median_or", veto_threshold=0.05,
                min_samples=3, grace_epochs=1)
    for tid, val in (("a", 0.2), ("b", 0.4), ("c", 0.6), ("g", 0.9)):
        s.observe(tid, 1, val)
    v = s.observe("d", 1, 0.45)  # P(beat 0.9) = 0.067 >= the veto 0.05, below the median 0.5
    assert v.stop and v.reason == "below_median"


def test_the_first_trial_to_reach_a_step_is_judged_at_its_previous_step():
    # d runs ahead of everyone: at step 2 no other trial has reported yet, so its incumbent and
    # median come from step 1, which the others have reached (it was never judged otherwise)
    s = stopper(model=GaussModel(sd=0.4), rank_gate="median_or", min_samples=3, grace_epochs=1)
    assert s.observe("d", 1, 0.3).reason == "no_incumbent"  # alone at step 1
    for tid, val in (("a", 0.2), ("b", 0.4), ("c", 0.6), ("g", 0.9)):
        s.observe(tid, 1, val)
    v = s.observe("d", 2, 0.31)  # alone at step 2; at step 1: median of a, b, c, g = 0.5
    # (P(N(0.31, 0.4^2) > 0.9) = 0.07: not the plain rule's stop, the median's)
    assert v.stop and v.reason == "below_median"
    assert v.incumbent == 0.9  # the best other value at step 1
