"""Scoring core: SCORING.md's definitions computed by hand on a small sweep.

The worked example (``test_worked_example``), all trials on 1 GPU, 10 epochs, target 0.9
(mode max), V = 40 GPU-h, c = 1, L = 10, tolerance 2% of V (delta = 0.8):

trial  status    final  hours  notes                                   reward   penalty  score
A      finished  0.93   4      1 of 5 config keys not logged           36       0.04     35.6
B      finished  0.91   4.5    clean                                   35.5     0        35.5
C      finished  0.88   3      6/10 reports, 1 of 2 metrics            -3       0.15     -4.5
D      running   ?      2+2    at epoch 5, forecast P(>0.9) = 0.5      15.34    0        15.34
E      failed    nan    1      1 failure, NaN at its last report       -1       0.2      -3
F      finished  0.95   3      config carries a token                  37       0.5      32

History: k = 1 failure (E) over T = 4 + 4.5 + 3 + 2 + 1 + 3 = 17.5 GPU-h, so D survives its
remaining 2 GPU-h with ((100 + 17.5) / (100 + 17.5 + 2)) ** (1 + 1).

Ranking: gates first (F leaked a secret, E's final value is NaN: both last, even though F has
the best reward). Among the eligible, best reward 36 (A); B (35.5) is within delta, so A and B
are ordered by penalty: B, A. Then D and C by reward. Then F, E. Final: B, A, D, C, F, E.

The scalar score disagrees on A vs B: A's 0.5 GPU-h reward lead outweighs L*0.04 = 0.4 of
penalty, so Score(A) = 35.6 > Score(B) = 35.5. The two-stage rule treats a reward gap inside
the tolerance as a tie and lets the normative penalty decide, so B (fully logged) wins.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.forecast.base import CurveModel, SampleForecast, check_batch
from search.scoring import (
    FailureHistory,
    ParamSpec,
    Pipeline,
    PipelineStep,
    Resources,
    ScoringParams,
    TrialRecord,
    continuation_decisions,
    p_survive,
    ranking_markdown,
    ranking_rows,
    score_trials,
)
from search.scoring.penalties import hygiene, observability

H = 3600.0
GPU = Resources(cpu=1, gpu=1)


class FixedSamples(CurveModel):
    """Test double: every curve's final value has the same four equally likely samples."""

    def __init__(self, samples):
        self.samples = np.asarray(samples, float)

    def forecast(self, curves, target_step, *, mode="max"):
        check_batch(curves, target_step)
        return SampleForecast(np.tile(self.samples, (len(curves), 1)))


def _curve(final, n=10):
    return list(range(1, n + 1)), list(np.linspace(0.5, final, n))


def worked_example():
    steps, vals = _curve(0.93)
    a = TrialRecord.of("A", "finished", steps, vals, max_step=10, wall_time_s=4 * H,
                       since_last_report_s=0.0, resources=GPU,
                       params={"lr": 0.01, "width": 64, "depth": 2, "opt": "adam", "dropout": 0.1},
                       logged_keys=frozenset({"lr", "width", "depth", "opt"}))
    steps, vals = _curve(0.91)
    b = TrialRecord.of("B", "finished", steps, vals, max_step=10, wall_time_s=4.5 * H,
                       since_last_report_s=0.0, resources=GPU,
                       params={"lr": 0.02}, logged_keys=frozenset({"lr"}))
    c = TrialRecord.of("C", "finished", [1, 2, 5, 6, 9, 10], [.5, .6, .7, .8, .85, .88],
                       max_step=10, wall_time_s=3 * H, since_last_report_s=0.0, resources=GPU,
                       declared_metrics=("val_acc", "val_loss"),
                       reported_metrics=frozenset({"val_acc"}))
    d = TrialRecord.of("D", "running", [1, 2, 3, 4, 5], [.5, .6, .7, .8, .85], max_step=10,
                       wall_time_s=2 * H, since_last_report_s=0.0, resources=GPU)
    e = TrialRecord.of("E", "failed", [1, 2], [0.5, math.nan], max_step=10, wall_time_s=1 * H,
                       since_last_report_s=0.0, resources=GPU, failures=1)
    steps, vals = _curve(0.95)
    f = TrialRecord.of("F", "finished", steps, vals, max_step=10, wall_time_s=3 * H,
                       since_last_report_s=0.0, resources=GPU,
                       params={"lr": 0.05, "hf_token": "hf_" + "a1B2" * 9})
    return [a, b, c, d, e, f]


