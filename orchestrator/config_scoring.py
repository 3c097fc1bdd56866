"""The ``scoring:`` and ``pipeline:`` blocks of a sweep config (see design/SCORING.md).

Both blocks are optional. ``scoring`` defaults to SCORING.md's values; ``pipeline`` defaults to
"not declared" (cohesion and coupling are then reported as n/a and their weight moves to
observability and hygiene). Strict like the rest of the config: unknown keys are errors,
models are frozen, and every error names the field and the value.

Example::

    scoring:
      target: 0.97            # val_accuracy that counts as success (default: the incumbent)
      value: null             # V in GPU-hours (default: one full trial's cost x num_samples)
      cost_per_hour: 1.0      # c
      penalty_weight: null    # L in GPU-hours (default: one full trial's cost)
      tolerance: 0.02         # two-stage ranking: within tolerance*V of the best -> by penalty
      objective: metric       # metric | score: what Tune's scheduler and searcher optimise
      report_every: 1         # epochs between the reports a trial promises
      failure_prior_failures: 1.0    # a0
      failure_prior_hours: 100.0     # b0
      weights: {cohesion: 0.5, coupling: 0.5, observability: 0.5, hygiene: 0.5, structure: 0.5}
      hygiene: {non_finite: 0.4, non_finite_scale: 10, unlogged: 0.4, mismatch: 0.2}
      staleness: {grace: 1.0, span: 2.0}
      stop_on_reward: false   # also stop a trial when its continuation reward <= stop_margin
      stop_margin: 0.0
    pipeline:
      steps:
        - {name: load, responsibilities: [read data], inputs: [dataset]}
        - {name: train, responsibilities: [fit], inputs: [load]}
        - {name: evaluate, responsibilities: [score, plot], inputs: [train, load]}

The core (``search.scoring``) takes plain dataclasses: :meth:`ScoringConfig.to_params` and
:meth:`PipelineConfig.to_pipeline` convert.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:  # the core is light, but keep `sweepcast validate` minimal anyway
    from search.scoring.types import Pipeline, ScoringParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _finite(v: float | None, info) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"{info.field_name} must be finite, got {v!r}")
    return v


def _sums_to_one(model: BaseModel, names: tuple[str, ...], where: str) -> None:
    total = sum(getattr(model, n) for n in names)
    if abs(total - 1.0) > 1e-9:
        got = ", ".join(f"{n}={getattr(model, n)!r}" for n in names)
        raise ValueError(f"{where}: {' + '.join(names)} must sum to 1, got {got} (sum {total!r})")


class PenaltyWeights(_Strict):
    """Penalty weights: ``Penalty = s*(w_ch*Ch + w_cp*Cp) + (1-s)*(w_ob*Ob + w_ih*Ih)``.

    ``s`` is ``structure`` (0.5); cohesion+coupling and observability+hygiene must each sum to
    1 so the penalty stays in [0, 1]. Without a pipeline ``Penalty = w_ob*Ob + w_ih*Ih``.
    """

    cohesion: float = Field(0.5, ge=0, le=1)
    coupling: float = Field(0.5, ge=0, le=1)
    observability: float = Field(0.5, ge=0, le=1)
    hygiene: float = Field(0.5, ge=0, le=1)
    structure: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _sums(self) -> PenaltyWeights:
        _sums_to_one(self, ("cohesion", "coupling"), "weights")
        _sums_to_one(self, ("observability", "hygiene"), "weights")
        return self


class HygieneWeights(_Strict):
    """``Ih = non_finite*min(1, non_finite_scale*share) + unlogged*share + mismatch*share``."""

    non_finite: float = Field(0.4, ge=0, le=1)
    non_finite_scale: float = Field(10.0, ge=0)
    unlogged: float = Field(0.4, ge=0, le=1)
    mismatch: float = Field(0.2, ge=0, le=1)

    _check_finite = field_validator("non_finite_scale")(_finite)

    @model_validator(mode="after")
    def _sums(self) -> HygieneWeights:
        _sums_to_one(self, ("non_finite", "unlogged", "mismatch"), "hygiene")
        return self


class StalenessConfig(_Strict):
    """Staleness part of observability: ``clip((since_last/interval - grace) / span, 0, 1)``."""

    grace: float = Field(1.0, ge=0)
    span: float = Field(2.0, gt=0)

    _check_finite = field_validator("grace", "span")(_finite)


class ScoringConfig(_Strict):
    """Reward-minus-penalty scoring constants. Defaults are those of SCORING.md.

    Attributes:
        target: metric value that counts as success; None: the incumbent (best final so far).
        value: ``V``, worth of reaching the target in GPU-hours (cost units); None: one full
            trial's cost times ``num_samples``.
        cost_per_hour: price ``c`` of one GPU-hour (CPU-hour when no GPU is requested).
        penalty_weight: ``L``, GPU-hours per unit of penalty; None: one full trial's cost
            (SCORING.md names ``L`` without a default; this keeps it on the sweep's scale).
        tolerance: trials whose total reward is within ``tolerance * V`` of the best are
            ordered by penalty (two-stage ranking).
        objective: what Tune's scheduler/searcher optimise: the raw ``metric`` or the ``score``.
        report_every: epochs between the reports a trial promises (observability penalty).
        failure_prior_failures / failure_prior_hours: the ``a0`` / ``b0`` of P_survive.
        weights, hygiene, staleness: penalty weights and constants.
        stop_on_reward: also stop a trial whose continuation reward (expected value minus
            remaining compute, SCORING.md) is <= ``stop_margin``, on top of the pruning
            scheduler's own decisions (from its grace period on); reason ``reward_low``.
        stop_margin: cost units; 0 is break-even.
    """

    target: float | None = None
    value: float | None = Field(None, gt=0)
    cost_per_hour: float = Field(1.0, ge=0)
    penalty_weight: float | None = Field(None, ge=0)
    tolerance: float = Field(0.02, ge=0, le=1)
    objective: Literal["metric", "score"] = "metric"
    report_every: int = Field(1, ge=1)
    failure_prior_failures: float = Field(1.0, gt=0)
    failure_prior_hours: float = Field(100.0, gt=0)
    weights: PenaltyWeights = PenaltyWeights()
    hygiene: HygieneWeights = HygieneWeights()
    staleness: StalenessConfig = StalenessConfig()
    stop_on_reward: bool = False
    stop_margin: float = 0.0

    _check_finite = field_validator(
        "target", "value", "cost_per_hour", "penalty_weight", "failure_prior_failures",
        "failure_prior_hours", "stop_margin")(_finite)

    def to_params(self, mode: Literal["min", "max"]) -> ScoringParams:
        """The core's :class:`search.scoring.types.ScoringParams` for a sweep of ``mode``."""
        from search.scoring.types import ScoringParams

        w, h, s = self.weights, self.hygiene, self.staleness
        return ScoringParams(
            mode=mode, target=self.target, value=self.value, cost_per_hour=self.cost_per_hour,
            penalty_weight=self.penalty_weight, tolerance=self.tolerance,
            prior_failures=self.failure_prior_failures, prior_hours=self.failure_prior_hours,
            structure_share=w.structure, w_cohesion=w.cohesion, w_coupling=w.coupling,
            w_observability=w.observability, w_hygiene=w.hygiene,
            hygiene_non_finite=h.non_finite, hygiene_non_finite_scale=h.non_finite_scale,
            hygiene_unlogged=h.unlogged, hygiene_mismatch=h.mismatch,
            staleness_grace=s.grace, staleness_span=s.span, report_every=float(self.report_every))


STEP_KINDS = ("load", "train", "evaluate", "checkpoint", "register")


class PipelineStep(_Strict):
    """One declared step of a trial's pipeline.

    Attributes:
        name: unique step name (typically one of ``STEP_KINDS``; any name is allowed).
        responsibilities: the step's distinct responsibilities (e.g. ``[train]``); cohesion is
            ``1 - 1/k`` with k the number of them. Repeats are an error.
        inputs: what the step reads: names of earlier steps (their artifacts) or of external
            artifacts. A step may not read itself or a later step.
    """

    name: str = Field(min_length=1)
    responsibilities: list[str] = Field(min_length=1)
    inputs: list[str] = []

    @field_validator("responsibilities", "inputs")
    @classmethod
    def _distinct(cls, v: list[str], info) -> list[str]:
        for x in v:
            if not x.strip():
                raise ValueError(f"{info.field_name} entries must be non-empty, got {x!r}")
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"{info.field_name} must not repeat, got {dup[0]!r} more than once")
        return v


class PipelineConfig(_Strict):
    """A declared pipeline: its steps in execution order."""

    steps: list[PipelineStep] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _well_formed(cls, v: list[PipelineStep]) -> list[PipelineStep]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"step names must be unique, got {dup[0]!r} more than once")
        seen: set[str] = set()
        for s in v:
            for i in s.inputs:
                if i == s.name:
                    raise ValueError(f"step {s.name!r} lists itself as an input")
                if i in names and i not in seen:
                    raise ValueError(
                        f"step {s.name!r} reads {i!r}, which runs later: inputs must name "
                        "earlier steps or external artifacts")
            seen.add(s.name)
        return v

    def to_pipeline(self) -> Pipeline:
        """The core's :class:`search.scoring.types.Pipeline`."""
        from search.scoring.types import Pipeline
        from search.scoring.types import PipelineStep as CoreStep

        return Pipeline(tuple(CoreStep(s.name, tuple(s.responsibilities), tuple(s.inputs))
                              for s in self.steps))
