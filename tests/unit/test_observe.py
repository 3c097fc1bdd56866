"""ObservedTracker forwards everything to its inner tracker; SweepState and PlotArtifacts."""

from __future__ import annotations

import io
import math

import pytest

from orchestrator.observe import Listener, ObservedTracker, SweepState, attach
from orchestrator.progress import Progress
from orchestrator.tracking import InMemoryTracker, Tracker


class Spy(Listener):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattribute__(self, name: str):
        if name.startswith(("on_", "before_")):
            calls = object.__getattribute__(self, "calls")
            return lambda *a: calls.append((name, *a))
        return object.__getattribute__(self, name)


class Boom(Listener):
    def on_metrics(self, *a) -> None:
        raise RuntimeError("listener bug")


def _run_sweep(tracker: Tracker) -> None:
    tracker.start_sweep("demo", {"metric": "acc"}, {"metric": "acc"})
    for tid in ("a", "b", "c"):
        tracker.start_trial(tid, {"lr": 0.1})
    for step in (1, 2, 3, 4):
        tracker.log_metrics("a", step, {"acc": 0.2 * step, "loss": 1.0 / step})
    tracker.end_trial("a", "completed")
    tracker.log_metrics("b", 1, {"acc": 0.1})
    tracker.log_metrics("b", 2, {"acc": 0.15})
    tracker.log_verdict("b", 2, {"decision": "continue", "reason": "beats_incumbent",
                                 "p_beat": 0.4, "q05": 0.2, "q50": 0.4, "q95": 0.6})
    tracker.log_verdict("b", 3, {"decision": "stop", "reason": "p_beat_low",
                                 "p_beat": 0.01, "q05": 0.1, "q50": 0.2, "q95": 0.3})
    tracker.log_metrics("b", 3, {"acc": math.nan})
    tracker.end_trial("b", "pruned")
    tracker.log_metrics("c", 1, {"acc": 0.05})
    tracker.end_trial("c", "failed")
    tracker.end_sweep({"best": 0.8})
    tracker.close()


def test_forwards_every_call_and_tells_listeners_in_order() -> None:
    inner, spy = InMemoryTracker(), Spy()
    t = ObservedTracker(inner, [Boom(), spy])
    _run_sweep(t)
    # the inner tracker recorded exactly what it would have recorded alone
    alone = InMemoryTracker()
    _run_sweep(alone)
    assert inner.trials.keys() == alone.trials.keys()
    for tid in inner.trials:
        a, b = inner.trials[tid], alone.trials[tid]
        assert a["metrics"].keys() == b["metrics"].keys() and a["status"] == b["status"]
        assert a["tags"]["sweepcast.status"] == b["tags"]["sweepcast.status"]
    assert inner.trials["b"]["tags"]["sweepcast.stop_reason"] == "p_beat_low"
    assert t.parent_run_id == inner.parent_run_id
    assert t.trial_run_id("a") == inner.trial_run_id("a")
    assert t.trial_status("b") == "pruned" and t.stop_reason("b") == "p_beat_low"
    hooks = [c[0] for c in spy.calls]
    assert hooks[0] == "on_sweep_start" and hooks[-2:] == ["on_sweep_end", "on_close"]
    assert hooks.index("before_sweep_end") == len(hooks) - 3
    assert hooks.count("on_trial_start") == 3 and hooks.count("on_trial_end") == 3
    assert hooks.count("on_metrics") == 8 and hooks.count("on_verdict") == 2
    verdict = next(c for c in spy.calls if c[0] == "on_verdict" and c[2] == 3)[3]
    assert verdict.stops and verdict.reason == "p_beat_low"


def test_errors_of_the_inner_tracker_propagate_and_listeners_are_not_told() -> None:
    spy = Spy()
    t = ObservedTracker(InMemoryTracker(), [spy])
    t.start_sweep("demo", {})
    with pytest.raises(ValueError, match="unknown trial 'x'"):
        t.log_metrics("x", 1, {"acc": 1.0})
    with pytest.raises(ValueError, match="status must be one of"):
        t.end_trial("x", "done")
    assert [c[0] for c in spy.calls] == ["on_sweep_start"]
    assert isinstance(t, Tracker)
    assert t.state() == t.inner.state()