PARAMS = ScoringParams(mode="max", target=0.9, value=40.0, cost_per_hour=1.0,
                       penalty_weight=10.0, tolerance=0.02)


def test_worked_example():
    scores = score_trials(worked_example(), PARAMS, model=FixedSamples([.85, .88, .91, .95]))
    by = {s.trial_id: s for s in scores}
    ps_d = ((100 + 17.5) / (100 + 17.5 + 2)) ** 2

    # rewards: P_success * V - c * (spent + remaining)
    assert by["A"].reward_total == pytest.approx(36.0)
    assert by["B"].reward_total == pytest.approx(35.5)
    assert by["C"].p_target == 0.0 and by["C"].reward_total == pytest.approx(-3.0)
    assert by["D"].p_target == pytest.approx(0.5)
    assert by["D"].p_survive == pytest.approx(ps_d)
    assert by["D"].cost_spent == pytest.approx(2.0) and by["D"].cost_remaining == pytest.approx(2.0)
    assert by["D"].reward_total == pytest.approx(0.5 * ps_d * 40 - 4)
    assert by["D"].reward_continuation == pytest.approx(0.5 * ps_d * 40 - 2)
    assert by["E"].p_survive == 0.0 and by["E"].reward_total == pytest.approx(-1.0)
    assert by["F"].reward_total == pytest.approx(37.0)
    assert all(by[t].p_survive == 1.0 for t in "ABCF")

    # penalties (no pipeline: 0.5*Ob + 0.5*Ih)
    assert by["A"].hygiene.unlogged_keys == pytest.approx(0.2)
    assert by["A"].hygiene.value == pytest.approx(0.08)
    assert by["A"].penalty == pytest.approx(0.04)
    assert by["B"].penalty == 0.0 and by["D"].penalty == 0.0
    assert by["C"].observability.missing_reports == pytest.approx(0.4)
    assert by["C"].observability.missing_metrics == pytest.approx(0.5)
    assert by["C"].observability.staleness == 0.0
    assert by["C"].penalty == pytest.approx(0.15)
    assert by["E"].hygiene.non_finite == pytest.approx(0.5)
    assert by["E"].hygiene.value == pytest.approx(0.4)
    assert by["E"].penalty == pytest.approx(0.2)
    assert by["F"].hygiene.value == 1.0 and by["F"].hygiene.secret_keys == ("hf_token",)
    assert by["F"].penalty == pytest.approx(0.5)

    # scores and gates
    expected_score = {"A": 35.6, "B": 35.5, "C": -4.5, "D": 0.5 * ps_d * 40 - 4, "E": -3.0,
                      "F": 32.0}
    for t, v in expected_score.items():
        assert by[t].score == pytest.approx(v), t
    assert by["F"].gates == ("secret",) and by["E"].gates == ("non_finite_final",)
    assert all(by[t].eligible for t in "ABCD")

    # the two-stage ranking, and the scalar score that disagrees on A vs B (module docstring)
    assert [s.trial_id for s in scores] == ["B", "A", "D", "C", "F", "E"]
    assert [s.rank for s in scores] == [1, 2, 3, 4, 5, 6]
    by_score = sorted(scores, key=lambda s: -s.score)
    assert [s.trial_id for s in by_score][:2] == ["A", "B"]


def test_metrics_and_table():
    scores = score_trials(worked_example(), PARAMS, model=FixedSamples([.85, .88, .91, .95]))
    m = scores[0].to_metrics()
    for key in ("score", "reward", "reward.total", "reward.continuation", "p_success",
                "p_target", "p_survive", "cost_hours", "penalty", "penalty.observability",
                "penalty.hygiene", "penalty.observability.staleness",
                "penalty.hygiene.non_finite", "rank"):
        assert key in m and isinstance(m[key], float)
    assert "penalty.cohesion" not in m and "penalty.coupling" not in m  # n/a without pipeline
    assert m["rank"] == 1.0 and m["reward"] == m["reward.total"]
    rows = ranking_rows(list(reversed(scores)))
    assert [r["trial"] for r in rows] == ["B", "A", "D", "C", "F", "E"]
    md = ranking_markdown(rows)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| rank | trial |") and len(lines) == 2 + 6
    assert "| 5 | F | finished | no |" in md and "secret" in md and "n/a" in md
    assert "hf_" not in md  # the table never carries param values


