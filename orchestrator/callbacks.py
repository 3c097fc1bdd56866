"""Tune callbacks of a sweep: feed the tracker, keep the ledger, print readable progress.

:class:`SweepCallback` maps Tune's driver-side events to the sweep's :class:`Tracker`:

================  ===========================================================================
Tune event        tracker call
================  ===========================================================================
on_trial_start    ``start_trial(trial_id, config)`` (idempotent: a retried trial keeps its run)
on_trial_result   ``log_metrics(trial_id, epoch, every numeric user metric)``
on_trial_complete ``end_trial(trial_id, "pruned" | "completed", summary)``: pruned when the
                  scheduler stopped the trial before ``max_epochs`` (Tune marks the result
                  that got a STOP ``done``) or a stop verdict was logged for it
on_trial_error    traceback as artifact ``error.txt``, then ``end_trial(trial_id, "failed")``
on_trial_recover  tag ``sweepcast.retries`` (the trial is retried from its checkpoint)
================  ===========================================================================

The callback finds its tracker through :mod:`orchestrator.tracking.registry` by the sweep key,
so Tune can pickle it into ``tuner.pkl`` (only the key and the ledger are pickled). Tracker
errors are logged, never raised into Tune.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from orchestrator.tracking.base import redact
from orchestrator.tracking.registry import lookup_tracker

try:  # Tune's callback base; imported here because this module is only used with Ray.
    from ray.tune import Callback
    from ray.tune.result import AUTO_RESULT_KEYS, DEBUG_METRICS
except ImportError as e:  # pragma: no cover
    raise ImportError("orchestrator.callbacks needs ray[tune]: pip install 'ray[tune]'") from e

log = logging.getLogger("sweepcast.callbacks")

# Keys Tune adds to every result: never recorded as user metrics.
SKIP_KEYS = frozenset(AUTO_RESULT_KEYS) | frozenset(DEBUG_METRICS) | {
    "done", "trial_id", "experiment_tag", "should_checkpoint", "__duplicate__",
    "timesteps_this_iter", "episodes_this_iter",
}


@dataclass
class TrialRecord:
    """What the sweep knows about one trial (plain data)."""

    trial_id: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"  # pending | running | completed | pruned | failed
    epochs: int = 0
    results: int = 0
    best: float | None = None
    last: float | None = None
    stopped_by_scheduler: bool = False
    stop_reason: str | None = None
    retries: int = 0
    error: str | None = None


class Ledger:
    """Per-trial records of a sweep, updated by :class:`SweepCallback`; JSON-able via ``to_dict``."""

    def __init__(self, metric: str, mode: str, max_epochs: int) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.metric, self.mode, self.max_epochs = metric, mode, int(max_epochs)
        self.trials: dict[str, TrialRecord] = {}

    def better(self, a: float, b: float | None) -> bool:
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return not math.isnan(a)
        return a > b if self.mode == "max" else a < b

    def record(self, trial_id: str) -> TrialRecord:
        return self.trials.setdefault(trial_id, TrialRecord(trial_id))

    def best_trial(self) -> TrialRecord | None:
        best: TrialRecord | None = None
        for r in self.trials.values():
            if r.best is not None and (best is None or self.better(r.best, best.best)):
                best = r
        return best

    def counts(self) -> dict[str, int]:
        out = {"running": 0, "completed": 0, "pruned": 0, "failed": 0, "pending": 0}
        for r in self.trials.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {t: asdict(r) for t, r in self.trials.items()}


def _scalar(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def user_metrics(result: dict[str, Any], time_attr: str = "epoch") -> dict[str, float]:
    """The numeric metrics a trial reported (Tune's bookkeeping keys and ``time_attr`` left out;
    nested dicts flattened with ``/``)."""
    out: dict[str, float] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if not prefix and (k in SKIP_KEYS or k == time_attr):
                continue
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}/")
            elif _scalar(v):
                out[f"{prefix}{k}"] = float(v)
            elif hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy scalar
                try:
                    out[f"{prefix}{k}"] = float(v.item())
                except (TypeError, ValueError):
                    pass

    walk(result, "")
    return out


class SweepCallback(Callback):
    """Feeds the tracker and the ledger; prints one line per trial event (see module docstring).

    Args:
        sweep_key: the key the tracker is registered under (the experiment path).
        ledger: the sweep's :class:`Ledger`.
        time_attr: the result key holding the epoch.
        out: where progress lines go (``None``: silent).
        status_every_s: at most one "progress" summary line per this many seconds.
        scheduler: the stop reason recorded for a trial a scheduler stopped without a verdict
            (Ray's ASHA / median / HyperBand give none): the scheduler's name.
    """

    def __init__(
        self,
        sweep_key: str,
        ledger: Ledger,
        time_attr: str = "epoch",
        out: TextIO | None = sys.stdout,
        status_every_s: float = 15.0,
        clock: Any = time.monotonic,
        scheduler: str = "scheduler",
    ) -> None:
        self.sweep_key = sweep_key
        self.scheduler = scheduler
        self.ledger = ledger
        self.time_attr = time_attr
        self.out = out
        self.status_every_s = status_every_s
        self._clock = clock
        self._t0 = clock()
        self._last_status = self._t0
        self._changed = False

    # Tune pickles callbacks into tuner.pkl: keep only data.
    def __getstate__(self) -> dict[str, Any]:
        s = self.__dict__.copy()
        s["out"] = None
        s["_clock"] = None
        return s

    def __setstate__(self, s: dict[str, Any]) -> None:
        self.__dict__.update(s)
        self._clock = time.monotonic
        self.out = sys.stdout

    @property
    def tracker(self):
        return lookup_tracker(self.sweep_key)

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        try:
            getattr(tracker, fn)(*args, **kw)
        except Exception:  # never let tracking break the sweep
            log.warning("tracking %s failed", what, exc_info=True)

    # ---- Tune hooks ---------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        rec = self.ledger.record(tid)
        first = rec.status == "pending"
        rec.status = "running"
        rec.stopped_by_scheduler = False
        rec.params = redact(dict(trial.config or {}))  # the table and ledger show no secrets
        self._call("start_trial", "start_trial", tid, rec.params)
        if first:
            self._line("start", tid, _fmt_params(rec.params))
        else:
            self._line("restart", tid, f"from epoch {rec.epochs}")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        tid = trial.trial_id
        rec = self.ledger.record(tid)
        step = result.get(self.time_attr, result.get("training_iteration"))
        if not _scalar(step):
            return
        step = int(step)
        metrics = user_metrics(result, self.time_attr)
        rec.results += 1
        rec.epochs = max(rec.epochs, step)
        v = metrics.get(self.ledger.metric)
        if v is not None:
            rec.last = v
            if self.ledger.better(v, rec.best):
                rec.best = v
        if result.get("done") and step < self.ledger.max_epochs:
            # Tune sets done on the result a STOP decision was made on; our stop criterion is
            # epoch >= max_epochs, so before it only a scheduler can have stopped the trial.
            rec.stopped_by_scheduler = True
        self._changed = True
        if metrics:
            self._call("log_metrics", "log_metrics", tid, step, metrics)
        self._maybe_status()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        rec = self.ledger.record(tid)
        tracker = self.tracker
        reason = tracker.stop_reason(tid) if tracker is not None else None
        pruned = rec.epochs < self.ledger.max_epochs and (
            rec.stopped_by_scheduler or reason is not None
        )
        rec.status = "pruned" if pruned else "completed"
        rec.stop_reason = reason if pruned else None
        if pruned and reason is None:
            rec.stop_reason = self.scheduler
            self._call("set_tags", "set_tags", tid, {"sweepcast.stop_reason": self.scheduler})
        # last: the tracker records the end in its state file, after the tag
        self._call("end_trial", "end_trial", tid, rec.status, self._summary(rec))
        detail = f"epoch {rec.epochs}/{self.ledger.max_epochs}  {self._best(rec)}"
        if pruned:
            detail += f"  (stop: {rec.stop_reason})"
        self._line(rec.status, tid, detail)
        self._changed = True

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        rec = self.ledger.record(tid)
        rec.status = "failed"
        text = _error_text(trial)
        rec.error = (text.strip().splitlines() or ["unknown error"])[-1][:200]
        tracker = self.tracker
        if tracker is not None and tracker.trial_status(tid) is None:
            self._call("start_trial", "start_trial", tid, rec.params)
        self._call("log_artifact", "log_artifact", tid, ("error.txt", text.encode()))
        self._call("end_trial", "end_trial", tid, "failed", self._summary(rec))
        self._line("failed", tid, f"epoch {rec.epochs}/{self.ledger.max_epochs}  {rec.error}")
        self._changed = True

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        rec = self.ledger.record(tid)
        rec.retries += 1
        self._call("set_tags", "set_tags", tid, {"sweepcast.retries": rec.retries})
        last = (_error_text(trial).strip().splitlines() or ["an error"])[-1][:200]
        self._line("retry", tid, f"attempt {rec.retries + 1} after: {last}")

    # ---- formatting -----------------------------------------------------------------------
    def _summary(self, rec: TrialRecord) -> dict[str, float]:
        s: dict[str, float] = {"epochs": float(rec.epochs)}
        if rec.best is not None:
            s[f"best_{self.ledger.metric}"] = rec.best
        return s

    def _best(self, rec: TrialRecord) -> str:
        return f"{self.ledger.metric}={_num(rec.best)}" if rec.best is not None else ""

    def _line(self, event: str, trial_id: str, detail: str) -> None:
        if self.out is None:
            return
        t = self._clock() - self._t0
        print(f"[{t:7.1f}s] {event:<9} {trial_id:<14} {detail}".rstrip(), file=self.out,
              flush=True)

    def _maybe_status(self) -> None:
        now = self._clock()
        if self.out is None or not self._changed or now - self._last_status < self.status_every_s:
            return
        self._last_status = now
        self._changed = False
        c = self.ledger.counts()
        best = self.ledger.best_trial()
        b = f", best {self.ledger.metric}={_num(best.best)} ({best.trial_id})" if best else ""
        done = c["completed"] + c["pruned"] + c["failed"]
        print(
            f"[{now - self._t0:7.1f}s] progress  {c['running']} running, {done} done "
            f"({c['completed']} completed, {c['pruned']} pruned, {c['failed']} failed){b}",
            file=self.out, flush=True,
        )


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def _fmt_params(params: dict[str, Any], limit: int = 100) -> str:
    parts = []
    for k, v in params.items():
        if k == "max_epochs":
            continue
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    s = " ".join(parts)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _error_text(trial: Any) -> str:
    """The trial's traceback: Tune's ``error.txt`` if present, else the error's repr."""
    for attr in ("error_file", "_error_file"):
        p = getattr(trial, attr, None)
        try:
            if p and Path(p).is_file():
                return Path(p).read_text(errors="replace")
        except OSError:
            pass
    try:
        path = Path(trial.local_path) / "error.txt"
        if path.is_file():
            return path.read_text(errors="replace")
    except (AttributeError, OSError, TypeError):
        pass
    err = getattr(trial, "error_msg", None) or getattr(trial, "_error", None)
    return str(err) if err else "the trial failed (no traceback recorded by Tune)"
