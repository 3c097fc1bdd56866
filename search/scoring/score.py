"""Score every trial of a sweep: reward minus penalty, gates, and the two-stage ranking.

Entry point: :func:`score_trials` (records in, ranked :class:`TrialScore` list out). It is pure
and cheap (one batched forecast for the running trials), so the orchestrator calls it at every
decision point and once at the end.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from search.forecast.base import Curve, CurveModel, LastValueModel
from search.scoring import penalties as pen
from search.scoring import reward as rw
from search.scoring.types import FailureHistory, ParamSpec, Pipeline, ScoringParams, TrialRecord

GATE_SECRET = "secret"
GATE_NON_FINITE = "non_finite_final"


@dataclass(frozen=True)
class TrialScore:
    """Every component of one trial's score (SCORING.md), ready to log.

    Attributes:
        trial_id, status: as in the record.
        unit: ``gpu`` or ``cpu``: what ``cost_*`` hours are counted in.
        target: the target used for P_target (None: no incumbent yet).
        value: V; penalty_weight: L (both in cost units).
        p_target, p_survive, p_success: probabilities in [0, 1].
        cost_spent, cost_remaining: device-hours spent / forecast until ``max_step``.
        reward_total: ``P_success*V - c*(spent + remaining)``, ranks trials.
        reward_continuation: ``P_success*V - c*remaining``, what a stop decision weighs.
        observability, hygiene: the penalties with their parts.
        cohesion, coupling: None when no pipeline is declared (n/a).
        penalty: combined penalty in [0, 1]; score: ``reward_total - L*penalty``.
        gates: why the trial may not win (``secret``, ``non_finite_final``); empty: eligible.
        rank: 1-based position in the two-stage ranking (None until ranked).
    """

    trial_id: str
    status: str
    unit: str
    target: float | None
    value: float
    penalty_weight: float
    p_target: float
    p_survive: float
    p_success: float
    cost_spent: float
    cost_remaining: float
    reward_total: float
    reward_continuation: float
    observability: pen.Observability
    hygiene: pen.Hygiene
    cohesion: float | None
    coupling: float | None
    penalty: float
    score: float
    gates: tuple[str, ...] = ()
    rank: int | None = None

    @property
    def cost_hours(self) -> float:
        return self.cost_spent + self.cost_remaining

    @property
    def eligible(self) -> bool:
        return not self.gates

    def to_metrics(self) -> dict[str, float]:
        """The flat dict the tracker logs as MLflow metrics (all floats).

        ``penalty.cohesion`` / ``penalty.coupling`` are omitted when n/a; ``rank`` only once
        ranked. ``reward`` equals ``reward.total``.
        """
        ob, ih = self.observability, self.hygiene
        m = {
            "score": self.score,
            "reward": self.reward_total,
            "reward.total": self.reward_total,
            "reward.continuation": self.reward_continuation,
            "p_success": self.p_success,
            "p_target": self.p_target,
            "p_survive": self.p_survive,
            "cost_hours": self.cost_hours,
            "cost_hours.spent": self.cost_spent,
            "cost_hours.remaining": self.cost_remaining,
            "value": self.value,
            "penalty": self.penalty,
            "penalty.observability": ob.value,
            "penalty.observability.missing_reports": ob.missing_reports,
            "penalty.observability.missing_metrics": ob.missing_metrics,
            "penalty.observability.staleness": ob.staleness,
            "penalty.hygiene": ih.value,
            "penalty.hygiene.non_finite": ih.non_finite,
            "penalty.hygiene.unlogged_keys": ih.unlogged_keys,
            "penalty.hygiene.space_mismatch": ih.space_mismatch,
            "penalty.hygiene.secret": 1.0 if ih.secret else 0.0,
            "eligible": 1.0 if self.eligible else 0.0,
        }
        if self.cohesion is not None:
            m["penalty.cohesion"] = self.cohesion
        if self.coupling is not None:
            m["penalty.coupling"] = self.coupling
        if self.rank is not None:
            m["rank"] = float(self.rank)
        return {k: float(v) for k, v in m.items()}


def _pooled_pace(records: Sequence[TrialRecord]) -> float | None:
    paces = [p for p in (rw.seconds_per_step(r) for r in records) if p]
    return float(np.median(paces)) if paces else None


def score_trials(records: Sequence[TrialRecord], params: ScoringParams | None = None, *,
                 model: CurveModel | None = None, space: Sequence[ParamSpec] = (),
                 pipeline: Pipeline | None = None, n_trials: int | None = None,
                 history: FailureHistory | None = None,
                 only: Collection[str] | None = None) -> list[TrialScore]:
    """Score and rank every trial of a sweep at one moment.

    Args:
        records: every trial known so far (running and ended); ids must be unique.
        params: the scoring constants (``ScoringParams()`` = SCORING.md's defaults).
        model: forecaster for the running trials' final values (one batched call);
            default ``LastValueModel``.
        space: the search space, for the hygiene type/range check.
        pipeline: the declared pipeline; None makes cohesion and coupling n/a.
        n_trials: trials in the sweep (``num_samples``) for the default V; default
            ``len(records)``.
        history: failure history; default: the failures and hours of ``records``.
        only: score just these trial ids (the sweep-wide quantities, V, L, the target, the
            failure history and the pooled pace, still come from all ``records``); the result
            is then unranked (``rank`` None), in ``records`` order. This is the cheap path for
            a decision point, where only the trial that reported needs its score.

    Returns:
        One :class:`TrialScore` per record, in ranking order (``rank`` 1..n); with ``only``,
        one per selected record, unranked.

    Running trials with no report yet get P_target from the finished trials' success rate
    (Laplace-smoothed: ``(hits + 1) / (finished + 2)``).
    """
    params = params if params is not None else ScoringParams()
    ids = [r.trial_id for r in records]
    if len(set(ids)) != len(ids):
        dup = min(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"trial ids must be unique, got {dup!r} more than once")
    if not records:
        return []
    mode = params.mode
    pace = _pooled_pace(records)
    costs = [rw.cost_view(r, pace) for r in records]
    if history is None:
        history = FailureHistory(sum(r.failures for r in records), sum(c.spent for c in costs))
    target = params.target if params.target is not None else rw.incumbent(records, mode)

    full = [h for h in (rw.full_trial_hours(r, pace) for r in records) if h is not None]
    one_trial = params.cost_per_hour * (float(np.mean(full)) if full else 0.0)
    value = params.value if params.value is not None else one_trial * (
        n_trials if n_trials is not None else len(records))
    lam = params.penalty_weight if params.penalty_weight is not None else one_trial

    wanted = None if only is None else set(only)
    sel = [i for i, r in enumerate(records) if wanted is None or r.trial_id in wanted]

    # P_target: ended trials by their final value, running ones by one batched forecast.
    p_target = np.zeros(len(records))
    finished = [r for r in records if r.status == "finished"]
    base = (sum(rw.reaches(r.last_value, target, mode) for r in finished) + 1) / (len(finished) + 2)
    running = [i for i in sel if not records[i].ended and records[i].steps.size]
    for i in sel:
        r = records[i]
        if r.ended:
            p_target[i] = rw.reaches(r.last_value, target, mode)
        elif not r.steps.size:
            p_target[i] = base
    if running:
        fc = (model or LastValueModel()).forecast(
            [Curve(records[i].steps, records[i].values) for i in running],
            [records[i].max_step for i in running], mode=mode)
        p_target[running] = rw.p_target_from_forecast(fc, target, mode)

    retries = np.array([-1 if records[i].max_failures < 0
                        else max(records[i].max_failures - records[i].failures, 0) for i in sel])
    remaining = np.array([costs[i].remaining for i in sel])
    p_surv = dict(zip(sel, rw.p_survive(remaining, history, prior_failures=params.prior_failures,
                                        prior_hours=params.prior_hours, retries=retries)))
    ch = pen.cohesion(pipeline)
    c_h = params.cost_per_hour

    out = []
    for i in sel:
        r = records[i]
        ps = 0.0 if r.status == "failed" else (1.0 if r.ended else float(p_surv[i]))
        pt = float(p_target[i])
        p_success = ps * pt
        c = costs[i]
        r_total = p_success * value - c_h * c.total
        r_cont = p_success * value - c_h * c.remaining
        ob = pen.observability(r, params, pace)
        ih = pen.hygiene(r, params, space)
        cp = pen.coupling(pipeline, r.observed_reads)
        penalty = pen.combine(params, ob.value, ih.value, ch, cp)
        gates = []
        if ih.secret:
            gates.append(GATE_SECRET)
        if r.last_value is not None and not math.isfinite(r.last_value):
            gates.append(GATE_NON_FINITE)
        out.append(TrialScore(
            trial_id=r.trial_id, status=r.status, unit=c.unit, target=target, value=value,
            penalty_weight=lam, p_target=pt, p_survive=ps, p_success=p_success,
            cost_spent=c.spent, cost_remaining=c.remaining, reward_total=r_total,
            reward_continuation=r_cont, observability=ob, hygiene=ih, cohesion=ch, coupling=cp,
            penalty=penalty, score=r_total - lam * penalty, gates=tuple(gates)))
    return out if only is not None else rank(out, params.tolerance * value)


def _order(scores: Sequence[TrialScore], delta: float) -> list[TrialScore]:
    if not scores:
        return []
    best = max(s.reward_total for s in scores)
    eps = 1e-9 * max(1.0, abs(best))
    near = [s for s in scores if s.reward_total >= best - delta - eps]
    rest = [s for s in scores if s.reward_total < best - delta - eps]
    near.sort(key=lambda s: (s.penalty, -s.reward_total, s.trial_id))
    rest.sort(key=lambda s: (-s.reward_total, s.penalty, s.trial_id))
    return near + rest


def rank(scores: Sequence[TrialScore], delta: float) -> list[TrialScore]:
    """Two-stage ranking (SCORING.md, "Ranking").

    Gated trials go last. Among the eligible ones, those whose total reward is within
    ``delta`` (cost units) of the best are ordered by penalty (lowest first), the rest follow
    by total reward; gated trials are ordered among themselves the same way. Remaining ties
    break by ``trial_id``, so the order does not depend on the input order.

    Returns:
        New TrialScore objects in ranking order with ``rank`` = 1..n.
    """
    if delta < 0 or not math.isfinite(delta):
        raise ValueError(f"delta must be finite and >= 0, got {delta!r}")
    ordered = _order([s for s in scores if s.eligible], delta) + _order(
        [s for s in scores if not s.eligible], delta)
    return [replace(s, rank=i + 1) for i, s in enumerate(ordered)]
