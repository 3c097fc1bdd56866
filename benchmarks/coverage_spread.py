"""How far the 90% coverage of ``benchmarks/forecast.py`` could move on other tasks.

    python benchmarks/coverage_spread.py RUN.json [BASE.json] [--model pfn] [--draws 4000] [--seed 0]

The issue's coverage goal (85-95% of true final values, overall) is checked on tasks of the
same benchmarks that we do not have. A run's overall coverage pools its cells (weighted by
their ``n``); this resamples the **tasks** with replacement (``--draws`` times, seeded) and
prints the 5th-95th percentile of the pooled coverage, i.e. the spread one would expect from a
different draw of tasks, not from more configs of the same tasks. With ``BASE.json`` it also
prints the paired difference RUN - BASE over the same resampled tasks (the two runs must hold
the same tasks), which says whether two networks differ beyond that spread. Coverage per
benchmark, and per benchmark and cutoff, is printed too. Standard library and numpy only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def load_cells(path: Path, model: str) -> list[dict]:
    """``model``'s cells of a ``benchmarks/forecast.py`` JSON that have a coverage and an ``n``."""
    cells = [c for c in json.loads(Path(path).read_text())["cells"] if c["model"] == model]
    if not cells:
        raise SystemExit(f"{path}: no cells of model {model!r}")
    return [c for c in cells if c.get("coverage90") is not None and c.get("n")]


def _sums(cells: list[dict], key: Callable[[dict], Any]) -> dict[Any, tuple[float, int]]:
    """key -> (covered count, n) over the cells with that key."""
    out: dict[Any, tuple[float, int]] = {}
    for c in cells:
        k = key(c)
        h, n = out.get(k, (0.0, 0))
        out[k] = (h + float(c["coverage90"]) * int(c["n"]), n + int(c["n"]))
    return out


def task_hits(cells: list[dict]) -> dict[tuple[str, str], tuple[float, int]]:
    """(benchmark, task) -> (covered count, n) over the task's cells."""
    return _sums(cells, lambda c: (c["benchmark"], c["task"]))


def by_cutoff(cells: list[dict]) -> dict[str, dict[float, float]]:
    """benchmark -> cutoff -> pooled coverage over that benchmark's cells at that cutoff."""
    out: dict[str, dict[float, float]] = {}
    for (b, cut), (h, n) in sorted(_sums(cells, lambda c: (c["benchmark"],
                                                          float(c["cutoff"]))).items()):
        out.setdefault(b, {})[cut] = h / n
    return out


def pooled(hits: dict, tasks: list) -> float:
    return sum(hits[t][0] for t in tasks) / sum(hits[t][1] for t in tasks)


def spread(run: dict, base: dict | None, draws: int, seed: int) -> dict:
    """Pooled coverage, its 5-95% task-bootstrap interval, and (with ``base``) the paired
    difference's mean, interval and the share of draws where it is <= 0."""
    tasks = sorted(run)
    if base is not None and sorted(base) != tasks:
        missing = sorted(set(tasks) ^ set(base))
        raise SystemExit(f"the two runs do not hold the same tasks: {missing[:5]}")
    rng = np.random.default_rng(seed)
    cov, diff = [], []
    for _ in range(draws):
        pick = [tasks[i] for i in rng.integers(0, len(tasks), len(tasks))]
        c = pooled(run, pick)
        cov.append(c)
        if base is not None:
            diff.append(c - pooled(base, pick))
    out = {"coverage90": pooled(run, tasks), "tasks": len(tasks),
           "interval": [float(v) for v in np.percentile(cov, [5, 95])]}
    by_bench: dict[str, list] = {}
    for t in tasks:
        by_bench.setdefault(t[0], []).append(t)
    out["by_benchmark"] = {b: pooled(run, ts) for b, ts in sorted(by_bench.items())}
    if base is not None:
        d = np.asarray(diff)
        out["minus_base"] = {"mean": pooled(run, tasks) - pooled(base, tasks),
                             "interval": [float(v) for v in np.percentile(d, [5, 95])],
                             "share_le_0": float(np.mean(d <= 0))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("base", type=Path, nargs="?")
    ap.add_argument("--model", default="pfn")
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.draws < 1:
        ap.error(f"--draws must be >= 1, got {a.draws}")
    cells = load_cells(a.run, a.model)
    run = task_hits(cells)
    base = task_hits(load_cells(a.base, a.model)) if a.base else None
    s = spread(run, base, a.draws, a.seed)
    lo, hi = s["interval"]
    print(f"{a.run.name} ({a.model}): coverage90 {s['coverage90']:.4f} over {s['tasks']} tasks; "
          f"5-95% over resampled tasks [{lo:.3f}, {hi:.3f}]")
    print("  by benchmark: " + ", ".join(f"{b} {v:.3f}" for b, v in s["by_benchmark"].items()))
    for b, cs in by_cutoff(cells).items():
        print(f"  {b} by cutoff: " + ", ".join(f"{k:g} {v:.3f}" for k, v in cs.items()))
    if base is not None:
        m = s["minus_base"]
        print(f"  minus {a.base.name}: {m['mean']:+.4f}, 5-95% [{m['interval'][0]:+.4f}, "
              f"{m['interval'][1]:+.4f}], share of draws <= 0: {m['share_le_0']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
