"""Driver-side cost of scoring: one decision point and one full rescore, vs sweep size.

A :class:`~orchestrator.scoring_wiring.SweepScorer` is filled with N trials of 20 epochs each
(90% ended, 10% running; two metrics per result; fake clock), then timed:

* ``decision_ms``: one new result of a running trial plus ``score_trial`` (what the Tune
  callback / scheduler wrapper does at every result), mean over 200 results;
* ``full_ms``: ``score()`` of the whole sweep with the ranking (what ``finalize`` does), mean
  over a few calls.

Times are the process's CPU time (``time.process_time``) so that other load on a shared
machine inflates them less; ``--wall`` uses wall time.

    python benchmarks/scoring_cost.py --sizes 10,100,1000 --json scoring_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.scoring_wiring import SweepScorer


def build(n: int, seed: int = 0) -> tuple[SweepScorer, list[float]]:
    t = [0.0]
    sc = SweepScorer(metric="acc", mode="max", max_epochs=1000, n_trials=n,
                     clock=lambda: t[0])
    rng = np.random.default_rng(seed)
    for i in range(n):
        tid = f"t{i}"
        sc.on_trial_start(tid, {"lr": float(rng.random()), "width": 64, "opt": "adam"})
        for e in range(1, 21):
            t[0] += 1.0
            sc.on_result(tid, {"epoch": e, "acc": float(rng.random()),
                               "loss": float(rng.random())})
        if i % 10:
            sc.on_trial_end(tid, "pruned" if i % 3 else "finished")
    return sc, t


def measure(n: int, wall: bool) -> dict:
    clock = time.perf_counter if wall else time.process_time
    sc, t = build(n)
    running = [f"t{i}" for i in range(0, n, 10)]
    sc.score()
    reps = 200
    t0 = clock()
    for k in range(reps):
        tid = running[k % len(running)]
        t[0] += 1.0
        sc.on_result(tid, {"epoch": 21 + k, "acc": 0.5, "loss": 0.5})
        sc.score_trial(tid)
    decision = (clock() - t0) / reps
    full_reps = 3 if n >= 1000 else 10
    t0 = clock()
    for _ in range(full_reps):
        sc.score()
    full = (clock() - t0) / full_reps
    return {"trials": n, "running": len(running), "decision_ms": decision * 1e3,
            "full_ms": full * 1e3, "full_us_per_trial": full / n * 1e6}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--wall", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    rows = [measure(int(n), a.wall) for n in a.sizes.split(",")]
    print(f"{'trials':>7} {'running':>8} {'decision ms':>12} {'full ms':>9} {'us/trial':>9}")
    for r in rows:
        print(f"{r['trials']:>7} {r['running']:>8} {r['decision_ms']:>12.2f} "
              f"{r['full_ms']:>9.1f} {r['full_us_per_trial']:>9.0f}")
    if a.json:
        a.json.write_text(json.dumps({"clock": "wall" if a.wall else "cpu", "rows": rows},
                                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
