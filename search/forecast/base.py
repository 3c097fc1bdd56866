"""The `CurveModel` seam: partial learning curves in, predictive distributions out.

Contract (every implementation passes ``tests/unit/test_curvemodel_contract.py``):

* ``Curve`` holds one trial's observed prefix in the **user's units**: ``steps`` strictly
  increasing positive numbers (epochs, any spacing; gaps allowed) and ``values`` of the same
  length. Values may contain NaN/inf (a diverged run); an implementation must not crash on them.
* ``CurveModel.forecast(curves, target_step, mode=...)`` returns a ``Forecast`` over the batch:
  one predictive distribution per curve of the metric's value at ``target_step`` (a scalar or one
  step per curve, each >= the curve's last step), again in the user's units. A model may use
  the batch as a whole (the PFN's batch calibration: one temperature from the batch's own
  prefixes); one that does says so and offers a per-curve mode.
* ``mode`` is the metric's direction (``"max"``: higher is better, ``"min"``: lower is better).
  It is needed by models that normalise curves; quantiles and CDFs are always in plain user
  units (a quantile of 0.05 is the 5% quantile of the value, whatever the direction).
* Bad input raises ``ValueError`` naming what was wrong: an empty curve, steps that go
  backwards or repeat, mismatched lengths, a target before the last observed step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["min", "max"]


@dataclass(frozen=True)
class Curve:
    """One trial's observed learning-curve prefix.

    Attributes:
        steps: shape (n,), strictly increasing, > 0 (epochs; float allowed).
        values: shape (n,), the metric in user units; NaN/inf allowed (divergence).
    """

    steps: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, steps: Sequence[float], values: Sequence[float]) -> Curve:
        s = np.asarray(steps, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        check_curve(s, v)
        return cls(s, v)

    def __len__(self) -> int:
        return int(self.steps.shape[0])


def check_curve(steps: np.ndarray, values: np.ndarray, where: str = "curve") -> None:
    """Raise ``ValueError`` naming the problem if (steps, values) is not a valid prefix."""
    if steps.ndim != 1 or values.ndim != 1:
        raise ValueError(f"{where}: steps and values must be 1-D, got shapes {steps.shape}, {values.shape}")
    if steps.shape[0] == 0:
        raise ValueError(f"{where}: empty curve (no observed points)")
    if steps.shape != values.shape:
        raise ValueError(
            f"{where}: steps and values differ in length ({steps.shape[0]} vs {values.shape[0]})"
        )
    if not np.all(np.isfinite(steps)):
        raise ValueError(f"{where}: steps must be finite, got {steps.tolist()!r}")
    if steps[0] <= 0:
        raise ValueError(f"{where}: steps must be > 0, got first step {steps[0]!r}")
    if steps.shape[0] > 1 and np.any(np.diff(steps) <= 0):
        i = int(np.argmax(np.diff(steps) <= 0))
        raise ValueError(
            f"{where}: steps must strictly increase, got {steps[i]!r} then {steps[i + 1]!r}"
        )


def check_mode(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is ``"min"`` or ``"max"``."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def check_batch(curves: Sequence[Curve], target_step: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate a batch and return target steps as a float array of shape (len(curves),)."""
    if len(curves) == 0:
        raise ValueError("forecast needs at least one curve, got an empty batch")
    targets = np.broadcast_to(np.asarray(target_step, dtype=np.float64), (len(curves),)).copy()
    for i, c in enumerate(curves):
        check_curve(np.asarray(c.steps), np.asarray(c.values), where=f"curves[{i}]")
        if not np.isfinite(targets[i]) or targets[i] < c.steps[-1]:
            raise ValueError(
                f"curves[{i}]: target_step must be finite and >= the last observed step "
                f"{c.steps[-1]!r}, got {targets[i]!r}"
            )
    return targets


class Forecast(abc.ABC):
    """A batch of predictive distributions, one per curve, in the user's units."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """Return shape (n, len(qs)); non-decreasing along axis 1 for increasing qs in (0, 1)."""

    @abc.abstractmethod
    def cdf(self, y: float | np.ndarray) -> np.ndarray:
        """Return P(value <= y) per curve, shape (n,); y is a scalar or shape (n,)."""

    @property
    @abc.abstractmethod
    def mean(self) -> np.ndarray:
        """Predictive mean per curve, shape (n,)."""

    def sf(self, y: float | np.ndarray) -> np.ndarray:
        """P(value > y) per curve."""
        return 1.0 - self.cdf(y)

    def p_beat(self, incumbent: float | np.ndarray, mode: Mode) -> np.ndarray:
        """Probability that the value is strictly better than ``incumbent`` in direction ``mode``."""
        return self.sf(incumbent) if mode == "max" else self.cdf(incumbent)


class CurveModel(abc.ABC):
    """Forecasts the value of many partial curves at a later step, in one call."""

    name: str = "curve-model"

    @abc.abstractmethod
    def forecast(
        self,
        curves: Sequence[Curve],
        target_step: float | Sequence[float] | np.ndarray,
        *,
        mode: Mode = "max",
    ) -> Forecast: ...


class SampleForecast(Forecast):
    """A forecast represented by Monte-Carlo samples, shape (n, S); NaN samples are not allowed."""

    def __init__(self, samples: np.ndarray):
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] == 0:
            raise ValueError(f"samples must have shape (n, S>0), got {samples.shape}")
        self._s = np.sort(samples, axis=1)

    def __len__(self) -> int:
        return int(self._s.shape[0])

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        qs = np.asarray(qs, dtype=np.float64)
        return np.quantile(self._s, qs, axis=1).T.reshape(len(self), qs.size)

    def cdf(self, y: float | np.ndarray) -> np.ndarray:
        y = np.broadcast_to(np.asarray(y, dtype=np.float64), (len(self),))
        return np.mean(self._s <= y[:, None], axis=1)

    @property
    def mean(self) -> np.ndarray:
        return self._s.mean(axis=1)


class LastValueModel(CurveModel):
    """The trivial baseline and test double: the final value equals the last finite value.

    Returned as a point mass (every quantile equals it); a curve with no finite value forecasts
    its last value (NaN/inf propagate as +/-inf in the direction of 'worse').
    """

    name = "last-value"

    def forecast(self, curves, target_step, *, mode: Mode = "max") -> Forecast:
        check_batch(curves, target_step)
        check_mode(mode)
        worst = -np.inf if mode == "max" else np.inf
        last = np.empty(len(curves))
        for i, c in enumerate(curves):
            v = np.asarray(c.values, dtype=np.float64)
            fin = v[np.isfinite(v)]
            last[i] = fin[-1] if fin.size else worst
        return SampleForecast(last[:, None])
