"""Replay benchmarks of the curve scheduler (issue 4). Not part of the test suite.

Subcommands (all write JSON under ``benchmarks/results/`` and print a table):

``sweep``  the curve scheduler over a grid of policy variants (threshold, grace, compute
           exponent, ...) on every task of ``../shared/data/curves``, 8 workers, 200 configs,
           3 seeds; reports the trade-off curve and a leave-one-task-out (LOTO) choice of the
           threshold: for each task, the threshold is chosen on the *other* tasks (the largest
           median speed-up among thresholds whose mean relative regret <= 1% and best-killed
           rate <= 20% there) and evaluated on the held-out task.
``scale``  driver cost at scale: 10,000 trials x 100 epochs (real 100-epoch DeepOBS curves,
           resampled with a little noise), 1,000 workers (so 1,000 live trials): per-result
           decision time p50/p99 and the driver's memory (peak RSS growth, and the stopper's
           own arrays). Decision times are the driver thread's CPU time (the machine is shared).

Examples::

    .venv/bin/python benchmarks/replay.py sweep --model pfn --thresholds 0.01,0.02,0.05,0.1
    .venv/bin/python benchmarks/replay.py scale --model pfn

The peers are measured with the CLI: ``sweepcast replay --schedulers asha,median,... --json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CURVES = ROOT / ".." / "shared" / "data" / "curves"
OUT = ROOT / "benchmarks" / "results"


def _model(name: str, weights: str | None = None):
    import torch

    torch.set_num_threads(1)
    from search.stopper import resolve_model

    return resolve_model(name, **({"weights": weights} if weights else {}))


def _variants(args) -> list[dict]:
    if args.variants:
        base = {"grace_epochs": 3, "compute_exponent": 0.0, "before_completion": "same_step",
                "max_forecast_age": 1, "decision_interval": 1, "rank_gate": "none"}
        return [base | v for v in json.loads(args.variants)]
    grid = {
        "threshold": [float(x) for x in args.thresholds.split(",")],
        "grace_epochs": [int(x) for x in args.grace.split(",")],
        "compute_exponent": [float(x) for x in args.exponents.split(",")],
        "before_completion": args.before.split(","),
        "max_forecast_age": [int(x) for x in args.ages.split(",")],
        "decision_interval": [int(x) for x in args.intervals.split(",")],
        "rank_gate": args.gates.split(","),
    }
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def _label(v: dict) -> str:
    gate = v["rank_gate"]
    if gate == "median_or":
        gate += f"/veto={v.get('veto_threshold', 0.5)}"
    extra = ""
    if v.get("incumbent", "completed") != "completed":
        extra += f",inc={v['incumbent']}" + (
            f"/{v.get('top_fraction', 0.1)}" if v["incumbent"] == "top_fraction" else "")
    if v.get("pause_ahead"):
        extra += ",pause"
    return ("curve[thr={threshold},g={grace_epochs},ce={compute_exponent},"
            "pre={before_completion},age={max_forecast_age},di={decision_interval},"
            "gate={gate}{extra}]").format(**v, gate=gate, extra=extra)


def cmd_sweep(args) -> None:
    from search.policy import PolicyConfig
    from search.replay.data import load_curves
    from search.replay.run import curve_scheduler, format_table, run_all, summarize

    tasks = load_curves(args.curves, None if not args.tasks else set(args.tasks.split(",")))
    model = _model(args.model, args.weights)
    results: list[dict] = []
    for v in _variants(args):
        cfg = PolicyConfig(**v)
        lab = _label(v)
        t0 = time.perf_counter()
        res = run_all(tasks, [(lab, lambda cfg=cfg, lab=lab: curve_scheduler(model, cfg, lab))],
                      model=model, config=cfg, workers=args.workers, seeds=args.seeds,
                      max_configs=args.max_configs,
                      progress=(lambda m: print("  ", m, flush=True)) if args.verbose else None)
        for r in res:
            r["variant"] = v
        results.extend(res)
        _write(args, results)
        s = summarize(res)[0]
        print(f"{lab}: median speedup {s['speedup_median']:.2f}x, regret_rel "
              f"{s['regret_rel_mean']:.4f}, best killed {s['best_killed_frac']:.2f}, "
              f"p99 {s['decision_us_p99_max']:.0f} us ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    out = _write(args, results)
    loto = leave_one_task_out(results)
    print(format_table(results) if args.verbose else "")
    print(json.dumps(loto["summary"], indent=1))
    print(f"wrote {out}")


def _write(args, results: list[dict]) -> Path:
    """Write everything measured so far (a long sweep keeps its finished variants)."""
    from search.replay.run import summarize

    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / args.out
    out.write_text(json.dumps({
        "results": results, "summary": summarize(results),
        "loto": leave_one_task_out(results),
        "settings": {"model": args.model, "weights": args.weights, "workers": args.workers,
                     "seeds": args.seeds, "max_configs": args.max_configs,
                     "clock": "driver thread CPU time"}}, indent=1))
    return out


def _agg(rows: list[dict]) -> dict:
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    sp = [float(np.mean([r["speedup"] for r in rs])) for rs in by_task.values()]
    return {"speedup_median": float(np.median(sp)),
            "regret_rel_mean": float(np.mean([r["regret_rel"] for r in rows])),
            "best_killed_frac": float(np.mean([r["best_killed"] for r in rows]))}


def leave_one_task_out(results: list[dict], max_regret: float = 0.01,
                       max_killed: float = 0.20) -> dict:
    """For each task, pick the variant on the other tasks, evaluate it on that task."""
    tasks = sorted({r["task"] for r in results})
    variants = sorted({r["scheduler"] for r in results})
    picks = {}
    held: list[dict] = []
    for t in tasks:
        best, best_sp = None, -1.0
        fallback, fb_reg = None, np.inf
        for v in variants:
            rows = [r for r in results if r["scheduler"] == v and r["task"] != t]
            a = _agg(rows)
            if (a["regret_rel_mean"] <= max_regret and a["best_killed_frac"] <= max_killed
                    and a["speedup_median"] > best_sp):
                best, best_sp = v, a["speedup_median"]
            if a["regret_rel_mean"] < fb_reg:
                fallback, fb_reg = v, a["regret_rel_mean"]
        pick = best or fallback
        picks[t] = pick
        held.extend(r for r in results if r["scheduler"] == pick and r["task"] == t)
    return {"picks": picks, "summary": _agg(held) | {"runs": len(held)},
            "per_task": {t: _agg([r for r in held if r["task"] == t]) for t in tasks}}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cmd_scale(args) -> None:
    from search.policy import PolicyConfig
    from search.replay.data import load_curves
    from search.replay.run import curve_scheduler
    from search.replay.sim import Simulation, Task

    src = [t for t in load_curves(CURVES / "deepobs") if t.horizon == 100]
    rng = np.random.default_rng(0)
    rows, mode = [], src[0].mode
    for t in src:
        if t.mode != mode:
            continue
        rows.append(t.values)
    base = np.vstack(rows)
    base = base[np.isfinite(base[:, -1])]
    idx = rng.integers(0, base.shape[0], args.trials)
    vals = base[idx] + rng.normal(0, 0.002, (args.trials, 100))
    task = Task("synthetic", f"deepobs-resampled-{args.trials}", "acc", mode,
                tuple(f"c{i}" for i in range(args.trials)), vals)
    model = _model(args.model, args.weights)
    cfg = PolicyConfig(threshold=args.threshold, max_forecast_age=args.age,
                       grace_epochs=args.grace, rank_gate=args.gate,
                       batch_wait=args.batch_wait, veto_threshold=args.veto,
                       pause_ahead=args.pause, incumbent=args.incumbent,
                       top_fraction=args.top_fraction)
    sched = curve_scheduler(model, cfg)
    rss0 = _rss_mb()
    sim = Simulation(task, sched, args.workers, clock=time.thread_time_ns)
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0
    r = sim.outcome()
    st = sched.stopper
    rss1 = _rss_mb()
    out = {
        "trials": args.trials, "epochs_per_trial": 100, "workers": args.workers,
        "model": args.model, "policy": cfg.to_dict(),
        "results_delivered": len(sim.decision_ns),
        "decision_us_p50": r.decision_us_p50, "decision_us_p99": r.decision_us_p99,
        "decision_us_max": float(np.max(sim.decision_ns) / 1e3),
        "forecast_batches": st.n_batches, "curves_forecast": st.n_forecasts,
        "mean_batch": st.n_forecasts / max(st.n_batches, 1),
        "stopper_array_mb": (st.store.nbytes + st._grid.nbytes + 4 * st._best.nbytes) / 2**20,
        "peak_rss_growth_mb": rss1 - rss0, "peak_rss_mb": rss1,
        "task_values_mb": vals.nbytes / 2**20,
        "speedup": r.speedup, "wall_s": wall,
    }
    print(json.dumps(out, indent=1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / args.out).write_text(json.dumps(out, indent=1))


def cmd_report(args) -> None:
    """Markdown tables from result JSONs: summary per scheduler, per-task, LOTO."""
    rows: list[dict] = []
    for f in args.files:
        rows.extend(json.loads(Path(f).read_text())["results"])
    from search.replay.run import summarize

    print("| scheduler | tasks x seeds | median speed-up | mean rel. regret | best killed | "
          "decision p50 / p99 (us CPU) | replay s/run |")
    print("|---|---|---|---|---|---|---|")
    for sm in summarize(rows):
        rs = [r for r in rows if r["scheduler"] == sm["scheduler"]]
        rep = np.median([r.get("replay_s", np.nan) for r in rs])
        print(f"| {sm['scheduler']} | {sm['runs']} | {sm['speedup_median']:.1f}x | "
              f"{100 * sm['regret_rel_mean']:.2f}% | {100 * sm['best_killed_frac']:.0f}% | "
              f"{np.median([r['decision_us_p50'] for r in rs]):.0f} / "
              f"{np.median([r['decision_us_p99'] for r in rs]):.0f} | {rep:.1f} |")
    if args.per_task:
        names = [s for s in args.per_task.split(";")]
        tasks = sorted({r["task"] for r in rows})
        print()
        print("| task | " + " | ".join(n.replace(",pre=same_step", "").replace(",di=1", "")
                                        for n in names) + " |")
        print("|---|" + "---|" * len(names))
        for t in tasks:
            cells = []
            for n in names:
                rs = [r for r in rows if r["task"] == t and r["scheduler"] == n]
                if not rs:
                    cells.append("-")
                    continue
                cells.append(f"{np.mean([r['speedup'] for r in rs]):.1f}x / "
                             f"{100 * np.mean([r['regret_rel'] for r in rs]):.1f}% / "
                             f"{sum(r['best_killed'] for r in rs)}/{len(rs)}")
            short = t.replace("FixedTextRNNClassification_imdb_", "imdb_")
            print(f"| {short} | " + " | ".join(cells) + " |")
    if args.loto:
        cur = [r for r in rows if r["scheduler"].startswith("curve")]
        lo = leave_one_task_out(cur)
        print()
        print(json.dumps(lo["summary"]), json.dumps(lo["picks"], indent=1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--curves", default=str(CURVES))
    s.add_argument("--tasks", default="")
    s.add_argument("--model", default="pfn")
    s.add_argument("--thresholds", default="0.01,0.02,0.05,0.1,0.2")
    s.add_argument("--grace", default="3")
    s.add_argument("--exponents", default="0")
    s.add_argument("--before", default="same_step")
    s.add_argument("--ages", default="1")
    s.add_argument("--intervals", default="1")
    s.add_argument("--gates", default="none")
    s.add_argument("--variants", default="", help="JSON list of PolicyConfig dicts (not a grid)")
    s.add_argument("--weights", default=None, help="PFN weights (.pt) instead of the shipped")
    s.add_argument("--workers", type=int, default=8)
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--max-configs", type=int, default=200)
    s.add_argument("--out", default="replay_curve_sweep.json")
    s.add_argument("--verbose", action="store_true")
    s.set_defaults(fn=cmd_sweep)
    c = sub.add_parser("scale")
    c.add_argument("--model", default="pfn")
    c.add_argument("--trials", type=int, default=10_000)
    c.add_argument("--workers", type=int, default=1000)
    c.add_argument("--threshold", type=float, default=0.05)
    c.add_argument("--age", type=int, default=1)
    c.add_argument("--grace", type=int, default=3)
    c.add_argument("--gate", default="none")
    c.add_argument("--batch-wait", type=int, default=1)
    c.add_argument("--veto", type=float, default=0.5, help="veto_threshold (rank gate median_or)")
    c.add_argument("--pause", action="store_true", help="pause_ahead")
    c.add_argument("--incumbent", default="completed", help="completed | best_seen | top_fraction")
    c.add_argument("--top-fraction", type=float, default=0.1)
    c.add_argument("--weights", default=None)
    c.add_argument("--out", default="replay_scale.json")
    c.set_defaults(fn=cmd_scale)
    r = sub.add_parser("report")
    r.add_argument("files", nargs="+")
    r.add_argument("--per-task", default="", help="scheduler names separated by ;")
    r.add_argument("--loto", action="store_true")
    r.set_defaults(fn=cmd_report)
    a = p.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
