"""Tell the forecaster each trial's learning-rate schedule: curves that carry their schedule.

A trial knows its schedule in advance (issue 8). :class:`ScheduledCurve` is a
:class:`~search.forecast.base.Curve` that also carries the trial's learning rate for every step
``1..horizon`` (``lr``, shape (horizon,)); any ``CurveModel`` that does not know about schedules
reads it as a plain curve, one that does (``search.forecast.pfn_schedule``) conditions on it.

:class:`ScheduleStopper` is the :class:`~search.stopper.CurveStopper` whose curves carry the
schedules declared with :meth:`ScheduleStopper.set_schedule` (or the ``schedules`` mapping given
at construction); everything else (policy, batching, state) is the stopper's own. Schedules are
not part of the saved state: they come from the trials' configs again after a restore.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from search.curvestore import CurveStore
from search.forecast.base import Curve
from search.stopper import CurveStopper


@dataclass(frozen=True)
class ScheduledCurve(Curve):
    """A curve prefix plus its trial's learning rate at steps ``1..horizon`` (or None)."""

    lr: np.ndarray | None = None


def check_lr(lr: np.ndarray, horizon: float, where: str = "lr") -> np.ndarray:
    """Validate a per-step learning rate for a trial of ``horizon`` steps; returns float64."""
    a = np.asarray(lr, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < int(np.ceil(horizon)):
        raise ValueError(f"{where} must give one rate per step 1..{horizon:g}, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or a.max() <= 0:
        raise ValueError(f"{where} must be finite, >= 0 and not all 0")
    return a


class _ScheduledStore(CurveStore):
    def __init__(self, lr_of: dict[str, np.ndarray]):
        super().__init__()
        self._lr_of = lr_of

    def curve_row(self, row: int) -> Curve:
        c = super().curve_row(row)
        return ScheduledCurve(c.steps, c.values, self._lr_of.get(self.id_of(row)))


class ScheduleStopper(CurveStopper):
    """A :class:`CurveStopper` that passes each trial's schedule to the forecaster.

    Args:
        schedules: trial id -> learning rate of steps 1..horizon (trials without one forecast
            as plain curves).
        *args, **kwargs: those of :class:`CurveStopper`.
    """

    def __init__(self, *args, schedules: Mapping[str, np.ndarray] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lr_of: dict[str, np.ndarray] = {}
        self.store = _ScheduledStore(self._lr_of)
        for tid, lr in (schedules or {}).items():
            self.set_schedule(tid, lr)

    def set_schedule(self, trial_id: str, lr: np.ndarray | None) -> None:
        """Declare (or with None, forget) the learning rate of ``trial_id`` at steps 1..horizon."""
        tid = str(trial_id)
        if lr is None:
            self._lr_of.pop(tid, None)
        else:
            self._lr_of[tid] = check_lr(lr, self.horizon, f"schedule of trial {tid!r}")

    def load_dict(self, data: dict) -> None:
        """:meth:`CurveStopper.load_dict`, keeping the declared schedules."""
        lr_of = self._lr_of
        super().load_dict(data)
        plain = self.store
        store = _ScheduledStore(lr_of)
        store.__dict__.update({k: v for k, v in plain.__dict__.items() if k != "_lr_of"})
        self.store, self._lr_of = store, lr_of
