"""Search-space entries of a sweep config and their translation to Ray Tune / Optuna.

A search space is a mapping ``name -> entry``; each entry is one of::

    {type: uniform,    low: FLOAT, high: FLOAT}        # low < high
    {type: loguniform, low: FLOAT, high: FLOAT}        # 0 < low < high
    {type: randint,    low: INT,   high: INT}          # low < high, BOTH ends inclusive
    {type: choice,     values: [V, ...]}               # non-empty, sampled
    {type: grid,       values: [V, ...]}               # non-empty, every value tried
                                                       # (only with search.algorithm: grid)

``randint`` is inclusive at both ends (as in Optuna's ``suggest_int``); the translation to
Ray's ``tune.randint`` (exclusive upper bound) adds one.

The translators import Ray / Optuna lazily so this module stays light (``sweepcast validate``
must not import them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

SPACE_TYPES = ("uniform", "loguniform", "randint", "choice", "grid")

# Values a choice/grid may hold: scalars that Ray, Optuna and MLflow can all carry.
Scalar = bool | int | float | str | None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _finite(v: float, info: ValidationInfo) -> float:
    if not math.isfinite(v):
        raise ValueError(f"{info.field_name} must be finite, got {v!r}")
    return v


def _high_above_low(v: float, info: ValidationInfo) -> float:
    low = info.data.get("low")
    if low is not None and not v > low:
        raise ValueError(f"high must be greater than low ({low!r}), got {v!r}")
    return v


class UniformEntry(_Entry):
    """A float sampled uniformly in ``[low, high]``."""

    type: Literal["uniform"]
    low: float
    high: float

    _check_finite = field_validator("low", "high")(_finite)

    _check_order = field_validator("high")(_high_above_low)


class LogUniformEntry(_Entry):
    """A float sampled log-uniformly in ``[low, high]``, ``0 < low < high``."""

    type: Literal["loguniform"]
    low: float
    high: float

    _check_finite = field_validator("low", "high")(_finite)

    @field_validator("low")
    @classmethod
    def _low_positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"low must be > 0 for a loguniform entry, got {v!r}")
        return v

    _check_order = field_validator("high")(_high_above_low)


class RandIntEntry(_Entry):
    """An integer sampled uniformly in ``[low, high]`` (both inclusive)."""

    type: Literal["randint"]
    low: int
    high: int

    _check_order = field_validator("high")(_high_above_low)


def _non_empty_unique(v: list[Any]) -> list[Any]:
    if len(v) == 0:
        raise ValueError("values must be a non-empty list, got []")
    seen: list[Any] = []
    for x in v:
        if any(type(x) is type(y) and x == y for y in seen):
            raise ValueError(f"values must not repeat, got {x!r} twice")
        seen.append(x)
    for x in v:
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError(f"values must be finite, got {x!r}")
    return v


class ChoiceEntry(_Entry):
    """One of ``values``, sampled (uniformly for random search)."""

    type: Literal["choice"]
    values: list[Scalar]

    _check_values = field_validator("values")(_non_empty_unique)


class GridEntry(_Entry):
    """Every one of ``values`` is tried (a grid axis); only with ``search.algorithm: grid``."""

    type: Literal["grid"]
    values: list[Scalar]

    _check_values = field_validator("values")(_non_empty_unique)


SpaceEntry = Annotated[
    UniformEntry | LogUniformEntry | RandIntEntry | ChoiceEntry | GridEntry,
    Field(discriminator="type"),
]


def to_tune_space(space: Mapping[str, SpaceEntry]) -> dict[str, Any]:
    """Translate a validated search space into a Ray Tune ``param_space`` dict.

    Args:
        space: ``SearchConfig.space`` (name -> entry).

    Returns:
        ``{name: tune.uniform(...) | tune.loguniform(...) | tune.randint(...) |
        tune.choice([...]) | tune.grid_search([...])}``. ``randint``'s inclusive ``high`` becomes
        Ray's exclusive ``high + 1``.
    """
    from ray import tune  # lazy: keeps `sweepcast validate` free of Ray

    out: dict[str, Any] = {}
    for name, e in space.items():
        if isinstance(e, UniformEntry):
            out[name] = tune.uniform(e.low, e.high)
        elif isinstance(e, LogUniformEntry):
            out[name] = tune.loguniform(e.low, e.high)
        elif isinstance(e, RandIntEntry):
            out[name] = tune.randint(e.low, e.high + 1)
        elif isinstance(e, ChoiceEntry):
            out[name] = tune.choice(list(e.values))
        elif isinstance(e, GridEntry):
            out[name] = tune.grid_search(list(e.values))
        else:  # pragma: no cover - the union above is closed
            raise TypeError(f"search.space.{name}: unsupported entry {e!r}")
    return out


def to_optuna_distributions(space: Mapping[str, SpaceEntry]) -> dict[str, Any]:
    """Translate a validated search space into Optuna distributions.

    Usable as ``OptunaSearch(space=...)`` or with ``optuna.Trial._suggest``. ``grid`` entries
    have no Optuna distribution and raise ``ValueError`` (the config model already forbids
    them outside ``algorithm: grid``).
    """
    from optuna import distributions as od  # lazy

    out: dict[str, Any] = {}
    for name, e in space.items():
        if isinstance(e, UniformEntry):
            out[name] = od.FloatDistribution(e.low, e.high)
        elif isinstance(e, LogUniformEntry):
            out[name] = od.FloatDistribution(e.low, e.high, log=True)
        elif isinstance(e, RandIntEntry):
            out[name] = od.IntDistribution(e.low, e.high)
        elif isinstance(e, ChoiceEntry):
            out[name] = od.CategoricalDistribution(list(e.values))
        elif isinstance(e, GridEntry):
            raise ValueError(  # noqa: TRY004 - a value the target cannot express, not a type bug
                f"search.space.{name}: a grid entry has no Optuna distribution "
                "(use type: choice, or search.algorithm: grid)"
            )
        else:  # pragma: no cover
            raise TypeError(f"search.space.{name}: unsupported entry {e!r}")
    return out


def grid_size(space: Mapping[str, SpaceEntry]) -> int:
    """Number of grid points (product of the ``grid`` entries' sizes; 1 if none)."""
    n = 1
    for e in space.values():
        if isinstance(e, GridEntry):
            n *= len(e.values)
    return n
