"""Reward: ``Reward = P_survive * P_target * V - c * hours`` (SCORING.md, "Reward").

Pure functions, vectorised where a scheduler would call them for many trials at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from search.forecast.base import Forecast
from search.scoring.types import FailureHistory, Mode, Resources, TrialRecord


def p_survive(remaining_hours: float | np.ndarray, history: FailureHistory, *,
              prior_failures: float = 1.0, prior_hours: float = 100.0,
              retries: int | np.ndarray = 0) -> np.ndarray:
    """Probability that a trial survives the device-hours still ahead of it.

    The failure rate has a Gamma(a0 + k, b0 + T) posterior (``a0 = prior_failures`` failures
    per ``b0 = prior_hours`` hours, plus the sweep's ``k = history.failures`` failures over
    ``T = history.hours``). The number N of failures in the next H hours is then negative
    binomial, and with ``r`` retries left the trial survives when ``N <= r``:

    ``P(N <= 0) = ((b0 + T) / (b0 + T + H)) ** (a0 + k)`` (SCORING.md's formula), and
    ``P(N <= r)`` for ``r > 0`` (the retries raise it). ``retries = -1`` means unlimited (1.0).
    (The retried work is not added to H: a retry resumes from a checkpoint.)

    Args:
        remaining_hours: H >= 0, scalar or array.
        history: the sweep's failure history.
        retries: retries left for the trial (scalar or array broadcast with H).

    Returns:
        Array of probabilities in [0, 1] (a 0-d array for scalar input).
    """
    h = np.asarray(remaining_hours, dtype=np.float64)
    if np.any(~np.isfinite(h)) or np.any(h < 0):
        raise ValueError(f"remaining_hours must be finite and >= 0, got {remaining_hours!r}")
    r = np.asarray(retries)
    if np.any(r < -1):
        raise ValueError(f"retries must be >= -1 (-1: unlimited), got {retries!r}")
    alpha = prior_failures + history.failures
    beta = prior_hours + history.hours
    p = beta / (beta + h)
    out = stats.nbinom.cdf(np.maximum(r, 0), alpha, p)
    out = np.where(r < 0, 1.0, out)
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


def reaches(value: float | None, target: float | None, mode: Mode) -> float:
    """P_target of an ended trial: 1.0 if its final value is at least as good as the target.

    No target (no incumbent yet) counts as reached; a missing or non-finite value does not.
    """
    if value is None or not math.isfinite(value):
        return 0.0
    if target is None:
        return 1.0
    return 1.0 if (value >= target if mode == "max" else value <= target) else 0.0


def p_target_from_forecast(forecast: Forecast, target: float | None, mode: Mode) -> np.ndarray:
    """P_target of running trials: the forecast probability of beating ``target``.

    Reads the predictive CDF of the final value (``Forecast.p_beat``); with no target and no
    incumbent every trial "reaches" it (1.0).
    """
    if target is None:
        return np.ones(len(forecast))
    return np.clip(np.asarray(forecast.p_beat(target, mode), dtype=np.float64), 0.0, 1.0)


def incumbent(records: Sequence[TrialRecord], mode: Mode) -> float | None:
    """Best final value among the trials that finished (ran to their end); None if none."""
    finals = [r.last_value for r in records
              if r.status == "finished" and r.last_value is not None
              and math.isfinite(r.last_value)]
    if not finals:
        return None
    return max(finals) if mode == "max" else min(finals)


def hours(wall_time_s: float, resources: Resources) -> float:
    """Device-hours of ``wall_time_s`` seconds on ``resources`` (GPUs if any, else CPUs)."""
    return (resources.gpu if resources.gpu > 0 else resources.cpu) * wall_time_s / 3600.0


def seconds_per_step(record: TrialRecord) -> float | None:
    """Observed wall seconds per step up to the last report; None before any report."""
    return record.seconds_per_step


@dataclass(frozen=True)
class CostView:
    """A trial's device-hours: spent so far and forecast remaining until ``max_step``."""

    spent: float
    remaining: float
    unit: str

    @property
    def total(self) -> float:
        return self.spent + self.remaining


def cost_view(record: TrialRecord, fallback_sec_per_step: float | None = None) -> CostView:
    """Spent and remaining device-hours of one trial.

    Remaining time is ``(max_step - last_step) * seconds_per_step`` from the trial's own pace,
    else ``fallback_sec_per_step`` (the sweep's pooled pace), else 0; an ended trial has none.
    """
    spent = hours(record.wall_time_s, record.resources)
    if record.ended:
        return CostView(spent, 0.0, record.resources.unit)
    pace = seconds_per_step(record) or fallback_sec_per_step
    if pace is None:
        return CostView(spent, 0.0, record.resources.unit)
    ahead_s = max(record.max_step - record.last_step, 0.0) * pace
    return CostView(spent, hours(ahead_s, record.resources), record.resources.unit)


def full_trial_hours(record: TrialRecord, fallback_sec_per_step: float | None = None) -> float | None:
    """Device-hours one trial would cost run to ``max_step`` (None if its pace is unknown)."""
    if record.status == "finished":
        return hours(record.wall_time_s, record.resources)
    pace = seconds_per_step(record) or fallback_sec_per_step
    if pace is None:
        return None
    return hours(record.max_step * pace, record.resources)


def default_value(full_hours: Sequence[float], n_trials: int, cost_per_hour: float) -> float:
    """SCORING.md's default V: the cost of one full trial times the number of trials.

    One full trial's cost is the mean of ``full_hours`` (0 when empty) times ``cost_per_hour``.
    """
    if n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {n_trials!r}")
    mean = float(np.mean(full_hours)) if len(full_hours) else 0.0
    return cost_per_hour * mean * n_trials


def reward(p_success: float | np.ndarray, value: float, cost_per_hour: float,
           hours_: float | np.ndarray) -> np.ndarray:
    """``P_success * V - c * hours`` (pass remaining hours for the continuation view)."""
    return np.asarray(p_success, dtype=np.float64) * value - cost_per_hour * np.asarray(
        hours_, dtype=np.float64)
