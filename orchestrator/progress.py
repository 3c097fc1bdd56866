"""Live progress of a sweep in the terminal, as a tracker listener (see ``orchestrator.observe``).

One status line: trials running / completed / pruned / failed (of ``num_samples``), the best
value so far, and the epochs trained against what FIFO would have trained for the same trials::

    sweep quickstart: 2 running, 3 completed, 4 pruned, 0 failed (9/20) | best val_accuracy
    0.9312 (trial_0003 @ 7) | epochs 57, FIFO 80: saved 23 (29%)

Modes (``mode="auto"`` picks ``tty`` when the stream is a terminal, else ``lines``):

* ``tty``: the line is redrawn in place (``\\r`` + erase line), at most every ``interval_s``
  except when a trial starts or ends; clipped to the terminal width; a final newline at the end.
* ``lines``: one plain line each time a trial starts or ends (CI logs stay readable).
* ``final``: only the last line, when the sweep ends (for logs that already get a line per
  event from elsewhere, e.g. ``SweepCallback``).
* ``off``: silent.

Other output during the sweep (event lines) can go through :meth:`Progress.passthrough`, a
text stream that, on a TTY, prints each complete line above the status line and redraws it.

"Saved" counts only trials that ended early: a pruned or failed trial saves
``max_epochs - epochs it trained``; running trials have saved nothing yet. FIFO for the same
trials is ``used + saved``.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from orchestrator.observe import Listener, ObservedTracker, SweepState, attach
from orchestrator.tracking.base import VerdictRecord

__all__ = ["MODES", "Progress", "ProgressSnapshot", "format_line", "snapshot"]

MODES = ("auto", "tty", "lines", "final", "off")


class ProgressSnapshot:
    """The numbers on the progress line (plain data, for tests and other views)."""

    __slots__ = ("best", "counts", "epochs", "fifo_epochs", "metric", "name", "num_samples",
                 "saved")

    def __init__(self, name: str, metric: str, counts: dict[str, int], num_samples: int | None,
                 best: tuple[float, str, int] | None, epochs: int, saved: int) -> None:
        self.name, self.metric, self.counts = name, metric, counts
        self.num_samples, self.best, self.epochs, self.saved = num_samples, best, epochs, saved
        self.fifo_epochs = epochs + saved

    @property
    def saved_fraction(self) -> float:
        return self.saved / self.fifo_epochs if self.fifo_epochs else 0.0


def snapshot(state: SweepState) -> ProgressSnapshot:
    """Summarise ``state`` now (O(trials): cheap enough for every trial start and end)."""
    counts, used, saved = state.totals()
    return ProgressSnapshot(state.name, state.metric, counts, state.num_samples, state.best,
                            used, saved)


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def format_line(s: ProgressSnapshot) -> str:
    """The status line for a snapshot (no trailing newline)."""
    c = s.counts
    started = sum(c.values())
    total = f"{started}/{s.num_samples}" if s.num_samples else f"{started}"
    parts = [
        (f"sweep {s.name}: {c['running']} running, {c['completed']} completed, "
        f"{c['pruned']} pruned, {c['failed']} failed ({total})"),
        (f"best {s.metric} {_fmt(s.best[0])} ({s.best[1]} @ {s.best[2]})" if s.best
         else f"best {s.metric} -"),
        f"epochs {s.epochs}, FIFO {s.fifo_epochs}: saved {s.saved} ({s.saved_fraction:.0%})",
    ]
    return " | ".join(parts)


class Progress(Listener):
    """Prints :func:`format_line` as the sweep goes (see module docstring for the modes).

    Args:
        state: the :class:`SweepState` on the same tracker, listed before this listener.
        stream: where to write (default ``sys.stderr``).
        mode: ``auto`` | ``tty`` | ``lines`` | ``off``.
        interval_s: minimum seconds between in-place redraws on metric updates (``tty``).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, state: SweepState, *, stream: TextIO | None = None, mode: str = "auto",
                 interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
        if not (isinstance(interval_s, (int, float)) and interval_s >= 0):
            raise ValueError(f"interval_s must be a number >= 0, got {interval_s!r}")
        self.state = state
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "tty" if callable(isatty) and isatty() else "lines"
        self.mode = mode
        self.interval_s = float(interval_s)
        self.clock = clock
        self._last_draw = -math.inf
        self._last_line = ""
        self._drawn = False
        self._finished = False

    # ---- listener hooks --------------------------------------------------------------------
    def on_trial_start(self, trial_id: str, params: Mapping[str, Any]) -> None:
        self._update(changed=True)

    def on_metrics(self, trial_id: str | None, step: int, metrics: Mapping[str, Any]) -> None:
        if trial_id is not None:
            self._update(changed=False)

    def on_verdict(self, trial_id: str, step: int, verdict: VerdictRecord) -> None:
        return None

    def on_trial_end(self, trial_id: str, status: str) -> None:
        self._update(changed=True)

    def on_sweep_end(self, status: str) -> None:
        self.finish()

    def on_close(self) -> None:
        self.finish()

    # ---- drawing ---------------------------------------------------------------------------
    def _update(self, *, changed: bool) -> None:
        if self.mode in ("off", "final"):
            return
        now = self.clock()
        if self.mode == "lines":
            if not changed:
                return
            line = format_line(snapshot(self.state))
            if line != self._last_line:
                self._write(line + "\n")
                self._last_line = line
            return
        if not changed and now - self._last_draw < self.interval_s:
            return
        self._last_draw = now
        self._draw(format_line(snapshot(self.state)))

    def _draw(self, line: str) -> None:
        width = shutil.get_terminal_size((120, 20)).columns
        if len(line) > width - 1:
            line = line[: max(1, width - 2)] + "…"
        self._write("\r\x1b[2K" + line)
        self._last_line = line
        self._drawn = True

    def finish(self) -> None:
        """Draw the final state (``tty``: redraw and end the line). Idempotent."""
        if self.mode == "tty" and self._drawn:
            self._draw(format_line(snapshot(self.state)))
            self._write("\n")
            self._drawn = False
        elif self.mode == "lines":
            self._update(changed=True)
        elif self.mode == "final" and not self._finished:
            self._write(format_line(snapshot(self.state)) + "\n")
        self._finished = True

    def passthrough(self) -> TextIO:
        """A text stream for other lines: on a TTY each complete line is printed above the
        status line, which is then redrawn; otherwise lines go straight to :attr:`stream`."""
        return _Passthrough(self)  # type: ignore[return-value]

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed stream: progress is best-effort
            self.mode = "off"


