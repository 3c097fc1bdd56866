"""Map real learning curves to the forecaster's domain and forecasts back to the user's units.

The model domain (the prior's): steps ``x`` on a horizon of 100 and values ``y`` higher-is-better,
about [0, 1], with 0 the worst end. A real curve is accuracy or loss, any scale, ``min`` or
``max``, possibly divergent (NaN, inf, 1e30), 5..1000 points, reported irregularly.

**Steps.** ``x = horizon * step / target_step``: the step the forecast is asked about maps to the
end of the prior's horizon, the observed prefix to ``(0, horizon * last / target]``. Any spacing
and gaps are fine; a prefix longer than the network's context is subsampled (the last point is
always kept; see :func:`subsample_indices`).

**Values.** One affine map per curve, fitted on the observed prefix only (so a forecast never
depends on other curves in the batch or on the future)::

    y = sign * (v - worst) / scale        sign = +1 for mode "max", -1 for "min"
    v = worst + sign * y * scale          (the inverse, used for every forecast)

with the references chosen, in order:

1. caller-given ``bounds=(worst, best)`` (for a whole sweep, e.g. ``(0.1, 1.0)`` for a 10-class
   accuracy or ``(ln 2, 0)`` for a binary cross-entropy): ``scale = |best - worst|``;
2. ``mode="max"`` and every finite prefix value in [0, 1] (an accuracy-like rate): identity,
   ``worst = 0``, ``scale = 1``;
3. ``mode="min"`` and no finite prefix value below 0 (a loss): ``best = 0`` and ``worst`` = the
   largest non-divergent prefix value (a value is divergent when it is more than 10x the
   prefix's median magnitude, or not finite), so ``y = 1 - v / worst``: the starting loss maps to
   about 0 and a perfect loss to 1, and the scale is set by the curve itself, whatever its units;
4. otherwise (a reward, a percentage, a signed loss): ``worst`` = the worst non-divergent prefix
   value and ``scale`` = twice the prefix's non-divergent range (the best value seen maps to
   0.5, leaving room to improve), or 1 if the prefix is flat.

Values worse than ``worst``, NaN, +-inf and divergent values map to the worst end, ``y = 0``
(the prior has collapsed runs that sit at exactly 0), so forward maps are clipped at 0 and
``inverse(forward(v)) == v`` holds for every finite ``v`` at or better than ``worst``. The inverse
is not clipped: a predictive distribution's mass below 0 maps to values worse than ``worst``.
Because the map is monotone, ``P(final better than incumbent)`` is computed exactly in model
units: ``cdf_user(v) = F(y(v))`` for ``max`` and ``1 - F(y(v))`` for ``min``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from search.forecast.base import Mode

DIVERGENCE_FACTOR = 10.0


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def divergent_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is NaN/inf or more than 10x the median magnitude of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    fin = np.isfinite(v)
    out = ~fin
    if fin.any():
        med = float(np.median(np.abs(v[fin])))
        if med > 0:
            out = out | (np.abs(np.where(fin, v, 0.0)) > DIVERGENCE_FACTOR * med)
    return out


@dataclass(frozen=True)
class ValueMap:
    """The affine value map of one curve (see the module docstring)."""

    worst: float
    scale: float
    sign: float  # +1: max, -1: min

    def forward(self, values: np.ndarray | float) -> np.ndarray:
        """User units -> model units, clipped at 0; non-finite values -> 0 (the worst end)."""
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            y = self.sign * (v - self.worst) / self.scale
        return np.where(np.isfinite(y), np.maximum(y, 0.0), 0.0)

    def forward_unclipped(self, values: np.ndarray | float) -> np.ndarray:
        """User units -> model units without clipping (for evaluating CDFs at user values)."""
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            return self.sign * (v - self.worst) / self.scale

    def inverse(self, y: np.ndarray | float) -> np.ndarray:
        """Model units -> user units (not clipped)."""
        return self.worst + self.sign * np.asarray(y, dtype=np.float64) * self.scale


def fit_value_map(values: np.ndarray, mode: Mode, bounds: tuple[float, float] | None = None) -> ValueMap:
    """Choose the references for one curve prefix (rules 1-4 in the module docstring)."""
    _check_mode(mode)
    sign = 1.0 if mode == "max" else -1.0
    if bounds is not None:
        worst, best = (float(b) for b in bounds)
        if not (np.isfinite(worst) and np.isfinite(best)) or worst == best:
            raise ValueError(f"bounds must be two different finite numbers (worst, best), got {bounds!r}")
        if (best - worst) * sign < 0:
            raise ValueError(f"bounds (worst, best) = {bounds!r} point the wrong way for mode {mode!r}")
        return ValueMap(worst, abs(best - worst), sign)
    v = np.asarray(values, dtype=np.float64)
    fin = v[np.isfinite(v)]
    good = v[~divergent_mask(v)]
    if mode == "max" and fin.size and np.all((fin >= 0.0) & (fin <= 1.0)):
        return ValueMap(0.0, 1.0, 1.0)
    if good.size == 0:  # nothing usable: every point is divergent
        return ValueMap(0.0 if mode == "max" else 1.0, 1.0, sign)
    if mode == "min" and np.all(fin >= 0.0):
        worst = float(good.max())
        return ValueMap(worst, worst if worst > 0 else 1.0, -1.0)
    worst = float(good.min() if mode == "max" else good.max())
    rng = float(good.max() - good.min())
    return ValueMap(worst, 2.0 * rng if rng > 0 else max(1.0, abs(worst)), sign)


def subsample_indices(n: int, k: int) -> np.ndarray:
    """At most ``k`` indices of ``0..n-1``, evenly spread, always including the last one."""
    if n <= k:
        return np.arange(n)
    idx = np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))
    return idx


@dataclass(frozen=True)
class NormalisedCurve:
    """A curve on the model domain plus the map back to user units."""

    x: np.ndarray  # (k,) steps on the horizon
    y: np.ndarray  # (k,) values, >= 0, higher is better
    x_target: float
    vmap: ValueMap


def normalise_curve(
    steps: np.ndarray,
    values: np.ndarray,
    target_step: float,
    mode: Mode,
    *,
    horizon: int = 100,
    max_points: int | None = None,
    bounds: tuple[float, float] | None = None,
) -> NormalisedCurve:
    """Map one observed prefix (validated by the caller) to the model domain."""
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(target_step) or target_step <= 0:
        raise ValueError(f"target_step must be finite and > 0, got {target_step!r}")
    vmap = fit_value_map(v, mode, bounds)
    y = vmap.forward(v)
    if bounds is None:
        y = np.where(divergent_mask(v), 0.0, y)
    x = horizon * s / float(target_step)
    if max_points is not None:
        idx = subsample_indices(x.size, max_points)
        x, y = x[idx], y[idx]
    return NormalisedCurve(x=x, y=y, x_target=float(horizon), vmap=vmap)


def normalise_batch(
    curves: Sequence, targets: np.ndarray, mode: Mode, *, horizon: int = 100,
    max_points: int | None = None, bounds: tuple[float, float] | None = None,
) -> list[NormalisedCurve]:
    """Normalise every curve of a batch (each with its own value map)."""
    return [
        normalise_curve(c.steps, c.values, float(t), mode, horizon=horizon, max_points=max_points, bounds=bounds)
        for c, t in zip(curves, targets)
    ]
