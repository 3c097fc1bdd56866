"""benchmarks/coverage_spread.py: pooled coverage, its spread over resampled tasks, paired runs."""

from __future__ import annotations

import json

import pytest

from benchmarks.coverage_spread import by_cutoff, load_cells, main, spread, task_hits


def _run(path, covs: dict[tuple[str, str], list[tuple[float, int]]], model: str = "pfn"):
    cells = [{"benchmark": b, "task": t, "cutoff": 0.1 * (i + 1), "model": model,
              "coverage90": c, "n": n, "loglik": 0.0}
             for (b, t), cs in covs.items() for i, (c, n) in enumerate(cs)]
    cells.append({"benchmark": "b", "task": "t0", "cutoff": 0.1, "model": "parametric",
                  "coverage90": 0.0, "n": 1000, "loglik": 0.0})  # another model: ignored
    path.write_text(json.dumps({"cells": cells}))
    return path


def test_pools_cells_by_n_and_resampling_stays_within_the_tasks_range(tmp_path):
    f = _run(tmp_path / "a.json", {("b", "t0"): [(1.0, 10), (0.5, 30)],
                                   ("b", "t1"): [(0.9, 20)], ("c", "t2"): [(0.8, 40)]})
    hits = task_hits(load_cells(f, "pfn"))
    assert hits[("b", "t0")] == (25.0, 40)
    s = spread(hits, None, 500, 0)
    assert s["coverage90"] == pytest.approx((25 + 18 + 32) / 100)
    assert s["by_benchmark"] == pytest.approx({"b": 43 / 60, "c": 0.8})
    lo, hi = s["interval"]
    assert 0.625 <= lo < s["coverage90"] < hi <= 0.9  # within the extreme tasks' coverages
    assert spread(hits, None, 500, 0) == s  # seeded
    cuts = by_cutoff(load_cells(f, "pfn"))  # cells are numbered 0.1, 0.2, ... within each task
    assert cuts["b"] == pytest.approx({0.1: (10 + 18) / 30, 0.2: 0.5})
    assert cuts["c"] == pytest.approx({0.1: 0.8})


def test_paired_difference_is_zero_for_a_run_against_itself_and_signed_otherwise(tmp_path):
    covs = {("b", f"t{i}"): [(0.9 + 0.01 * i, 50)] for i in range(5)}
    a = task_hits(load_cells(_run(tmp_path / "a.json", covs), "pfn"))
    wider = task_hits(load_cells(_run(tmp_path / "w.json", {k: [(c + 0.02, n) for c, n in v]
                                                            for k, v in covs.items()}), "pfn"))
    same = spread(a, a, 200, 1)["minus_base"]
    assert same["mean"] == 0 and same["interval"] == [0, 0] and same["share_le_0"] == 1
    d = spread(wider, a, 200, 1)["minus_base"]
    assert d["mean"] == pytest.approx(0.02) and d["share_le_0"] == 0


def test_cli_names_a_missing_model_and_mismatched_tasks(tmp_path, capsys):
    a = _run(tmp_path / "a.json", {("b", "t0"): [(0.9, 10)]})
    b = _run(tmp_path / "b.json", {("b", "t1"): [(0.9, 10)]})
    with pytest.raises(SystemExit, match="no cells of model 'pfn-x'"):
        main([str(a), "--model", "pfn-x"])
    with pytest.raises(SystemExit, match="do not hold the same tasks"):
        main([str(a), str(b)])
    assert main([str(a), "--draws", "10"]) == 0
    assert "coverage90 0.9000 over 1 tasks" in capsys.readouterr().out
