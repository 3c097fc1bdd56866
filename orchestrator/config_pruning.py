"""The ``pruning:`` block of a sweep config: a discriminated union on ``scheduler``.

Each scheduler takes only its own options; anything else is an error naming the scheduler
(``extra="forbid"``). Epoch counts are in the trial's ``epoch`` (the time attribute every
sweepcast trial reports, see ``trials.api``).

==========  ==========================================================================
scheduler   options
==========  ==========================================================================
fifo        none (every trial runs to ``max_epochs``)
asha        grace_period, reduction_factor, brackets (Ray ``AsyncHyperBandScheduler``)
median      grace_period, min_samples_required (Ray ``MedianStoppingRule``)
hyperband   reduction_factor, stop_last_trials (Ray ``HyperBandScheduler``)
curve       model and every knob of ``search.policy.PolicyConfig`` (sweepcast's forecast pruner)
==========  ==========================================================================

``CurvePruning`` is owned by the curve-scheduler work (issue 4) and may grow options.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEDULERS = ("fifo", "asha", "median", "hyperband", "curve")


class _Pruning(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FifoPruning(_Pruning):
    """No pruning: every trial runs to ``max_epochs``."""

    scheduler: Literal["fifo"] = "fifo"


class AshaPruning(_Pruning):
    """Asynchronous successive halving (Ray's ``AsyncHyperBandScheduler``)."""

    scheduler: Literal["asha"]
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before any stop")
    reduction_factor: float = Field(4.0, gt=1, description="keep 1/reduction_factor per rung")
    brackets: int = Field(1, ge=1, description="number of brackets")


class MedianPruning(_Pruning):
    """Median stopping rule (Ray's ``MedianStoppingRule``)."""

    scheduler: Literal["median"]
    grace_period: int = Field(1, ge=0, description="epochs before a trial may be stopped")
    min_samples_required: int = Field(3, ge=1, description="trials needed to compute a median")


class HyperbandPruning(_Pruning):
    """Synchronous HyperBand (Ray's ``HyperBandScheduler``); ``max_t`` is ``max_epochs``."""

    scheduler: Literal["hyperband"]
    reduction_factor: float = Field(3.0, gt=1)
    stop_last_trials: bool = True


class CurvePruning(_Pruning):
    """sweepcast's learning-curve forecast scheduler (``search.adapters``; issue 4).

    A trial is stopped when the forecast probability that it beats the incumbent at
    ``max_epochs`` falls below ``threshold``, checked every ``decision_interval`` epochs once the
    trial has run ``grace_epochs`` epochs; with the default ``rank_gate: median_or`` also when it
    is below the median of the others' running means and its P(beat) is under
    ``veto_threshold``; ``pause_ahead`` pauses a trial (one that has a checkpoint) ahead of its
    peers while others wait to run. The defaults are the policy measured best on replayed real
    curves (BENCHMARKS.md, issue 4: 12.0x fewer epochs than FIFO at 0.83% relative regret,
    chosen leave-one-task-out); ``rank_gate: none, threshold: 0.05, grace_epochs: 3,
    pause_ahead: false`` is the plain rule of Domhan et al. (2015).
    """

    scheduler: Literal["curve"]
    threshold: float = Field(0.01, gt=0, lt=1, description="stop when P(beat incumbent) < this")
    grace_epochs: int = Field(1, ge=1, description="epochs before the first decision")
    decision_interval: int = Field(1, ge=1, description="epochs between decisions")
    model: Literal["pfn", "parametric", "last-value", "pfn-schedule"] = "pfn"
    compute_exponent: float = Field(
        0.0, ge=0, description="threshold x (remaining epochs / max_epochs) ** this (0: plain rule)"
    )
    incumbent: Literal["completed", "best_seen", "top_fraction"] = Field(
        "completed", description="the value to beat: best completed final, best value seen, or "
        "the final value that ranks in the best top_fraction of the sweep"
    )
    top_fraction: float = Field(
        0.1, gt=0, lt=1, description="with incumbent: top_fraction, the share of the sweep to keep"
    )
    bar_confidence: float = Field(
        0.5, gt=0, lt=1, description="with incumbent: top_fraction, each other trial enters the "
        "bar with the final value its forecast reaches with this probability (0.5: its median; "
        "higher: a less optimistic bar that keeps more late bloomers)"
    )
    before_completion: Literal["same_step", "none"] = Field(
        "same_step",
        description="before any trial completes, compare with the best value at the same epoch",
    )
    max_forecast_age: int = Field(
        2, ge=0, description="reuse a trial's forecast made at most this many epochs ago"
    )
    rank_gate: Literal["none", "median", "median_or"] = Field(
        "median_or", description="'median': only trials below the other trials' median may stop; "
        "'median_or': also stop trials below the median of running means unless "
        "P(beat) >= veto_threshold"
    )
    veto_threshold: float = Field(
        0.1, gt=0, le=1, description="with rank_gate: median_or, P(beat) that keeps a trial"
    )
    min_samples: int = Field(3, ge=1, description="trials needed at an epoch for the median gate")
    batch_wait: int = Field(
        0, ge=0, description="epochs a trial may wait for the next batched forecast (0: none)"
    )
    pause_ahead: bool = Field(
        True, description="pause a trial that reaches an epoch fewer than min_samples others "
        "have reached while other trials wait to run (breadth-first; trials must checkpoint)"
    )


PruningConfig = Annotated[
    FifoPruning | AshaPruning | MedianPruning | HyperbandPruning | CurvePruning,
    Field(discriminator="scheduler"),
]


def grace_epochs_of(p: BaseModel) -> int | None:
    """The epochs a scheduler lets every trial run before it may stop one (None: no such option)."""
    for name in ("grace_period", "grace_epochs"):
        if name in type(p).model_fields:
            return int(getattr(p, name))
    return None
