"""Watch what a sweep records: a tracker wrapper that tells listeners, and the listeners.

:class:`ObservedTracker` wraps any :class:`~orchestrator.tracking.base.Tracker` and forwards
every call to it unchanged (the same return values and errors); after each successful call it
tells its listeners. Listeners see the sweep exactly as it is recorded (metrics, verdicts,
statuses) whichever scheduler or searcher produced it, and never touch Ray or MLflow.

* :class:`SweepState`: collects every trial's curve of the sweep metric, its verdicts and its
  status into a :class:`~orchestrator.sweepdata.SweepRecord` (thread-safe).
* :class:`PlotArtifacts`: at a trial's end renders its curve with the forecast bands and stop
  marker and logs ``plots/curve.png`` to the trial's run; at the sweep's end logs
  ``plots/sweep_curves.png``, ``plots/compute.png`` and the one-file ``report.html`` to the
  parent run. Rendering runs on one background thread so the driver never waits for
  matplotlib; ``end_sweep``/``close`` wait for it (bounded by ``timeout_s``).
* ``orchestrator.progress.Progress``: the live terminal view.

Use (the runner)::

    state = SweepState(metric=cfg.metric, mode=cfg.mode, max_epochs=cfg.max_epochs, name=cfg.name)
    tracker = ObservedTracker(mlflow_tracker, [state, PlotArtifacts(state), Progress(state, ...)])
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from orchestrator.sweepdata import (
    STATUSES,
    Decision,
    SweepRecord,
    TrialRecord,
    better,
    check_mode,
)
from orchestrator.tracking.base import Tracker, VerdictRecord, metric_key

log = logging.getLogger("sweepcast.observe")

SCORE_METRIC = "score"  # search.scoring.TrialScore.to_metrics()
RANKING_DIR, RANKING_NAME = "scoring", "ranking.md"  # orchestrator.scoring_wiring

__all__ = ["Listener", "ObservedTracker", "PlotArtifacts", "SweepState"]


class Listener:
    """Receives a sweep's events after the wrapped tracker accepted them. All no-ops here.

    Called on the thread that called the tracker (Tune's driver): must be quick and must not
    raise (an exception is logged and swallowed so recording never breaks).
    """

    def on_sweep_start(self, name: str, parent_run_id: str) -> None: ...
    def on_trial_start(self, trial_id: str, params: Mapping[str, Any]) -> None: ...
    def on_metrics(self, trial_id: str | None, step: int, metrics: Mapping[str, Any]) -> None: ...
    def on_verdict(self, trial_id: str, step: int, verdict: VerdictRecord) -> None: ...
    def on_artifact(self, trial_id: str | None, artifact: Any, artifact_path: str | None
                    ) -> None: ...
    def on_trial_end(self, trial_id: str, status: str) -> None: ...
    def before_sweep_end(self, tracker: Tracker, status: str) -> None:
        """Last chance to record on the parent run (called before the inner ``end_sweep``)."""
    def on_sweep_end(self, status: str) -> None: ...
    def on_close(self) -> None: ...


class ObservedTracker(Tracker):
    """A :class:`Tracker` that forwards every call to ``inner`` and then tells ``listeners``.

    Everything not overridden here (``experiment_id``, ``stats``, ``check_reachable``, ...)
    is read from ``inner``.
    """

    def __init__(self, inner: Tracker, listeners: Sequence[Listener] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.listeners = list(listeners)

    def __getattr__(self, name: str) -> Any:  # only for attributes not found normally
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _tell(self, hook: str, *args: Any) -> None:
        for lst in self.listeners:
            try:
                getattr(lst, hook)(*args)
            except Exception:
                log.exception("sweepcast listener %s.%s failed", type(lst).__name__, hook)

    # ---- forwarded lifecycle ------------------------------------------------------------
    def start_sweep(self, name, config, params=None, tags=None) -> str:
        run_id = self.inner.start_sweep(name, config, params, tags)
        self._tell("on_sweep_start", name, run_id)
        return run_id

    def start_trial(self, trial_id, params, tags=None) -> None:
        self.inner.start_trial(trial_id, params, tags)
        self._tell("on_trial_start", trial_id, params)

    def log_metrics(self, trial_id, step, metrics, timestamp_ms=None) -> None:
        self.inner.log_metrics(trial_id, step, metrics, timestamp_ms)
        self._tell("on_metrics", trial_id, int(step), metrics)

    def log_verdict(self, trial_id, step, verdict) -> VerdictRecord:
        rec = self.inner.log_verdict(trial_id, step, verdict)
        self._tell("on_verdict", trial_id, int(step), rec)
        return rec

    def set_tags(self, trial_id, tags) -> None:
        self.inner.set_tags(trial_id, tags)

    def log_artifact(self, trial_id, artifact, artifact_path=None) -> None:
        self.inner.log_artifact(trial_id, artifact, artifact_path)
        self._tell("on_artifact", trial_id, artifact, artifact_path)

    def end_trial(self, trial_id, status, summary=None) -> None:
        self.inner.end_trial(trial_id, status, summary)
        self._tell("on_trial_end", trial_id, status)

    def end_sweep(self, summary=None, status="completed") -> None:
        self._tell("before_sweep_end", self.inner, status)
        self.inner.end_sweep(summary, status)
        self._tell("on_sweep_end", status)

    def flush(self, timeout: float | None = None) -> bool:
        return self.inner.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._tell("on_close")
        if timeout is None:
            self.inner.close()
        else:
            self.inner.close(timeout)
        self._closed = True

    def state(self) -> dict[str, Any]:
        return self.inner.state()

    def restore(self, state: Mapping[str, Any]) -> None:
        self.inner.restore(state)

    @property
    def parent_run_id(self) -> str | None:  # type: ignore[override]
        return self.inner.parent_run_id

    def trial_status(self, trial_id: str) -> str | None:
        return self.inner.trial_status(trial_id)

    def stop_reason(self, trial_id: str) -> str | None:
        return self.inner.stop_reason(trial_id)

    def trial_run_id(self, trial_id: str) -> str | None:
        return self.inner.trial_run_id(trial_id)

    # The base class's recording hooks are never reached: every public method is forwarded.
    def _unused(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError("ObservedTracker forwards to its inner tracker")

    _record_start_sweep = _record_start_trial = _record_reopen_trial = _unused
    _record_metrics = _record_tags = _record_artifact = _unused
    _record_end_trial = _record_end_sweep = _unused


class SweepState(Listener):
    """Collects the sweep as it is recorded; :meth:`record` returns a :class:`SweepRecord`.

    Args:
        metric, mode, max_epochs: the sweep's metric, direction and horizon.
        name: the sweep name (replaced by the one given to ``start_sweep``).
        num_samples: trials the sweep will run (for progress), if known.
        scheduler: the pruning scheduler's name, for titles.
    """

    def __init__(self, *, metric: str, mode: str, max_epochs: int, name: str = "sweep",
                 num_samples: int | None = None, scheduler: str | None = None) -> None:
        check_mode(mode)
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")
        self.metric = metric
        self.key = metric_key(metric)
        self.mode = mode
        self.max_epochs = max_epochs
        self.name = name
        self.num_samples = num_samples
        self.scheduler = scheduler
        self.parent_run_id: str | None = None
        self.sweep_status: str | None = None
        self._lock = threading.Lock()
        self._order: list[str] = []
        self._curves: dict[str, dict[int, float]] = {}
        self._decisions: dict[str, dict[int, Decision]] = {}
        self._status: dict[str, str] = {}
        self._reason: dict[str, str] = {}
        self._score: dict[str, float] = {}
        self.ranking_markdown: str | None = None
        self.best: tuple[float, str, int] | None = None  # (value, trial, step)

    def on_sweep_start(self, name: str, parent_run_id: str) -> None:
        self.name, self.parent_run_id = name, parent_run_id

    def on_trial_start(self, trial_id: str, params: Mapping[str, Any]) -> None:
        with self._lock:
            if trial_id not in self._curves:
                self._order.append(trial_id)
                self._curves[trial_id] = {}
                self._decisions[trial_id] = {}
            self._status[trial_id] = "running"
            self._reason.pop(trial_id, None)

    def on_metrics(self, trial_id: str | None, step: int, metrics: Mapping[str, Any]) -> None:
        if trial_id is None:
            return
        score = metrics.get(SCORE_METRIC)
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            with self._lock:
                self._score[trial_id] = float(score)
        v = metrics.get(self.metric, metrics.get(self.key))
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return
        v = float(v)
        with self._lock:
            curve = self._curves.setdefault(trial_id, {})
            if trial_id not in self._order:
                self._order.append(trial_id)
                self._status.setdefault(trial_id, "running")
            curve[step] = v
            if math.isfinite(v) and (self.best is None or better(v, self.best[0], self.mode)):
                self.best = (v, trial_id, step)

    def on_verdict(self, trial_id: str, step: int, verdict: VerdictRecord) -> None:
        m = verdict.metrics
        d = Decision(step, verdict.decision, verdict.reason, m.get("p_beat"),
                     m.get("forecast.q05"), m.get("forecast.q50"), m.get("forecast.q95"))
        with self._lock:
            self._decisions.setdefault(trial_id, {})[step] = d
            if verdict.stops:
                self._reason[trial_id] = verdict.reason or "stop"

    def on_artifact(self, trial_id: str | None, artifact: Any, artifact_path: str | None
                    ) -> None:
        # the scorer's ranking table (orchestrator.scoring_wiring): parent run, scoring/
        if (trial_id is None and isinstance(artifact, tuple) and artifact[0] == RANKING_NAME
                and (artifact_path or "").strip("/") == RANKING_DIR):
            data = artifact[1]
            self.ranking_markdown = data.decode("utf-8", "replace") if isinstance(
                data, (bytes, bytearray)) else str(data)

    def on_trial_end(self, trial_id: str, status: str) -> None:
        with self._lock:
            self._status[trial_id] = status

    def on_sweep_end(self, status: str) -> None:
        self.sweep_status = status

    def totals(self) -> tuple[dict[str, int], int, int]:
        """``(trials per status, epochs trained, epochs saved)`` without building records.

        Epochs are reported points; a pruned or failed trial saves ``max_epochs - epochs``.
        """
        counts = {s: 0 for s in STATUSES}
        used = saved = 0
        with self._lock:
            for tid in self._order:
                status = self._status.get(tid, "running")
                n = len(self._curves.get(tid, ()))
                counts[status] = counts.get(status, 0) + 1
                used += n
                if status in ("pruned", "failed"):
                    saved += max(0, self.max_epochs - n)
        return counts, used, saved

    def incumbent_value(self) -> float | None:
        """The best last value of the completed trials (O(trials), no records built)."""
        best: float | None = None
        with self._lock:
            for tid in self._order:
                curve = self._curves.get(tid)
                if self._status.get(tid) != "completed" or not curve:
                    continue
                v = curve[max(curve)]
                if math.isfinite(v) and (best is None or better(v, best, self.mode)):
                    best = v
        return best

    def known_trials(self) -> set[str]:
        """Ids of the trials this state has seen."""
        with self._lock:
            return set(self._order)

    def merge(self, trials: Sequence[TrialRecord]) -> int:
        """Add recorded trials this state has not seen (a resumed sweep's earlier trials).

        Trials already known are left alone. Returns how many were added.
        """
        added = 0
        with self._lock:
            for t in trials:
                if t.trial_id in self._curves:
                    continue
                self._order.append(t.trial_id)
                self._curves[t.trial_id] = dict(zip(t.steps, t.values))
                self._decisions[t.trial_id] = {d.step: d for d in t.decisions}
                self._status[t.trial_id] = t.status
                if t.reason:
                    self._reason[t.trial_id] = t.reason
                if t.score is not None:
                    self._score[t.trial_id] = t.score
                for s, v in zip(t.steps, t.values):
                    if math.isfinite(v) and (self.best is None or better(v, self.best[0],
                                                                         self.mode)):
                        self.best = (v, t.trial_id, s)
                added += 1
        return added

    # ---- queries --------------------------------------------------------------------------
    def trial(self, trial_id: str) -> TrialRecord:
        """One trial as recorded so far."""
        with self._lock:
            return self._trial_locked(trial_id)

    def _trial_locked(self, trial_id: str) -> TrialRecord:
        curve = sorted(self._curves.get(trial_id, {}).items())
        status = self._status.get(trial_id, "running")
        return TrialRecord(
            trial_id, [s for s, _ in curve], [v for _, v in curve], status,
            stop_reason=self._reason.get(trial_id) if status == "pruned" else None,
            decisions=[d for _, d in sorted(self._decisions.get(trial_id, {}).items())],
            score=self._score.get(trial_id),
        )

    def record(self) -> SweepRecord:
        """The whole sweep as recorded so far."""
        with self._lock:
            trials = [self._trial_locked(t) for t in self._order]
        return SweepRecord(self.name, self.metric, self.mode, self.max_epochs, trials,
                           scheduler=self.scheduler, parent_run_id=self.parent_run_id,
                           ranking_markdown=self.ranking_markdown)


class PlotArtifacts(Listener):
    """Logs the plots of :mod:`orchestrator.plots` as artifacts (see module docstring).

    Args:
        state: the :class:`SweepState` listening to the same tracker (put it first).
        history: ``(tracker) -> SweepRecord | None``: the sweep as already recorded, used at the
            end when the tracker knows trials this state never saw (``sweepcast resume``: the
            trials before the interruption). Default: read back from MLflow when the tracker
            has a ``tracking_uri`` (:func:`recorded_sweep`).
        trial_plots: render a plot per trial at its end.
        html_report: log ``report.html`` (plots embedded) to the parent run at the end.
        timeout_s: how long ``end_sweep``/``close`` wait for pending renders.
        dpi: resolution of the PNGs.
    """

    def __init__(self, state: SweepState, *, trial_plots: bool = True, html_report: bool = True,
                 timeout_s: float = 120.0, dpi: int = 100,
                 history: Callable[[Tracker], SweepRecord | None] | None = None) -> None:
        self.state = state
        self.history = history if history is not None else recorded_sweep
        self.trial_plots = trial_plots
        self.html_report = html_report
        self.timeout_s = timeout_s
        self.dpi = dpi
        self._tracker: Tracker | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweepcast-plots")
        self._pending: list[Future] = []
        self._done_sweep = False
        self._pngs: dict[str, bytes] = {}  # trial plots kept for the HTML report
        self.max_report_trials = 20
        self.errors: list[str] = []

    def bind(self, tracker: Tracker) -> PlotArtifacts:
        """The tracker to log through (the inner one); set by :meth:`attach`."""
        self._tracker = tracker
        return self

    def on_trial_end(self, trial_id: str, status: str) -> None:
        if not self.trial_plots or self._tracker is None:
            return
        trial = self.state.trial(trial_id)
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._trial_plot, trial,
                                               self.state.incumbent_value()))

    def _trial_plot(self, trial: TrialRecord, inc_value: float | None) -> None:
        from orchestrator import plots

        try:
            fig = plots.trial_figure(trial, metric=self.state.metric, mode=self.state.mode,
                                     horizon=self.state.max_epochs, incumbent_value=inc_value)
            png = plots.to_png(fig, dpi=self.dpi)
            self._tracker.log_artifact(trial.trial_id, ("curve.png", png), "plots")  # type: ignore[union-attr]
            if len(self._pngs) < 500:
                self._pngs[trial.trial_id] = png
        except Exception as e:  # noqa: BLE001 - a plot must never break the sweep
            self.errors.append(f"trial {trial.trial_id}: {e}")
            log.warning("could not plot trial %s: %s", trial.trial_id, e)

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            _, not_done = wait_futures(pending, timeout=self.timeout_s)
            if not_done:
                log.warning("%d trial plots not rendered within %.0fs", len(not_done),
                            self.timeout_s)

    def before_sweep_end(self, tracker: Tracker, status: str) -> None:
        self._wait()
        if self._done_sweep:
            return
        self._done_sweep = True
        from orchestrator.report import ordered_trials, render_html, sweep_images

        self._fill_gaps(tracker)
        sweep = self.state.record()
        try:
            images = sweep_images(sweep, max_trial_plots=0, dpi=self.dpi)
            for name, png in images.items():
                tracker.log_artifact(None, (name, png), "plots")
            if self.html_report:
                best = [t.trial_id for t in ordered_trials(sweep) if t.trial_id in self._pngs]
                for tid in best[: self.max_report_trials]:
                    images[f"trial_{tid}.png"] = self._pngs[tid]
                page = render_html(sweep, images=images)
                tracker.log_artifact(None, ("report.html", page.encode()), None)
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"sweep plots: {e}")
            log.warning("could not plot the sweep: %s", e)

    def _fill_gaps(self, tracker: Tracker) -> None:
        try:
            recorded = set((tracker.state().get("trials") or {}).keys())
        except Exception:  # noqa: BLE001 - a tracker without state: nothing to fill
            return
        if not recorded - self.state.known_trials():
            return
        try:
            past = self.history(tracker)
        except Exception as e:  # noqa: BLE001
            log.warning("could not read the sweep's earlier trials back: %s", e)
            return
        if past is not None:
            self.state.merge([t for t in past.trials if t.trial_id in recorded])

    def on_sweep_end(self, status: str) -> None:
        self._pool.shutdown(wait=False, cancel_futures=False)

    def on_close(self) -> None:
        self._wait()
        self._pool.shutdown(wait=True, cancel_futures=False)


def recorded_sweep(tracker: Tracker) -> SweepRecord | None:
    """The sweep as recorded so far in MLflow (flushed first), or None for a tracker that does
    not write to MLflow (no ``tracking_uri``) or has no parent run yet."""
    uri = getattr(tracker, "tracking_uri", None)
    parent = tracker.parent_run_id
    if not uri or not parent:
        return None
    tracker.flush(60)
    from orchestrator.tracking.reader import read_sweep

    return read_sweep(parent, tracking_uri=uri)


def attach(tracker: Tracker, state: SweepState, *extra: Listener, plots: bool = True,
           **plot_kw: Any) -> ObservedTracker:
    """Wrap ``tracker`` with ``state`` (first), the plot artifacts (when ``plots``) and ``extra``.

    Returns the :class:`ObservedTracker` to hand to the rest of the runner in place of
    ``tracker``.
    """
    listeners: list[Listener] = [state]
    if plots:
        listeners.append(PlotArtifacts(state, **plot_kw).bind(tracker))
    listeners.extend(extra)
    return ObservedTracker(tracker, listeners)
