"""Live progress: the numbers, in-place redraws on a TTY, one line per change otherwise."""

from __future__ import annotations

import io

import pytest

from orchestrator.observe import ObservedTracker, SweepState
from orchestrator.progress import Progress, format_line, snapshot
from orchestrator.tracking import InMemoryTracker


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _tracker(progress_kw: dict, stream) -> tuple[ObservedTracker, SweepState, Clock]:
    state = SweepState(metric="acc", mode="max", max_epochs=10, num_samples=4)
    clock = Clock()
    prog = Progress(state, stream=stream, clock=clock, **progress_kw)
    t = ObservedTracker(InMemoryTracker(), [state, prog])
    t.start_sweep("demo", {})
    return t, state, clock


def test_snapshot_counts_best_and_saved_epochs() -> None:
    t, state, _ = _tracker({"mode": "off"}, io.StringIO())
    for tid in ("a", "b", "c"):
        t.start_trial(tid, {})
    for s in range(1, 11):
        t.log_metrics("a", s, {"acc": s / 10})
    t.end_trial("a", "completed")
    for s in (1, 2, 3):
        t.log_metrics("b", s, {"acc": 0.05 * s})
    t.end_trial("b", "pruned")
    t.log_metrics("c", 1, {"acc": 0.3})
    snap = snapshot(state)
    assert snap.counts == {"running": 1, "completed": 1, "pruned": 1, "failed": 0}
    assert snap.epochs == 14 and snap.saved == 7 and snap.fifo_epochs == 21
    assert snap.best == (1.0, "a", 10)
    line = format_line(snap)
    assert line == ("sweep demo: 1 running, 1 completed, 1 pruned, 0 failed (3/4) | "
                    "best acc 1 (a @ 10) | epochs 14, FIFO 21: saved 7 (33%)")


def test_min_mode_best_is_lowest() -> None:
    state = SweepState(metric="loss", mode="min", max_epochs=3)
    t = ObservedTracker(InMemoryTracker(), [state])
    t.start_sweep("m", {})
    t.start_trial("a", {})
    for s, v in ((1, 2.0), (2, 0.5), (3, 0.7)):
        t.log_metrics("a", s, {"loss": v})
    assert snapshot(state).best == (0.5, "a", 2)
    assert "best loss -" in format_line(snapshot(SweepState(metric="loss", mode="min",
                                                            max_epochs=3)))


def test_tty_redraws_in_place_throttled_and_ends_with_newline() -> None:
    out = FakeTTY()
    t, _, clock = _tracker({"mode": "auto", "interval_s": 1.0}, out)
    prog = t.listeners[1]
    assert prog.mode == "tty"
    t.start_trial("a", {})  # a change: drawn at once
    n0 = out.getvalue().count("\r\x1b[2K")
    t.log_metrics("a", 1, {"acc": 0.1})  # within the interval: not redrawn
    assert out.getvalue().count("\r\x1b[2K") == n0
    clock.t = 2.0
    t.log_metrics("a", 2, {"acc": 0.2})  # interval passed: redrawn in place
    assert out.getvalue().count("\r\x1b[2K") == n0 + 1
    assert "\n" not in out.getvalue()
    t.end_trial("a", "completed")
    t.end_sweep()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert "1 completed" in text.rsplit("\r\x1b[2K", 1)[-1]


def test_not_a_tty_prints_one_line_per_change_only() -> None:
    out = io.StringIO()
    t, _, _ = _tracker({"mode": "auto"}, out)
    assert t.listeners[1].mode == "lines"
    t.start_trial("a", {})
    for s in range(1, 6):
        t.log_metrics("a", s, {"acc": s / 10})
    t.end_trial("a", "pruned")
    t.end_sweep()
    t.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert len(lines) == 2  # trial start, trial end; the metric updates printed nothing
    assert lines[0].startswith("sweep demo: 1 running, 0 completed")
    assert "1 pruned" in lines[1] and "saved 5 (50%)" in lines[1]


def test_off_is_silent_and_bad_mode_is_named() -> None:
    out = FakeTTY()
    t, _, _ = _tracker({"mode": "off"}, out)
    t.start_trial("a", {})
    t.end_trial("a", "completed")
    t.end_sweep()
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match="progress mode must be one of .* got 'loud'"):
        Progress(SweepState(metric="a", mode="max", max_epochs=1), mode="loud")


def test_line_is_clipped_to_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    out = FakeTTY()
    t, _, _ = _tracker({"mode": "tty"}, out)
    t.start_trial("a", {})
    last = out.getvalue().rsplit("\r\x1b[2K", 1)[-1]
    assert len(last) <= 39 and last.endswith("…")


def test_passthrough_prints_event_lines_above_the_status_line() -> None:
    out = FakeTTY()
    t, _, _ = _tracker({"mode": "tty"}, out)
    prog = t.listeners[1]
    events = prog.passthrough()
    t.start_trial("a", {})
    events.write("[  1.0s] start     a\n")
    status = out.getvalue().rsplit("\r\x1b[2K", 1)[-1]
    assert status.startswith("sweep demo: 1 running")  # redrawn after the event line
    assert "\r\x1b[2K[  1.0s] start     a\n\r\x1b[2Ksweep demo" in out.getvalue()
    events.write("partial")  # no newline yet: nothing printed
    assert "partial" not in out.getvalue()


def test_final_mode_prints_one_line_at_the_end() -> None:
    out = io.StringIO()
    t, _, _ = _tracker({"mode": "final"}, out)
    t.start_trial("a", {})
    t.log_metrics("a", 1, {"acc": 0.5})
    t.end_trial("a", "pruned")
    assert out.getvalue() == ""
    events = t.listeners[1].passthrough()
    events.write("event\n")
    t.end_sweep()
    t.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "event" and len(lines) == 2
    assert lines[1].endswith("epochs 1, FIFO 10: saved 9 (90%)")
