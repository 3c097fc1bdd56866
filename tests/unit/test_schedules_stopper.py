"""ScheduleStopper: the curve stopper whose forecasts see each trial's schedule."""

from __future__ import annotations

import numpy as np
import pytest

from search.forecast.base import LastValueModel
from search.schedule_stopper import ScheduledCurve, ScheduleStopper, check_lr


class _Spy(LastValueModel):
    def __init__(self):
        self.seen: list[list] = []

    def forecast(self, curves, target_step, *, mode="max"):
        self.seen.append([getattr(c, "lr", None) for c in curves])
        return super().forecast(curves, target_step, mode=mode)


def _drive(stopper):
    # an incumbent first (a trial that completed), then two trials that never beat it
    stopper.observe("done", 10, 0.9)
    stopper.complete_trial("done")
    for e in range(1, 6):
        stopper.observe("a", e, 0.1 * e / 5)
        stopper.observe("b", e, 0.2 * e / 5)


def test_curves_reach_the_model_with_their_declared_schedule():
    spy = _Spy()
    lr_a = np.linspace(1.0, 0.1, 10)
    s = ScheduleStopper(spy, horizon=10, mode="max", schedules={"a": lr_a})
    _drive(s)
    flat = [lr for batch in spy.seen for lr in batch]
    assert any(lr is not None and np.array_equal(lr, lr_a) for lr in flat)
    assert any(lr is None for lr in flat)  # "b" declared nothing
    s.set_schedule("b", np.ones(10))
    s.set_schedule("a", None)
    c = s.store.curve_row(s.store.row("b"))
    assert isinstance(c, ScheduledCurve) and np.array_equal(c.lr, np.ones(10))
    assert s.store.curve_row(s.store.row("a")).lr is None


def test_state_round_trip_keeps_schedules_and_curves():
    s = ScheduleStopper(LastValueModel(), horizon=10, mode="min", schedules={"a": np.ones(10)})
    _drive(s)
    t = ScheduleStopper(LastValueModel(), horizon=10, mode="min", schedules={"a": np.ones(10)})
    t.load_dict(s.to_dict())
    c = t.store.curve_row(t.store.row("a"))
    assert isinstance(c, ScheduledCurve) and c.lr is not None and len(c) == 5


def test_bad_schedules_are_rejected_naming_the_trial():
    s = ScheduleStopper(LastValueModel(), horizon=10, mode="max")
    with pytest.raises(ValueError, match="schedule of trial 'x' must give one rate per step"):
        s.set_schedule("x", np.ones(5))
    with pytest.raises(ValueError, match="finite, >= 0 and not all 0"):
        check_lr(np.zeros(10), 10)