def test_pipeline_cohesion_and_coupling():
    pipe = Pipeline((PipelineStep("load", ("read",), ("dataset",)),
                     PipelineStep("train", ("fit", "checkpoint"), ("load",)),
                     PipelineStep("evaluate", ("score",), ("train",))))
    rec = TrialRecord.of("t", "finished", [1, 2], [0.5, 0.6], max_step=2, wall_time_s=H,
                         since_last_report_s=0.0,
                         observed_reads={"train": frozenset({"load", "dataset"})})
    (s,) = score_trials([rec], ScoringParams(value=1.0, penalty_weight=1.0), pipeline=pipe)
    assert s.cohesion == pytest.approx((0 + 0.5 + 0) / 3)
    assert s.coupling == pytest.approx(1 / 4)  # 3 declared + 1 undeclared read
    assert s.penalty == pytest.approx(0.5 * (0.5 / 6 + 0.5 / 4))
    m = s.to_metrics()
    assert m["penalty.cohesion"] == pytest.approx(1 / 6) and m["penalty.coupling"] == 0.25


def test_default_value_and_penalty_weight_in_cpu_hours():
    cpu2 = Resources(cpu=2, gpu=0)
    recs = [TrialRecord.of(f"t{i}", "finished", [1, 2], [0.1 * i, 0.2 * i], max_step=2,
                           wall_time_s=i * H, since_last_report_s=0.0, resources=cpu2)
            for i in (1, 2, 3)]
    scores = score_trials(recs, ScoringParams(cost_per_hour=1.0), n_trials=10)
    # one full trial costs mean(2, 4, 6) = 4 CPU-hours; V = 4 * 10; L = 4
    assert all(s.unit == "cpu" and s.value == pytest.approx(40.0) for s in scores)
    assert all(s.penalty_weight == pytest.approx(4.0) for s in scores)
    # target = incumbent (t3's 0.6): only t3 reaches it
    by = {s.trial_id: s for s in scores}
    assert by["t3"].p_target == 1.0 and by["t1"].p_target == 0.0
    assert by["t3"].reward_total == pytest.approx(40 - 6)
    assert scores[0].trial_id == "t3"


def test_mode_min_uses_lower_is_better():
    recs = [TrialRecord.of("lo", "finished", [1], [0.2], max_step=1, wall_time_s=H),
            TrialRecord.of("hi", "finished", [1], [0.9], max_step=1, wall_time_s=H)]
    by = {s.trial_id: s for s in score_trials(recs, ScoringParams(mode="min", value=10.0))}
    assert by["lo"].p_target == 1.0 and by["hi"].p_target == 0.0


def test_p_survive_formula_and_retries():
    hist = FailureHistory(failures=3, hours=50.0)
    p0 = (150 / 160) ** 4
    assert float(p_survive(10.0, hist)) == pytest.approx(p0)
    # one retry: P(N <= 1) for the negative binomial = p^a (1 + a (1 - p))
    p = 150 / 160
    assert float(p_survive(10.0, hist, retries=1)) == pytest.approx(p**4 * (1 + 4 * (1 - p)))
    assert float(p_survive(10.0, hist, retries=-1)) == 1.0
    assert float(p_survive(0.0, hist)) == 1.0
    with pytest.raises(ValueError, match="remaining_hours"):
        p_survive(-1.0, hist)


def test_observability_staleness_and_quiet_trial():
    p = ScoringParams()
    # 6 reports in 600 s -> 100 s/step; 400 s quiet: ratio 4 -> staleness clip(1.5) = 1,
    # and it should have reached step 10: 4 of 10 reports missing.
    quiet = TrialRecord.of("q", "running", range(1, 7), [0.1] * 6, max_step=20,
                           wall_time_s=1000.0, since_last_report_s=400.0)
    ob = observability(quiet, p)
    assert ob.staleness == 1.0 and ob.missing_reports == pytest.approx(0.4)
    late = TrialRecord.of("l", "running", range(1, 7), [0.1] * 6, max_step=20,
                          wall_time_s=800.0, since_last_report_s=200.0)
    ob = observability(late, p)
    assert ob.staleness == pytest.approx(0.5) and ob.missing_reports == pytest.approx(0.25)
    fresh = TrialRecord.of("f", "running", range(1, 7), [0.1] * 6, max_step=20,
                           wall_time_s=650.0, since_last_report_s=50.0)
    assert observability(fresh, p).value == 0.0


