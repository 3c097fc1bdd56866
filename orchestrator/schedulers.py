"""The ``pruning:`` block of a sweep config -> a Ray Tune ``TrialScheduler``.

==========  ======================================================================
scheduler   Ray Tune object (time attribute ``epoch``, horizon ``max_epochs``)
==========  ======================================================================
fifo        ``FIFOScheduler()``: no pruning
asha        ``AsyncHyperBandScheduler(max_t, grace_period, reduction_factor, brackets)``
median      ``MedianStoppingRule(grace_period, min_samples_required)``
hyperband   ``HyperBandScheduler(max_t, reduction_factor, stop_last_trials)``
curve       ``search.adapters.ray_tune.CurveScheduler(max_t, <the curve options>,
            on_verdict=sink)``: every verdict goes to ``sink`` (a :class:`VerdictSink`,
            which hands it to the sweep's tracker)
==========  ======================================================================

``metric`` and ``mode`` are left to ``TuneConfig`` (Tune passes them to the scheduler).
Ray is imported inside :func:`build_scheduler` only.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from orchestrator.tracking.registry import lookup_tracker

log = logging.getLogger("sweepcast.schedulers")

TIME_ATTR = "epoch"  # every sweepcast trial reports it (trials.api.EPOCH_KEY)


class SchedulerConfigError(ValueError):
    """The pruning config cannot be turned into a scheduler (message names the option)."""


class VerdictSink:
    """Where a stopping policy's verdicts go: the sweep's tracker, found by ``sweep_key``.

    The curve scheduler calls ``sink(verdict)`` for every decision (``verdict`` has
    ``trial_id``, ``step``, ``stop``, ``reason``, ``p_beat``, ``q05``/``q50``/``q95``). The sink
    calls ``tracker.log_verdict(trial_id, step, verdict)``; a NaN/absent step falls back to
    the trial's last recorded step. It never raises into the scheduler (failures are logged).

    Picklable (Tune pickles the scheduler into ``tuner.pkl``): it holds only the key; the
    tracker is looked up in :mod:`orchestrator.tracking.registry` when a verdict arrives, so a
    restored sweep re-registers its tracker under the same key and verdicts flow again.
    """

    def __init__(self, sweep_key: str) -> None:
        self.sweep_key = sweep_key
        self.received = 0
        self.dropped = 0

    def __call__(self, verdict: Any) -> None:
        self.received += 1
        tracker = lookup_tracker(self.sweep_key)
        if tracker is None:
            self.dropped += 1
            return
        try:
            trial_id = str(_field(verdict, "trial_id"))
            step = _field(verdict, "step")
            if step is None or (isinstance(step, float) and not math.isfinite(step)):
                step = tracker.last_step(trial_id)
            tracker.log_verdict(trial_id, int(step), verdict)
        except Exception:  # a tracking problem must never stop the scheduler
            self.dropped += 1
            log.warning("could not record verdict %r", verdict, exc_info=True)


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def build_scheduler(cfg: Any, sink: VerdictSink | None = None) -> Any:
    """A Ray Tune scheduler for ``cfg.pruning`` (``cfg`` is a ``SweepConfig``).

    Raises:
        SchedulerConfigError: the scheduler is unknown, or its options do not fit it.
    """
    from ray.tune import schedulers as S

    p = cfg.pruning
    kind = p.scheduler
    max_t = int(cfg.max_epochs)
    if kind == "fifo":
        return S.FIFOScheduler()
    if kind == "asha":
        return S.AsyncHyperBandScheduler(
            time_attr=TIME_ATTR, max_t=max_t, grace_period=p.grace_period,
            reduction_factor=p.reduction_factor, brackets=p.brackets,
        )
    if kind == "median":
        return S.MedianStoppingRule(
            time_attr=TIME_ATTR, grace_period=float(p.grace_period),
            min_samples_required=p.min_samples_required,
        )
    if kind == "hyperband":
        return S.HyperBandScheduler(
            time_attr=TIME_ATTR, max_t=max_t, reduction_factor=p.reduction_factor,
            stop_last_trials=p.stop_last_trials,
        )
    if kind == "curve":
        return _curve_scheduler(cfg, sink)
    raise SchedulerConfigError(f"pruning.scheduler: unknown scheduler {kind!r}")


def _curve_scheduler(cfg: Any, sink: VerdictSink | None) -> Any:
    try:
        from search.adapters.ray_tune import CurveScheduler
    except ImportError as e:
        raise SchedulerConfigError(
            f"pruning.scheduler: 'curve' is not available in this installation ({e})"
        ) from None
    options = cfg.pruning.model_dump(exclude={"scheduler"})
    # issue 8: the schedule-aware forecaster is told each trial's schedule (the sweep's
    # schedule: block, or the trials' own config conventions when there is none)
    schedule = getattr(cfg, "schedule", None)
    if schedule is not None:
        options["schedule"] = schedule.model_dump()
    elif options.get("model") == "pfn-schedule":
        options["schedule"] = True
    try:
        return CurveScheduler(
            time_attr=TIME_ATTR, max_t=int(cfg.max_epochs), on_verdict=sink, **options
        )
    except (TypeError, ValueError) as e:
        raise SchedulerConfigError(f"pruning (scheduler 'curve'): {e}") from None