def test_sweep_state_builds_the_record() -> None:
    state = SweepState(metric="acc", mode="max", max_epochs=4, num_samples=3)
    _run_sweep(ObservedTracker(InMemoryTracker(), [state]))
    rec = state.record()
    assert rec.name == "demo" and rec.parent_run_id is not None
    a, b, c = rec.trials
    assert (a.status, b.status, c.status) == ("completed", "pruned", "failed")
    assert a.steps == (1, 2, 3, 4) and a.values[-1] == pytest.approx(0.8)
    assert b.reason == "p_beat_low" and math.isnan(b.values[-1])
    assert [(d.step, d.action, d.p_beat, d.q95) for d in b.decisions] == [
        (2, "continue", 0.4, 0.6), (3, "stop", 0.01, 0.3)]
    assert c.stop_reason is None
    assert state.best == (pytest.approx(0.8), "a", 4)
    assert rec.compute().used == 4 + 3 + 1
    assert rec.ranking_markdown is None and a.score is None
    assert state.incumbent_value() == pytest.approx(0.8) == rec.incumbent().last_value
    with pytest.raises(ValueError, match="max_epochs must be a positive integer, got 0"):
        SweepState(metric="acc", mode="max", max_epochs=0)


@pytest.mark.slow
def test_plot_artifacts_logged_to_trials_and_parent() -> None:
    inner = InMemoryTracker()
    state = SweepState(metric="acc", mode="max", max_epochs=4)
    stream = io.StringIO()
    t = attach(inner, state, Progress(state, stream=stream, mode="lines"), dpi=60)
    _run_sweep(t)
    for tid in ("a", "b", "c"):
        png = inner.trials[tid]["artifacts"]["plots/curve.png"]
        assert png.startswith(b"\x89PNG") and len(png) > 3000
    arts = inner.parent["artifacts"]
    assert arts["plots/sweep_curves.png"].startswith(b"\x89PNG")
    assert arts["plots/compute.png"].startswith(b"\x89PNG")
    page = arts["report.html"].decode()
    assert "<h1>sweep demo</h1>" in page and page.count("data:image/png;base64,") == 5
    assert "p_beat_low" in page
    listener = t.listeners[1]
    assert listener.errors == []
    assert "1 completed, 1 pruned, 1 failed" in stream.getvalue().splitlines()[-1]


def test_sweep_state_keeps_scores_and_the_ranking_table() -> None:
    state = SweepState(metric="acc", mode="max", max_epochs=2)
    t = ObservedTracker(InMemoryTracker(), [state])
    t.start_sweep("s", {})
    t.start_trial("a", {})
    t.log_metrics("a", 2, {"acc": 0.5, "score": 1.25})
    t.log_artifact(None, ("ranking.md", b"| rank | trial |\n|---|---|\n| 1 | a |\n"), "scoring")
    t.log_artifact(None, ("ranking.md", b"other"), "elsewhere")  # not the scorer's table
    rec = state.record()
    assert rec.trials[0].score == 1.25
    assert rec.ranking_markdown.startswith("| rank | trial |")


def test_resumed_sweep_plots_include_trials_from_before_the_interruption() -> None:
    from orchestrator.observe import PlotArtifacts
    from orchestrator.sweepdata import SweepRecord, TrialRecord

    first = InMemoryTracker()
    first.start_sweep("demo", {})
    first.start_trial("old", {})
    first.log_metrics("old", 1, {"acc": 0.9})
    first.end_trial("old", "completed")
    saved = first.state()

    inner = InMemoryTracker()
    inner.restore(saved)  # what `sweepcast resume` does
    state = SweepState(metric="acc", mode="max", max_epochs=2)
    past = SweepRecord("demo", "acc", "max", 2, [
        TrialRecord("old", [1, 2], [0.9, 0.95], "completed", score=3.0),
        TrialRecord("elsewhere", [1], [0.1], "pruned")])  # not this tracker's: left out
    asked: list[object] = []
    plots = PlotArtifacts(state, trial_plots=False, dpi=50,
                          history=lambda tr: asked.append(tr) or past).bind(inner)
    t = ObservedTracker(inner, [state, plots])
    t.start_sweep("demo", {})
    t.start_trial("new", {})
    t.log_metrics("new", 1, {"acc": 0.5})
    t.end_trial("new", "pruned")
    t.end_sweep()
    assert asked == [inner]
    rec = state.record()
    assert [x.trial_id for x in rec.trials] == ["new", "old"]
    assert rec.incumbent().trial_id == "old" and rec.trials[1].score == 3.0
    assert state.best == (0.95, "old", 2)
    page = inner.parent["artifacts"]["report.html"].decode()
    assert "2: 1 completed, 1 pruned" in page


def test_fresh_sweep_does_not_read_history() -> None:
    from orchestrator.observe import PlotArtifacts

    state = SweepState(metric="acc", mode="max", max_epochs=4)
    inner = InMemoryTracker()

    def history(tr):
        raise AssertionError("history read for a sweep without gaps")

    t = ObservedTracker(inner, [state, PlotArtifacts(state, trial_plots=False, dpi=50,
                                                     history=history).bind(inner)])
    _run_sweep(t)
    assert "plots/sweep_curves.png" in inner.parent["artifacts"]
