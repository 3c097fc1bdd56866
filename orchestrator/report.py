"""A sweep's summary as a terminal table or a single self-contained HTML page.

Framework-free: input is a :class:`~orchestrator.sweepdata.SweepRecord` (built from MLflow by
``orchestrator.tracking.reader``, or by hand). The HTML page embeds its plots as base64 PNG
``<img>`` tags, so the one file can be mailed or archived; matplotlib is imported only when the
HTML is rendered.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence

from orchestrator.sweepdata import SweepRecord, TrialRecord, better

__all__ = [
    "format_text",
    "markdown_table_to_html",
    "ordered_trials",
    "render_html",
    "sweep_images",
    "trial_rows",
]

_COLUMNS = ("trial", "status", "epochs", "last", "best", "stop reason", "p_beat", "score")


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}"


def _best_value(t: TrialRecord, mode: str) -> float | None:
    best: float | None = None
    for v in t.values:
        if math.isfinite(v) and (best is None or better(v, best, mode)):
            best = v
    return best


_STATUS_ORDER = {"completed": 0, "running": 1, "pruned": 2, "failed": 3}


def _sort_key(t: TrialRecord, mode: str) -> tuple[int, int, float]:
    """Completed first, then running, pruned, failed; best last value first within each."""
    v = t.last_value
    group = _STATUS_ORDER.get(t.status, 4)
    if v is None or not math.isfinite(v):
        return (group, 1, 0.0)
    return (group, 0, -v if mode == "max" else v)


def trial_rows(sweep: SweepRecord) -> list[dict[str, str]]:
    """One row per trial, as strings: completed trials first, then running, pruned, failed;
    best last value first within a status (non-finite and empty last).

    Keys: ``trial``, ``status``, ``epochs``, ``last``, ``best``, ``stop reason``, ``p_beat``
    (of the stop decision), ``score``; the incumbent's ``trial`` is suffixed with ``*``.
    """
    inc = sweep.incumbent()
    rows = []
    for t in ordered_trials(sweep):
        stop = t.stop_decision
        rows.append({
            "trial": t.trial_id + (" *" if inc is not None and t.trial_id == inc.trial_id else ""),
            "status": t.status,
            "epochs": str(t.epochs),
            "last": _fmt(t.last_value),
            "best": _fmt(_best_value(t, sweep.mode)),
            "stop reason": (t.reason or "") if t.status in ("pruned", "failed") else "",
            "p_beat": _fmt(stop.p_beat, 3) if stop is not None and stop.p_beat is not None else "",
            "score": _fmt(t.score) if t.score is not None else "",
        })
    return rows


def _text_table(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> str:
    widths = [max([len(c), *(len(r[c]) for r in rows)]) for c in columns]
    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(columns), line(["-" * w for w in widths])]
    out += [line([r[c] for c in columns]) for r in rows]
    return "\n".join(out)


def _headline(sweep: SweepRecord) -> list[tuple[str, str]]:
    counts = sweep.counts()
    usage = sweep.compute()
    inc = sweep.incumbent()
    speed = "inf" if math.isinf(usage.speedup) else f"{usage.speedup:.2f}x"
    items = [
        ("sweep", sweep.name),
        ("metric", f"{sweep.metric} ({sweep.mode})"),
        ("scheduler", sweep.scheduler or "unknown"),
        ("trials", f"{len(sweep.trials)}: "
                   + (", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none")),
        ("best", f"{inc.trial_id} = {_fmt(inc.last_value)}" if inc else "no completed trial"),
        ("compute", (f"{usage.used} of {usage.fifo_epochs} epochs (FIFO), saved "
                    f"{usage.saved_fraction:.0%}, {speed} speed-up")),
    ]
    if sweep.experiment_name or sweep.experiment_id:
        items.append(("experiment", f"{sweep.experiment_name or ''} "
                                    f"(id {sweep.experiment_id or '?'})".strip()))
    if sweep.parent_run_id:
        items.append(("parent run", sweep.parent_run_id + (f" [{sweep.status}]" if sweep.status
                                                           else "")))
    return items


def format_text(sweep: SweepRecord) -> str:
    """The summary for a terminal: headline, the trial table, and the ranking table if any."""
    head = _headline(sweep)
    kw = max(len(k) for k, _ in head)
    parts = ["\n".join(f"{k.ljust(kw)}  {v}" for k, v in head)]
    rows = trial_rows(sweep)
    cols = [c for c in _COLUMNS if c in ("trial", "status", "epochs", "last")
            or any(r[c] for r in rows)]
    parts.append(_text_table(rows, cols) if rows else "(no trials recorded)")
    if sweep.ranking_markdown:
        parts.append("ranking (scoring):\n" + sweep.ranking_markdown.strip())
    return "\n\n".join(parts) + "\n"


def markdown_table_to_html(md: str) -> str:
    """Convert a GitHub-style pipe table (header, ``---`` separator, rows) to an HTML table.

    Text outside the table (lines not starting with ``|``) becomes ``<p>`` paragraphs; every cell
    is HTML-escaped.
    """
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if not table:
            return
        header, *body = table
        body = [r for r in body if not all(set(c.strip()) <= set(":- ") and c.strip()
                                           for c in r)]
        out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header)
                   + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                             for r in body)
                   + "</tbody></table>")
        table.clear()

    for raw in md.splitlines():
        line = raw.strip()
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
        else:
            flush()
            if line:
                out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def ordered_trials(sweep: SweepRecord) -> list[TrialRecord]:
    """The trials in report order: completed, running, pruned, failed; best first in each."""
    return sorted(sweep.trials, key=lambda t: _sort_key(t, sweep.mode))


def sweep_images(sweep: SweepRecord, *, max_trial_plots: int = 50,
                 dpi: int = 100) -> dict[str, bytes]:
    """Render the sweep's PNGs: ``sweep_curves.png``, ``compute.png`` and
    ``trial_<id>.png`` for up to ``max_trial_plots`` trials (in :func:`ordered_trials` order)."""
    from orchestrator import plots

    inc = sweep.incumbent()
    images = {
        "sweep_curves.png": plots.to_png(plots.sweep_figure(
            sweep.trials, metric=sweep.metric, mode=sweep.mode, horizon=sweep.max_epochs,
            title=sweep.name), dpi=dpi),
        "compute.png": plots.to_png(plots.compute_figure(sweep.compute()), dpi=dpi),
    }
    for t in ordered_trials(sweep)[:max_trial_plots]:
        images[f"trial_{t.trial_id}.png"] = plots.to_png(plots.trial_figure(
            t, metric=sweep.metric, mode=sweep.mode, horizon=sweep.max_epochs,
            incumbent_value=inc.last_value if inc is not None else None), dpi=dpi)
    return images


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3} dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}
dt{font-weight:600} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.pruned{color:#777} .failed{color:#c00} .grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
"""


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" data-name="{html.escape(name)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption>'
            "</figure>")


