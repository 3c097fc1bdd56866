"""benchmarks/schedules.py's replay summary: the pooled speed-up weighs runs by their compute."""

from __future__ import annotations

import pytest

from benchmarks.schedules import markdown, summarize_replays


def _run(task: str, sched: str, fifo: int, epochs: int, **kw) -> dict:
    return {"benchmark": "b", "task": task, "scheduler": sched, "seed": kw.get("seed", 0),
            "fifo_epochs": fifo, "epochs": epochs, "speedup": fifo / epochs,
            "regret_rel": 0.0, "best_killed": False, "late_bloomers": 1,
            "late_bloomers_killed": kw.get("killed", 0)}


def test_pooled_speedup_is_total_fifo_over_total_epochs_not_a_mean_of_ratios():
    runs = [_run("big", "curve", 1000, 100), _run("small", "curve", 100, 50),
            _run("small", "curve", 100, 25, seed=1, killed=1)]
    (row,) = summarize_replays(runs)
    assert row["speedup_pooled"] == pytest.approx(1200 / 175)
    assert row["speedup_by_task"] == {"big": pytest.approx(10.0), "small": pytest.approx(3.0)}
    assert row["speedup_median"] == pytest.approx(6.5)  # median of the two task means
    assert row["late_bloomers_killed"] == 1 and row["late_bloomers"] == 3


def test_markdown_has_a_per_task_column_per_scheduler():
    runs = [_run("t1", "asha[x=1]", 100, 20), _run("t1", "curve[y=2]", 100, 50),
            _run("t2", "curve[y=2]", 100, 40)]
    md = markdown({"late_bloomers": [], "replay_summary": summarize_replays(runs)})
    assert "| task | asha | curve |" in md
    assert "| t1 | 5.00x | 2.00x |" in md
    assert "| t2 | - | 2.50x |" in md
