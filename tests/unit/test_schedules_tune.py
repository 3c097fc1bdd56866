"""The Tune CurveScheduler tells the forecaster each trial's schedule (issue 8)."""

from __future__ import annotations

import numpy as np
import ray  # noqa: F401

from search.forecast.base import LastValueModel
from search.schedules import lr_per_step


class _Trial:
    """The parts of a Tune trial the scheduler reads on add."""

    def __init__(self, trial_id: str, config: dict):
        from ray.tune.experiment import Trial

        self.trial_id, self.config, self.status = trial_id, config, Trial.PENDING
        self.storage = None


class _Spy(LastValueModel):
    def __init__(self):
        self.seen = []

    def forecast(self, curves, target_step, *, mode="max"):
        self.seen.extend(getattr(c, "lr", None) for c in curves)
        return super().forecast(curves, target_step, mode=mode)


def test_trials_get_their_schedule_from_the_declaration_or_their_config():
    from search.adapters.ray_tune import CurveScheduler

    spy = _Spy()
    sch = CurveScheduler(metric="m", mode="max", max_t=10, model=spy,
                         schedule={"name": "cosine", "params": {"warmup_epochs": 2}})
    sch.on_trial_add(None, _Trial("a", {"lr": 0.1}))
    got = sch.stopper.store.curve_row(sch.stopper.store.row("a")).lr
    np.testing.assert_allclose(got, lr_per_step({"name": "cosine", "lr": 0.1,
                                                 "warmup_epochs": 2}, 10))
    conv = CurveScheduler(metric="m", mode="max", max_t=10, model=spy, schedule=True)
    conv.on_trial_add(None, _Trial("b", {"lr": 0.1, "lr_schedule": "step",
                                         "schedule_step_size": 3}))
    conv.on_trial_add(None, _Trial("c", {"width": 3}))  # declares nothing: forecast without
    st = conv.stopper.store
    np.testing.assert_allclose(st.curve_row(st.row("b")).lr,
                               lr_per_step({"name": "step", "lr": 0.1, "step_size": 3}, 10))
    assert st.curve_row(st.row("c")).lr is None
    # a config the declaration cannot resolve is logged and forecast without a schedule
    sch.on_trial_add(None, _Trial("d", {"lr": -1.0}))
    assert sch.stopper.store.curve_row(sch.stopper.store.row("d")).lr is None
    plain = CurveScheduler(metric="m", mode="max", max_t=10, model=spy)
    plain.on_trial_add(None, _Trial("e", {"lr": 0.1}))
    assert not hasattr(plain.stopper, "set_schedule")


def test_sweep_config_wires_the_schedule_into_the_curve_scheduler():
    from orchestrator.config import SweepConfig
    from orchestrator.schedulers import build_scheduler

    cfg = SweepConfig.model_validate({
        "name": "s", "trainable": "trials.examples.mlp:train", "metric": "val_loss",
        "mode": "min", "max_epochs": 12,
        "search": {"algorithm": "random", "space": {"lr": {"type": "loguniform", "low": 1e-3,
                                                           "high": 1e-1}}},
        "pruning": {"scheduler": "curve", "model": "pfn-schedule", "incumbent": "top_fraction",
                    "bar_confidence": 0.7},
        "schedule": {"name": "onecycle"},
    })
    sch = build_scheduler(cfg)
    assert sch._schedule == cfg.schedule.model_dump()
    assert (sch._config.incumbent, sch._config.bar_confidence) == ("top_fraction", 0.7)