class _Passthrough:
    """File-like: whole lines go above the live status line (see :meth:`Progress.passthrough`)."""

    def __init__(self, progress: Progress) -> None:
        self._p = progress
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            p = self._p
            if p.mode == "tty" and p._drawn:
                p._write("\r\x1b[2K" + line + "\n")
                p._draw(p._last_line)
            else:
                p._write(line + "\n")
        return len(text)

    def flush(self) -> None:
        try:
            self._p.stream.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        return False


def attach_views(cfg: Any, tracker: Any, out: TextIO | None, *,
                 plots: bool = True) -> tuple[ObservedTracker, TextIO | None]:
    """Wire the live view and the plot artifacts around a sweep's tracker (for the runner).

    Args:
        cfg: the ``SweepConfig`` (metric, mode, max_epochs, name, num_samples, search,
            pruning).
        tracker: the sweep's tracker.
        out: the runner's output stream (``None``: silent).
        plots: log the plot artifacts (:class:`~orchestrator.observe.PlotArtifacts`).

    Returns:
        ``(observed_tracker, events)``: use ``observed_tracker`` everywhere in place of
        ``tracker``, and give ``events`` to whatever prints per-event lines (on a TTY they
        appear above the live status line; otherwise it is ``out`` itself, and the status is
        printed once, at the end).
    """
    if isinstance(tracker, ObservedTracker):  # already watched (a caller wired it)
        return tracker, out
    n = int(cfg.num_samples)
    if getattr(cfg.search, "algorithm", None) == "grid":
        from orchestrator.config import grid_size

        n *= grid_size(cfg.search.space)
    state = SweepState(metric=cfg.metric, mode=cfg.mode, max_epochs=int(cfg.max_epochs),
                       name=cfg.name, num_samples=n, scheduler=cfg.pruning.scheduler)
    extra: list[Listener] = []
    events = out
    if out is not None:
        isatty = getattr(out, "isatty", None)
        tty = bool(callable(isatty) and isatty())
        prog = Progress(state, stream=out, mode="tty" if tty else "final")
        extra.append(prog)
        events = prog.passthrough() if tty else out
    return attach(tracker, state, *extra, plots=plots), events
