"""The ``scoring:`` and ``pipeline:`` blocks of a sweep config (see design/SCORING.md).

Minimal first version written with the config model (issue 2); the scoring work (issue 5) owns
this module and extends it. Both blocks are optional: ``scoring`` defaults to the values of
SCORING.md, ``pipeline`` to "not declared" (cohesion and coupling are then n/a).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PenaltyWeights(_Strict):
    """Weights of the four penalties (``Penalty = 0.5*(w_ch*Ch + w_cp*Cp) + 0.5*(w_ob*Ob + w_ih*Ih)``)."""

    cohesion: float = Field(0.5, ge=0, le=1)
    coupling: float = Field(0.5, ge=0, le=1)
    observability: float = Field(0.5, ge=0, le=1)
    hygiene: float = Field(0.5, ge=0, le=1)


class ScoringConfig(_Strict):
    """Reward-minus-penalty scoring constants. Defaults are those of SCORING.md.

    Attributes:
        target: metric value that counts as success; None: the incumbent (best final so far).
        value: worth of reaching the target in GPU-hours; None: one full trial's cost times the
            number of trials in the sweep.
        cost_per_hour: price ``c`` of one GPU-hour (CPU-hour when no GPU is requested).
        penalty_weight: ``L``, GPU-hours per unit of penalty.
        tolerance: trials whose total reward is within ``tolerance * V`` of the best are
            ordered by penalty.
        objective: what Tune's scheduler/searcher optimise: the raw ``metric`` or the ``score``.
        report_every: epochs between the reports a trial promises (observability penalty).
        failure_prior_failures / failure_prior_hours: the ``a0`` / ``b0`` of P_survive.
        weights: penalty weights.
    """

    target: float | None = None
    value: float | None = Field(None, gt=0)
    cost_per_hour: float = Field(1.0, ge=0)
    penalty_weight: float = Field(1.0, ge=0)
    tolerance: float = Field(0.02, ge=0, le=1)
    objective: Literal["metric", "score"] = "metric"
    report_every: int = Field(1, ge=1)
    failure_prior_failures: float = Field(1.0, gt=0)
    failure_prior_hours: float = Field(100.0, gt=0)
    weights: PenaltyWeights = PenaltyWeights()


STEP_KINDS = ("load", "train", "evaluate", "checkpoint", "register")


class PipelineStep(_Strict):
    """One declared step of a trial's pipeline.

    Attributes:
        name: unique step name.
        responsibilities: distinct responsibilities the step has (e.g. ``[train]``); cohesion is
            ``1 - 1/k`` with k the number of them.
        inputs: names of the steps (or artifacts) the step reads.
    """

    name: str = Field(min_length=1)
    responsibilities: list[str] = Field(min_length=1)
    inputs: list[str] = []


class PipelineConfig(_Strict):
    """A declared pipeline: its steps in order."""

    steps: list[PipelineStep] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique_names(cls, v: list[PipelineStep]) -> list[PipelineStep]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"step names must be unique, got {dup[0]!r} more than once")
        return v
