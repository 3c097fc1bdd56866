"""Property tests of the scoring core (hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from search.scoring import (
    FailureHistory,
    ParamSpec,
    Pipeline,
    PipelineStep,
    Resources,
    ScoringParams,
    TrialRecord,
    score_trials,
)

SETTINGS = settings(max_examples=40, deadline=None)
SPACE = (ParamSpec("lr", "float", 1e-4, 1e-1), ParamSpec("width", "int", 16, 256),
         ParamSpec("opt", "categorical", choices=("adam", "sgd")))
PIPE = Pipeline((PipelineStep("load", ("read",), ("data",)),
                 PipelineStep("train", ("fit", "ckpt"), ("load",))))

values = st.one_of(st.floats(-5, 5), st.just(float("nan")), st.just(float("inf")))


@st.composite
def records(draw, i: int):
    status = draw(st.sampled_from(["running", "finished", "pruned", "failed"]))
    max_step = draw(st.integers(1, 12))
    n = draw(st.integers(0 if status == "running" else 1, max_step))
    vals = draw(st.lists(values, min_size=n, max_size=n))
    wall = draw(st.floats(0, 1e5))
    since = draw(st.one_of(st.none(), st.floats(0, 1.0).map(lambda f: f * wall)))
    params = draw(st.fixed_dictionaries({}, optional={
        "lr": st.floats(-1, 1), "width": st.one_of(st.integers(0, 500), st.floats(0, 500)),
        "opt": st.sampled_from(["adam", "sgd", "rmsprop"]),
        "api_token": st.text(min_size=1, max_size=5)}))
    keys = draw(st.sets(st.sampled_from(sorted(params) or ["_"])))
    return TrialRecord.of(
        f"t{i}", status, list(range(1, n + 1)), vals, max_step=max_step, wall_time_s=wall,
        since_last_report_s=since,
        resources=Resources(cpu=draw(st.floats(0.5, 8)), gpu=draw(st.sampled_from([0, 0.5, 1]))),
        failures=draw(st.integers(0, 3)), max_failures=draw(st.integers(-1, 2)), params=params,
        logged_keys=frozenset(keys), declared_metrics=draw(st.sampled_from([(), ("a", "b")])),
        reported_metrics=draw(st.sampled_from([None, frozenset(), frozenset({"a"})])),
        observed_reads=draw(st.sampled_from([{}, {"train": frozenset({"data"})}])))


@st.composite
def sweeps(draw):
    n = draw(st.integers(1, 7))
    return [draw(records(i)) for i in range(n)]


params_st = st.builds(
    ScoringParams, mode=st.sampled_from(["min", "max"]),
    target=st.one_of(st.none(), st.floats(-5, 5)), value=st.one_of(st.none(), st.floats(0, 100)),
    penalty_weight=st.one_of(st.none(), st.floats(0, 10)), tolerance=st.floats(0, 1))


@SETTINGS
@given(sweeps(), params_st, st.booleans())
def test_probabilities_and_penalties_in_unit_interval(recs, params, with_pipe):
    scores = score_trials(recs, params, space=SPACE, pipeline=PIPE if with_pipe else None)
    assert sorted(s.rank for s in scores) == list(range(1, len(recs) + 1))
    for s in scores:
        for p in (s.p_target, s.p_survive, s.p_success, s.penalty, s.observability.value,
                  s.hygiene.value, s.observability.missing_reports,
                  s.observability.missing_metrics, s.observability.staleness,
                  s.hygiene.non_finite, s.hygiene.unlogged_keys, s.hygiene.space_mismatch):
            assert 0.0 <= p <= 1.0
        if with_pipe:
            assert 0.0 <= s.cohesion <= 1.0 and 0.0 <= s.coupling <= 1.0
        else:
            assert s.cohesion is None and s.coupling is None
        assert all(np.isfinite(v) for v in s.to_metrics().values())
        assert s.p_success <= min(s.p_target, s.p_survive) + 1e-12
        if s.hygiene.secret:
            assert s.hygiene.value == 1.0 and not s.eligible


@SETTINGS
@given(sweeps(), params_st, st.data())
def test_ranking_stable_under_relabelling(recs, params, data):
    base = score_trials(recs, params, space=SPACE)
    # reordering the input changes nothing
    perm = data.draw(st.permutations(recs))
    again = score_trials(perm, params, space=SPACE)
    assert [s.trial_id for s in again] == [s.trial_id for s in base]
    # renaming trials keeps the ranked sequence of contents (ids only break exact ties)
    names = data.draw(st.permutations([f"x{i}" for i in range(len(recs))]))
    renamed = [dataclasses.replace(r, trial_id=nm) for r, nm in zip(recs, names)]
    relab = score_trials(renamed, params, space=SPACE)

    def ranked(ss):  # what the ranking orders by; ids break exact ties of these
        return [(round(s.reward_total, 9), round(s.penalty, 9)) for s in ss]

    def content(ss):  # as a multiset: two tied trials with different gates may swap places
        return sorted(repr((round(s.reward_total, 9), round(s.penalty, 9), s.gates)) for s in ss)

    assert ranked(relab) == ranked(base)
    assert content(relab) == content(base)


@SETTINGS
@given(sweeps(), params_st, st.integers(0, 6), st.floats(1.01, 16.0))
def test_score_decreases_with_cost(recs, params, idx, factor):
    """More devices held for the same run (more device-hours) lower the score, all else equal.

    Scaling the resources scales the trial's spent and remaining hours and nothing else (its
    pace, reports and params stay), so with V and L fixed the reward and the score must drop.
    """
    params = dataclasses.replace(params, value=params.value or 10.0,
                                 penalty_weight=params.penalty_weight or 1.0, cost_per_hour=1.0)
    i = idx % len(recs)
    r = recs[i]
    bigger = dataclasses.replace(r, resources=Resources(cpu=r.resources.cpu * factor,
                                                        gpu=r.resources.gpu * factor))
    hist = FailureHistory(1, 10.0)  # fixed, so P_survive moves only with the trial's own hours
    a = {s.trial_id: s for s in score_trials(recs, params, space=SPACE, history=hist)}
    b = {s.trial_id: s for s in score_trials(recs[:i] + [bigger] + recs[i + 1:], params,
                                             space=SPACE, history=hist)}
    assume(a[r.trial_id].cost_hours > 1e-9)
    assert b[r.trial_id].cost_hours > a[r.trial_id].cost_hours
    assert b[r.trial_id].penalty == a[r.trial_id].penalty
    assert b[r.trial_id].reward_total < a[r.trial_id].reward_total
    assert b[r.trial_id].score < a[r.trial_id].score