def test_hygiene_space_mismatch_and_secret_value():
    space = (ParamSpec("lr", "float", 1e-4, 1e-1), ParamSpec("width", "int", 16, 256),
             ParamSpec("opt", "categorical", choices=("adam", "sgd")))
    rec = TrialRecord.of("t", "finished", [1], [0.5], max_step=1, wall_time_s=1.0,
                         params={"lr": 0.5, "width": 64.0, "opt": "adam", "extra": 3})
    ih = hygiene(rec, ScoringParams(), space)
    assert ih.space_mismatch == pytest.approx(2 / 3) and ih.value == pytest.approx(0.2 * 2 / 3)
    assert not ih.secret
    leaked = TrialRecord.of("s", "finished", [1], [0.5], max_step=1, wall_time_s=1.0,
                            params={"data": {"path": "AKIAABCDEFGHIJKLMNOP"}, "use_auth": False})
    ih = hygiene(leaked, ScoringParams(), space)
    assert ih.secret_keys == ("data.path",) and ih.value == 1.0


def test_running_trial_without_reports_uses_base_rate():
    recs = [TrialRecord.of("done", "finished", [1, 2], [0.5, 0.95], max_step=2,
                           wall_time_s=2 * H),
            TrialRecord.of("new", "running", [], [], max_step=2, wall_time_s=10.0)]
    by = {s.trial_id: s for s in score_trials(recs, ScoringParams(target=0.9, value=4.0))}
    assert by["new"].p_target == pytest.approx((1 + 1) / (1 + 2))
    # no step done yet: 2 steps ahead at the pooled pace of 1 h/step
    assert by["new"].cost_remaining == pytest.approx(2.0)


def test_continuation_decisions():
    fc = SampleForecast(np.array([[0.5, 0.6, 0.95, 0.97], [0.1, 0.2, 0.3, 0.4]]))
    d = continuation_decisions(fc, target=0.9, mode="max", remaining_hours=[2.0, 0.5],
                               value=10.0, history=FailureHistory(0, 0.0))
    ps = np.array([100 / 102, 100 / 100.5])
    assert d.p_target.tolist() == [0.5, 0.0]
    np.testing.assert_allclose(d.p_survive, ps)
    np.testing.assert_allclose(d.reward, [0.5 * ps[0] * 10 - 2, -0.5])
    assert d.keep.tolist() == [True, False] and d.reasons == ["reward_pays", "reward_low"]
    # no incumbent yet: everything may still win, only the compute decides
    d = continuation_decisions(fc, target=None, mode="max", remaining_hours=[20.0, 0.5],
                               value=10.0, margin=1.0)
    assert d.keep.tolist() == [False, True]


@pytest.mark.parametrize("kw, field", [
    ({"tolerance": 1.5}, "tolerance"), ({"cost_per_hour": -1}, "cost_per_hour"),
    ({"mode": "up"}, "mode"), ({"w_cohesion": 0.7}, "w_cohesion"),
    ({"prior_hours": 0}, "prior_hours"), ({"value": math.inf}, "value"),
])
def test_scoring_params_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        ScoringParams(**kw)


def test_record_errors_name_the_problem():
    with pytest.raises(ValueError, match="status"):
        TrialRecord.of("x", "done", [1], [1.0], max_step=1, wall_time_s=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        TrialRecord.of("x", "running", [2, 1], [1.0, 1.0], max_step=3, wall_time_s=0)
    with pytest.raises(ValueError, match="beyond max_step"):
        TrialRecord.of("x", "running", [1, 5], [1.0, 1.0], max_step=3, wall_time_s=0)
    with pytest.raises(ValueError, match="unique"):
        rec = TrialRecord.of("x", "running", [1], [1.0], max_step=3, wall_time_s=0)
        score_trials([rec, rec])
