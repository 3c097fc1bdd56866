"""Plots: produced, non-empty, and holding the expected artists (checked before saving)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from orchestrator import plots
from orchestrator.sweepdata import ComputeUsage, Decision, TrialRecord, compute_usage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _by_gid(fig: Figure, gid: str) -> list:
    return [a for a in fig.findobj() if a.get_gid() == gid]


def _decisions(steps, center, width, stop_at=None, reason="p_beat_low", p_stop=0.01):
    out = []
    for s in steps:
        stop = stop_at is not None and s == stop_at
        out.append(Decision(s, "stop" if stop else "continue",
                            reason if stop else "beats_incumbent",
                            p_stop if stop else 0.5, center - width, center, center + width))
    return out


@pytest.fixture
def pruned() -> TrialRecord:
    steps = list(range(1, 8))
    values = [0.2, 0.35, 0.45, 0.5, 0.53, 0.55, 0.56]
    return TrialRecord("t7", steps, values, "pruned",
                       decisions=[Decision(1, "continue", "grace"), Decision(2, "continue", "grace"),
                                  *_decisions(range(3, 8), 0.6, 0.05, stop_at=7)])


def test_trial_figure_has_curve_bands_stop_marker_and_labels(pruned: TrialRecord) -> None:
    fig = plots.trial_figure(pruned, metric="val_accuracy", mode="max", horizon=20,
                             incumbent_value=0.8)
    ax = fig.axes[0]
    (curve,) = _by_gid(fig, "curve")
    np.testing.assert_allclose(curve.get_xdata(), pruned.steps)
    np.testing.assert_allclose(curve.get_ydata(), pruned.values)

    bands = _by_gid(fig, "band")
    # one fill_between band per decision that carries a forecast (not the two grace ones)
    assert len(bands) == 5
    assert all(isinstance(b, PolyCollection) for b in bands)
    last = bands[-1].get_paths()[0].vertices
    # the last band runs from the stop step (7) to the horizon (20), between q05 and q95
    assert last[:, 0].min() == pytest.approx(7) and last[:, 0].max() == pytest.approx(20)
    at_h = last[np.isclose(last[:, 0], 20), 1]
    assert at_h.min() == pytest.approx(0.55) and at_h.max() == pytest.approx(0.65)
    assert len(_by_gid(fig, "median")) == 5

    (marker,) = _by_gid(fig, "stop_marker")
    assert marker.get_marker() == "X"
    assert list(marker.get_xdata()) == [7] and list(marker.get_ydata()) == [0.56]
    (label,) = _by_gid(fig, "stop_label")
    assert "p_beat_low" in label.get_text() and "epoch 7" in label.get_text()
    assert "p_beat=0.01" in label.get_text()

    (inc,) = _by_gid(fig, "incumbent")
    assert list(inc.get_ydata()) == [0.8, 0.8]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "forecast of final value, 5-95%" in legend and "stopped" in legend
    assert ax.get_xlabel() == "epoch" and "val_accuracy" in ax.get_ylabel()
    assert "t7" in ax.get_title() and "pruned" in ax.get_title()

    png = plots.to_png(fig)
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_completed_trial_has_no_stop_marker_and_bands_only_with_forecasts() -> None:
    t = TrialRecord("a", [1, 2, 3], [1.0, 0.8, 0.7], "completed",
                    decisions=[Decision(2, "continue", "grace"),
                               Decision(3, "continue", "beats_incumbent", 0.9, 0.5, 0.6, 0.7)])
    fig = plots.trial_figure(t, metric="val_loss", mode="min")
    assert _by_gid(fig, "stop_marker") == [] and _by_gid(fig, "stop_label") == []
    assert len(_by_gid(fig, "band")) == 1
    assert "lower is better" in fig.axes[0].get_ylabel()
    (h,) = _by_gid(fig, "horizon")  # default horizon: the last step
    assert list(h.get_xdata()) == [3, 3]


def test_failed_and_diverged_trial_is_drawn_without_crashing() -> None:
    t = TrialRecord("d", [1, 2, 3, 4], [0.5, 0.4, math.nan, math.inf], "failed")
    fig = plots.trial_figure(t, metric="val_loss", mode="min", horizon=10)
    (marker,) = _by_gid(fig, "stop_marker")
    assert list(marker.get_ydata()) == [0.4]  # placed on the last finite value
    (label,) = _by_gid(fig, "stop_label")
    assert "failed at epoch 4" in label.get_text()
    (curve,) = _by_gid(fig, "curve")
    assert np.isnan(curve.get_ydata()[2:]).all()
    assert plots.to_png(fig).startswith(PNG_MAGIC)


def test_trial_without_points_still_renders() -> None:
    fig = plots.trial_figure(TrialRecord("e", [], [], "failed"), metric="m", mode="max",
                             horizon=5)
    assert _by_gid(fig, "stop_marker") == []
    assert plots.to_png(fig).startswith(PNG_MAGIC)


def _sweep() -> list[TrialRecord]:
    return [
        TrialRecord("c1", [1, 2, 3, 4], [0.3, 0.5, 0.6, 0.7], "completed"),
        TrialRecord("c2", [1, 2, 3, 4], [0.3, 0.6, 0.7, 0.9], "completed"),
        TrialRecord("p1", [1, 2], [0.1, 0.2], "pruned", stop_reason="p_beat_low"),
        TrialRecord("f1", [1], [0.2], "failed"),
        TrialRecord("r1", [1, 2, 3], [0.2, 0.3, 0.35], "running"),
    ]


def test_sweep_figure_greys_pruned_where_stopped_and_highlights_incumbent() -> None:
    trials = _sweep()
    fig = plots.sweep_figure(trials, metric="acc", mode="max", horizon=4, title="demo")
    ax = fig.axes[0]
    lines = {a.get_gid(): a for a in ax.lines}
    for t in trials:
        line = lines[f"curve:{t.trial_id}"]
        np.testing.assert_allclose(line.get_xdata(), t.steps)
    pruned = lines["curve:p1"]
    assert pruned.get_color() == plots.COLORS["pruned"]
    assert list(pruned.get_xdata())[-1] == 2  # ends where it was stopped
    stop = lines["stop:p1"]
    assert list(stop.get_xdata()) == [2] and stop.get_marker() == "x"
    inc = lines["curve:c2"]
    assert inc.get_color() == plots.COLORS["incumbent"]
    assert inc.get_linewidth() > lines["curve:c1"].get_linewidth()
    assert inc.get_label().startswith("incumbent c2")
    assert lines["curve:f1"].get_linestyle() == ":"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) >= {"completed", "pruned", "failed", "running"}
    assert "5 trials" in ax.get_title() and "1 pruned" in ax.get_title()
    assert plots.to_png(fig).startswith(PNG_MAGIC)


def test_sweep_figure_min_mode_picks_lowest_and_explicit_incumbent_is_checked() -> None:
    trials = _sweep()
    fig = plots.sweep_figure(trials, metric="loss", mode="min")
    lines = {a.get_gid(): a for a in fig.axes[0].lines}
    assert lines["curve:c1"].get_color() == plots.COLORS["incumbent"]
    with pytest.raises(ValueError, match="incumbent_id 'nope'"):
        plots.sweep_figure(trials, metric="loss", mode="min", incumbent_id="nope")
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'up'"):
        plots.sweep_figure(trials, metric="loss", mode="up")
    with pytest.raises(ValueError, match="horizon must be a positive integer, got 0"):
        plots.sweep_figure(trials, metric="loss", mode="min", horizon=0)


def test_compute_figure_bars_match_usage() -> None:
    usage = compute_usage(_sweep(), max_epochs=4)
    assert usage.fifo_epochs == 20 and usage.used == 4 + 4 + 2 + 1 + 3
    fig = plots.compute_figure(usage)
    (fifo,) = _by_gid(fig, "fifo")
    assert fifo.get_width() == 20
    widths = {s: _by_gid(fig, f"used:{s}")[0].get_width()
              for s in ("completed", "pruned", "failed", "running")}
    assert widths == {"completed": 8, "pruned": 2, "failed": 1, "running": 3}
    (title,) = _by_gid(fig, "saving")
    assert "used 14 of 20 epochs" in title.get_text() and "saved 30%" in title.get_text()
    assert plots.to_png(fig).startswith(PNG_MAGIC)


def test_compute_figure_empty_sweep() -> None:
    fig = plots.compute_figure(ComputeUsage({}, 0, 0, 5))
    assert [a for a in fig.findobj() if str(a.get_gid()).startswith("used:")] == []
    assert plots.to_png(fig).startswith(PNG_MAGIC)


def test_bands_are_capped_evenly_with_the_last_kept() -> None:
    steps = list(range(1, 41))
    t = TrialRecord("long", steps, [s / 40 for s in steps], "completed",
                    decisions=_decisions(range(3, 41), 0.9, 0.05))
    fig = plots.trial_figure(t, metric="acc", mode="max", horizon=40, max_bands=5)
    bands = _by_gid(fig, "band")
    starts = [b.get_paths()[0].vertices[:, 0].min() for b in bands]
    assert len(bands) == 5 and starts[0] == pytest.approx(3) and starts[-1] == pytest.approx(40)
    (marks,) = _by_gid(fig, "decisions")
    assert len(marks.get_xdata()) == 38  # every decision keeps its marker
    assert len(_by_gid(plots.trial_figure(t, metric="acc", mode="max", max_bands=None),
                       "band")) == 38
    with pytest.raises(ValueError, match="max_bands must be an integer >= 2 or None, got 1"):
        plots.trial_figure(t, metric="acc", mode="max", max_bands=1)
