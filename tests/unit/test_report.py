"""The sweep data model, the terminal summary and the self-contained HTML report."""

from __future__ import annotations

import base64
import math
import re

import pytest

from orchestrator.report import format_text, markdown_table_to_html, render_html, trial_rows
from orchestrator.sweepdata import (
    Decision,
    SweepRecord,
    TrialRecord,
    compute_usage,
    incumbent,
)


def _sweep(**kw) -> SweepRecord:
    trials = [
        TrialRecord("c1", [1, 2, 3, 4], [0.3, 0.5, 0.6, 0.7], "completed", score=0.4),
        TrialRecord("c2", [1, 2, 3, 4], [0.3, 0.6, 0.95, 0.9], "completed", score=0.8),
        TrialRecord("p1", [1, 2], [0.1, 0.2], "pruned",
                    decisions=[Decision(2, "stop", "p_beat_low", 0.012, 0.2, 0.3, 0.4)]),
        TrialRecord("f1", [1], [math.nan], "failed"),
    ]
    base = {"name": "demo<x>", "metric": "val_accuracy", "mode": "max", "max_epochs": 4,
                "trials": trials, "scheduler": "curve", "parent_run_id": "abc123",
                "experiment_name": "exp", "experiment_id": "7"}
    base.update(kw)
    return SweepRecord(**base)


def test_trial_record_validates_and_derives() -> None:
    with pytest.raises(ValueError, match="steps and values differ in length"):
        TrialRecord("x", [1, 2], [0.1], "completed")
    with pytest.raises(ValueError, match="status must be one of .* got 'done'"):
        TrialRecord("x", [1], [0.1], "done")
    t = _sweep().trials[2]
    assert t.epochs == 2 and t.last_value == 0.2
    assert t.stop_decision is not None and t.reason == "p_beat_low"
    assert TrialRecord("y", [], [], "pruned", stop_reason="asha").reason == "asha"


def test_incumbent_and_compute_usage() -> None:
    s = _sweep()
    assert s.incumbent().trial_id == "c2"  # by last value, completed only
    assert incumbent(s.trials, "min").trial_id == "c1"
    assert incumbent([TrialRecord("p", [1], [9.0], "pruned")], "max") is None
    u = s.compute()
    assert (u.used, u.fifo_epochs, u.saved) == (11, 16, 5)
    assert u.epochs_by_status["pruned"] == 2
    assert u.speedup == pytest.approx(16 / 11)
    assert u.saved_fraction == pytest.approx(5 / 16)
    with pytest.raises(ValueError, match="max_epochs must be a positive integer, got 0"):
        compute_usage(s.trials, 0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'best'"):
        _sweep(mode="best")


def test_trial_rows_order_and_content() -> None:
    rows = trial_rows(_sweep())
    assert [r["trial"] for r in rows] == ["c2 *", "c1", "p1", "f1"]
    p1 = rows[2]
    assert p1["status"] == "pruned" and p1["stop reason"] == "p_beat_low"
    assert p1["p_beat"] == "0.012" and p1["epochs"] == "2"
    assert rows[0]["best"] == "0.95" and rows[0]["last"] == "0.9" and rows[0]["score"] == "0.8"
    assert rows[3]["last"] == "nan"


def test_format_text_has_headline_table_and_ranking() -> None:
    md = "| rank | trial | score |\n|---|---|---|\n| 1 | c2 | 0.8 |\n"
    text = format_text(_sweep(ranking_markdown=md))
    assert "val_accuracy (max)" in text
    assert "4: 2 completed, 1 pruned, 1 failed" in text
    assert "best        c2 = 0.9" in text
    assert "11 of 16 epochs (FIFO), saved 31%, 1.45x speed-up" in text
    assert re.search(r"^p1\s+pruned\s+2\s+0\.2\s+0\.2\s+p_beat_low\s+0\.012", text, re.MULTILINE)
    assert "ranking (scoring):\n| rank | trial | score |" in text
    assert "abc123" in text


def test_format_text_empty_sweep() -> None:
    text = format_text(_sweep(trials=[]))
    assert "(no trials recorded)" in text and "no completed trial" in text


def test_markdown_table_to_html_escapes_and_drops_separator() -> None:
    out = markdown_table_to_html("Ranking by score\n| a | b<c |\n|:--|--:|\n| 1 | <x> |\n")
    assert out.startswith("<p>Ranking by score</p>")
    assert "<th>b&lt;c</th>" in out and "<td>&lt;x&gt;</td>" in out
    assert ":--" not in out and out.count("<tr>") == 2


def test_render_html_is_self_contained_with_decodable_pngs() -> None:
    md = "| rank | trial |\n|---|---|\n| 1 | c2 |\n"
    page = render_html(_sweep(ranking_markdown=md), max_trial_plots=2)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>sweepcast: demo&lt;x&gt;</title>" in page  # escaped
    # nothing fetched from elsewhere: no http(s) src/href
    assert not re.search(r'(src|href)="(https?:)?//', page)
    imgs = re.findall(r'data-name="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    names = [n for n, _ in imgs]
    assert names[:2] == ["sweep_curves.png", "compute.png"]
    assert names[2:] == ["trial_c2.png", "trial_c1.png"]  # best trials first, capped at 2
    for _, data in imgs:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG") and len(png) > 5_000
    assert "2 more trials not plotted" in page
    assert '<div id="ranking"><table>' in page
    assert '<tr class="pruned"><td>p1</td>' in page


def test_render_html_uses_given_images() -> None:
    page = render_html(_sweep(), images={"compute.png": b"\x89PNGfake"})
    assert page.count("<img") == 1
    assert base64.b64encode(b"\x89PNGfake").decode() in page