def render_html(
    sweep: SweepRecord,
    *,
    images: Mapping[str, bytes] | None = None,
    max_trial_plots: int = 50,
) -> str:
    """One self-contained HTML page: headline, plots (base64 PNG), trial table, ranking.

    Args:
        sweep: the sweep.
        images: PNGs by name as made by :func:`sweep_images`; default: rendered here.
        max_trial_plots: per-trial plots to include when rendering here (best trials first).
    """
    if images is None:
        images = sweep_images(sweep, max_trial_plots=max_trial_plots)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        (f'<html lang="en"><head><meta charset="utf-8"><title>sweepcast: {esc(sweep.name)}'
        f"</title><style>{_CSS}</style></head><body>"),
        f"<h1>sweep {esc(sweep.name)}</h1>",
        "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _headline(sweep))
        + "</dl>",
    ]
    if "sweep_curves.png" in images:
        parts.append(_img("sweep_curves.png", images["sweep_curves.png"],
                          "all trials: pruned grey where stopped, incumbent highlighted"))
    if "compute.png" in images:
        parts.append(_img("compute.png", images["compute.png"], "epochs used vs FIFO"))
    rows = trial_rows(sweep)
    parts.append("<h2>trials</h2>")
    if rows:
        parts.append(
            '<table id="trials"><thead><tr>' + "".join(f"<th>{esc(c)}</th>" for c in _COLUMNS)
            + "</tr></thead><tbody>"
            + "".join(f'<tr class="{esc(r["status"])}">'
                      + "".join(f"<td>{esc(r[c])}</td>" for c in _COLUMNS) + "</tr>"
                      for r in rows)
            + "</tbody></table><p>* the incumbent (best completed trial)</p>")
    else:
        parts.append("<p>(no trials recorded)</p>")
    if sweep.ranking_markdown:
        parts.append('<h2>ranking (scoring)</h2><div id="ranking">'
                     + markdown_table_to_html(sweep.ranking_markdown) + "</div>")
    trial_imgs = [(n, b) for n, b in images.items() if n.startswith("trial_")]
    if trial_imgs:
        parts.append("<h2>trial curves and forecasts</h2><div class=\"grid\">")
        parts += [_img(n, b, n[len("trial_"):-len(".png")]) for n, b in trial_imgs]
        parts.append("</div>")
        if len(trial_imgs) < len(sweep.trials):
            parts.append(f"<p>{len(sweep.trials) - len(trial_imgs)} more trials not plotted.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
