"""Plots of a sweep, made with matplotlib: pure functions from plain data to a ``Figure``.

No pyplot and no global backend switch: every figure is a ``matplotlib.figure.Figure`` on its
own ``FigureCanvasAgg``, so plotting is thread-safe and works headless. Artists carry a ``gid``
(listed per function) so tests and callers can find them without parsing pixels.

* :func:`trial_figure`: one trial's curve, the 5-95% forecast band of the final value drawn from
  each decision point to the horizon, the incumbent line and the stop marker with its reason.
* :func:`sweep_figure`: every trial's curve on one plot; pruned ones grey and ending where they
  were stopped (with an ``x``), failed ones red, the incumbent highlighted.
* :func:`compute_figure`: epochs used (by trial status) against FIFO's.
* :func:`to_png`: render a figure to PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.sweepdata import (
    STATUSES,
    ComputeUsage,
    TrialRecord,
    check_mode,
    incumbent,
)

__all__ = ["COLORS", "compute_figure", "sweep_figure", "to_png", "trial_figure"]

COLORS = {
    "completed": "tab:blue",
    "pruned": "0.6",  # grey
    "failed": "tab:red",
    "running": "tab:green",
    "incumbent": "tab:orange",
    "band": "tab:purple",
    "stop": "tab:red",
}


def _new_figure(width: float = 7.0, height: float = 4.2) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finite(values: Sequence[float]) -> list[float]:
    """Values with non-finite ones replaced by NaN (drawn as gaps, ignored by autoscale)."""
    return [v if math.isfinite(v) else math.nan for v in values]


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _horizon(trials: Sequence[TrialRecord], horizon: int | None) -> int:
    if horizon is not None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        return horizon
    last = [t.steps[-1] for t in trials if t.steps]
    return max(last) if last else 1


def _value_at(trial: TrialRecord, step: int) -> float:
    """The trial's value at ``step`` (the last reported at or before it), NaN if none/non-finite."""
    v = math.nan
    for s, x in zip(trial.steps, trial.values):
        if s > step:
            break
        v = x
    return v if math.isfinite(v) else math.nan


def trial_figure(
    trial: TrialRecord,
    *,
    metric: str,
    mode: str,
    horizon: int | None = None,
    incumbent_value: float | None = None,
    max_bands: int | None = 12,
) -> Figure:
    """One trial's curve with its forecast bands and stop marker.

    At every decision that carries a forecast (q05/q95 of the final value), a translucent band
    runs from the trial's value at the decision step to [q05, q95] at the horizon, with the
    median forecast as a dashed line; later decisions are drawn more opaque. A pruned trial gets
    a red ``X`` at its last point annotated with the stop reason and p_beat; a failed one a black
    ``X`` annotated "failed".

    Artists (by ``gid``): ``curve`` (Line2D), ``band`` (one PolyCollection per decision with a
    forecast, up to ``max_bands``), ``median`` (Line2D per band), ``decisions`` (markers at
    every decision step),
    ``incumbent`` (horizontal line, when given), ``stop_marker`` and ``stop_label`` (pruned or
    failed trials), ``horizon`` (vertical line).

    Args:
        trial: the trial to draw.
        metric: the metric's name (y label).
        mode: ``min`` or ``max`` (only shown in the label).
        horizon: the final epoch (``max_epochs``); default: the trial's last step.
        incumbent_value: the best completed trial's final value, drawn as a reference line.
        max_bands: draw the bands of at most this many decisions, evenly spaced and always the
            last (``None``: all); every decision still gets its marker. Each band is a
            translucent polygon: a hundred of them take seconds to render and hide each other.

    Raises:
        ValueError: bad ``mode`` or ``horizon``.
    """
    check_mode(mode)
    if max_bands is not None and (isinstance(max_bands, bool) or not isinstance(max_bands, int)
                                  or max_bands < 2):
        raise ValueError(f"max_bands must be an integer >= 2 or None, got {max_bands!r}")
    h = _horizon([trial], horizon)
    fig = _new_figure()
    ax = fig.add_subplot()
    (curve,) = ax.plot(
        trial.steps, _finite(trial.values), color=COLORS.get(trial.status, "tab:blue"),
        marker="o", markersize=3, linewidth=1.8, label=f"{metric} (observed)", gid="curve",
    )
    if trial.status == "pruned":
        curve.set_color("tab:blue")

    banded = [d for d in trial.decisions if d.has_band]
    if max_bands is not None and len(banded) > max_bands:
        # evenly spaced, always the last one (the decision that stopped or ended the trial)
        keep = {round(i * (len(banded) - 1) / (max_bands - 1)) for i in range(max_bands)}
        banded = [d for i, d in enumerate(banded) if i in keep]
    for i, d in enumerate(banded):
        start = _value_at(trial, d.step)
        q50 = d.q50 if d.q50 is not None and math.isfinite(d.q50) else (d.q05 + d.q95) / 2  # type: ignore[operator]
        if math.isnan(start):
            start = q50
        x = [d.step, h]
        alpha = 0.08 + 0.25 * (i + 1) / len(banded)
        last = i == len(banded) - 1
        ax.fill_between(
            x, [start, d.q05], [start, d.q95], color=COLORS["band"], alpha=alpha, linewidth=0,
            label="forecast of final value, 5-95%" if last else None, gid="band",
        )
        ax.plot(
            x, [start, q50], color=COLORS["band"], linestyle="--", linewidth=0.8,
            alpha=min(1.0, alpha + 0.3), label="forecast median" if last else None, gid="median",
        )
    if trial.decisions:
        steps = [d.step for d in trial.decisions]
        ax.plot(
            steps, [_value_at(trial, s) for s in steps], linestyle="none", marker="|",
            markersize=10, color=COLORS["band"], label="decision points", gid="decisions",
        )

    if incumbent_value is not None and math.isfinite(incumbent_value):
        ax.axhline(
            incumbent_value, color=COLORS["incumbent"], linestyle=":", linewidth=1.5,
            label=f"incumbent {_fmt(incumbent_value)}", gid="incumbent",
        )
    ax.axvline(h, color="0.3", linewidth=0.8, linestyle="-.", gid="horizon")
    ax.set_xlim(left=min([0, *trial.steps]), right=h + max(1, h * 0.02))

    if trial.status in ("pruned", "failed") and trial.steps:
        xs = trial.steps[-1]
        ys = _value_at(trial, xs)
        if math.isnan(ys):  # diverged: put the marker on the last finite point or the axis
            finite = [v for v in trial.values if math.isfinite(v)]
            ys = finite[-1] if finite else 0.0
        if trial.status == "pruned":
            stop = trial.stop_decision
            text = f"stopped at epoch {xs}: {trial.reason or 'scheduler'}"
            if stop is not None and stop.p_beat is not None:
                text += f"\np_beat={stop.p_beat:.3g}"
            color = COLORS["stop"]
        else:
            text = f"failed at epoch {xs}"
            color = "black"
        ax.plot([xs], [ys], marker="X", markersize=12, color=color, linestyle="none",
                label="stopped" if trial.status == "pruned" else "failed", gid="stop_marker")
        # Point the label towards the middle of the axes so it never runs into the title.
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        right = xs > (x0 + x1) / 2
        high = ys > (y0 + y1) / 2
        ax.annotate(
            text, (xs, ys), xytext=(-14 if right else 14, -30 if high else 30),
            textcoords="offset points", fontsize=9, color=color,
            ha="right" if right else "left", va="top" if high else "bottom",
            bbox={"boxstyle": "round", "fc": "white", "ec": color, "alpha": 0.9},
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.8},
            gid="stop_label",
        )

    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_title(f"trial {trial.trial_id}: {trial.status}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def sweep_figure(
    trials: Sequence[TrialRecord],
    *,
    metric: str,
    mode: str,
    horizon: int | None = None,
    title: str | None = None,
    incumbent_id: str | None = None,
) -> Figure:
    """All trials' curves on one plot.

    Completed trials are blue, pruned ones grey with an ``x`` where they were stopped, failed ones
    red dotted, running ones green; the incumbent (``incumbent_id``, default: the best completed
    trial by last value) is drawn thick orange on top. One legend entry per category present.

    Artists (by ``gid``): ``curve:<trial_id>`` (Line2D per trial), ``stop:<trial_id>`` (``x``
    marker per pruned trial), ``incumbent`` is the gid suffix-free alias: the incumbent's line
    has gid ``curve:<id>`` and label starting ``incumbent``.

    Raises:
        ValueError: bad ``mode``/``horizon`` or an ``incumbent_id`` not among ``trials``.
    """
    check_mode(mode)
    h = _horizon(trials, horizon)
    if incumbent_id is None:
        inc = incumbent(trials, mode)
        incumbent_id = inc.trial_id if inc is not None else None
    elif incumbent_id not in {t.trial_id for t in trials}:
        raise ValueError(f"incumbent_id {incumbent_id!r} is not one of the trials")

    fig = _new_figure(8.0, 4.8)
    ax = fig.add_subplot()
    labelled: set[str] = set()
    inc_trial: TrialRecord | None = None
    for t in trials:
        if t.trial_id == incumbent_id:
            inc_trial = t
            continue
        label = None
        if t.status not in labelled:
            labelled.add(t.status)
            label = t.status
        style = {"linestyle": ":" if t.status == "failed" else "-",
                 "alpha": 0.85 if t.status != "pruned" else 0.7,
                 "linewidth": 1.0}
        ax.plot(t.steps, _finite(t.values), color=COLORS[t.status], label=label,
                gid=f"curve:{t.trial_id}", **style)
        if t.status == "pruned" and t.steps:
            y = _value_at(t, t.steps[-1])
            if not math.isnan(y):
                ax.plot([t.steps[-1]], [y], marker="x", color=COLORS["pruned"], linestyle="none",
                        markersize=6, gid=f"stop:{t.trial_id}")
    if inc_trial is not None:
        ax.plot(inc_trial.steps, _finite(inc_trial.values), color=COLORS["incumbent"],
                linewidth=2.6, zorder=5, gid=f"curve:{inc_trial.trial_id}",
                label=f"incumbent {inc_trial.trial_id} ({_fmt(inc_trial.last_value)})")
    ax.axvline(h, color="0.3", linewidth=0.8, linestyle="-.", gid="horizon")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_xlim(left=0, right=h + max(1, h * 0.02))
    counts = {s: sum(1 for t in trials if t.status == s) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    ax.set_title(f"{title or 'sweep'}: {len(trials)} trials ({summary or 'none'})")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    return fig


def compute_figure(usage: ComputeUsage, *, title: str | None = None) -> Figure:
    """Epochs used by the sweep (stacked by trial status) against FIFO's.

    Artists (by ``gid``): ``fifo`` (the FIFO bar), ``used:<status>`` (one bar segment per status
    with epochs), ``saving`` (the axes title stating used, FIFO, saved fraction and speed-up).
    """
    fig = _new_figure(7.0, 2.6)
    ax = fig.add_subplot()
    ax.barh([1], [usage.fifo_epochs], color="0.8", edgecolor="0.4",
            label=f"FIFO: {usage.n_trials} trials x {usage.max_epochs} epochs", gid="fifo")
    left = 0
    for status in ("completed", "pruned", "failed", "running"):
        n = int(usage.epochs_by_status.get(status, 0))
        if n <= 0:
            continue
        ax.barh([0], [n], left=[left], color=COLORS[status], edgecolor="white",
                label=f"{status}: {n}", gid=f"used:{status}")
        left += n
    ax.set_yticks([0, 1], ["this sweep", "FIFO"])
    ax.set_xlabel("epochs trained")
    speed = "inf" if math.isinf(usage.speedup) else f"{usage.speedup:.2f}x"
    text = (f"used {usage.used} of {usage.fifo_epochs} epochs: saved "
            f"{usage.saved_fraction:.0%}, {speed} speed-up vs FIFO")
    ax.set_xlim(0, max(1, usage.fifo_epochs) * 1.02)
    ax.set_title(f"{title or 'compute'}: {text}", fontsize=10, gid="saving")
    fig.legend(loc="outside lower center", fontsize=8, ncol=5, frameon=False)
    return fig


def to_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
