"""Schedule-aware forecasting benchmark (issue 8): forecasts and pruning with and without the schedule.

    python benchmarks/schedules.py --curves ../shared/data/curves/taskset \
        --curves benchmarks/data/schedule_curves --max-configs 200 --seeds 3 --workers 8 \
        --json bench_schedules.json

For every task of the given folders (format of ``../shared/data/curves`` with ``configs.json``),
each config's schedule is recovered from its config: TaskSet's ``adam8p`` decays through
:data:`search.schedules.TASKSET_TEMPLATE`, the built-in MLP's ``lr_schedule`` through
``orchestrator.config_schedule.ScheduleConfig().resolve``.

1. **Late bloomers** per task: configs in the top 10% by final value that are outside the top 50%
   at 40% of their training (the issue's definition; ties broken by the metric's order).
2. **Forecasts** (``--skip-forecast`` to leave out): the final value from a prefix cut at 10, 20,
   40 and 80% of the epochs, over up to ``--max-configs`` configs per task (seeded sample, the
   same for every model), for ``pfn`` (the schedule-free model), ``pfn-schedule`` (the
   schedule-aware model given each config's schedule) and ``pfn-schedule-blind`` (the same
   network told every schedule is constant: the schedule input ablated). Scores: mean
   log-likelihood of the true final value in normalised units, MAE of the median, coverage of the
   central 90% interval.
3. **Replays** (``--skip-replay`` to leave out): the sweep replayed with ``--workers`` workers and
   ``--seeds`` seeds through Ray's ASHA and median stopping (real objects, defaults), the curve
   scheduler with the schedule-free model (``curve``) and with the schedule-aware model told each
   trial's schedule (``curve-schedule``): speed-up vs FIFO, relative regret, best config killed,
   and **late bloomers killed** (started and stopped before the end).

Writes ``{"late_bloomers": [...], "cells": [...], "replays": [...], "summary": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from search.replay.data import load_curves
from search.replay.sim import (
    COMPLETED,
    PAUSED,
    STOPPED,
    CurveReplayScheduler,
    Simulation,
    Task,
    shuffled,
)
from search.schedules import schedule_for_config

CUTOFFS = (0.1, 0.2, 0.4, 0.8)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def config_schedule(cfg: dict, horizon: int) -> np.ndarray | None:
    """The per-epoch learning rate (horizon,) of one recorded config, or None if it has none."""
    s = schedule_for_config(cfg, horizon=horizon)
    return None if s is None else s.lr(horizon)


def load(dirs: list[str]) -> list[tuple[Task, dict[str, np.ndarray]]]:
    """Tasks with, per config id, its learning rate at epochs 1..E."""
    out = []
    for d in dirs:
        p = Path(d)
        folders = [p] if (p / "curves.csv.gz").is_file() else sorted(
            q.parent for q in p.glob("*/curves.csv.gz"))
        for f in folders:
            configs = json.loads((f / "configs.json").read_text())
            for task in load_curves(f):
                cfgs = configs.get(task.task, {})
                lr = {}
                for cid in task.config_ids:
                    v = config_schedule(cfgs[cid], task.horizon) if cid in cfgs else None
                    if v is not None:
                        lr[cid] = v
                out.append((task, lr))
    return out


def ranks_better_first(values: np.ndarray, mode: str) -> np.ndarray:
    """Rank 0 = best; NaN counts as the worst."""
    v = np.where(np.isfinite(values), values if mode == "max" else -values, -np.inf)
    order = np.argsort(-v, kind="stable")
    r = np.empty(len(v), dtype=np.int64)
    r[order] = np.arange(len(v))
    return r


def late_bloomers(task: Task) -> np.ndarray:
    """Mask of late bloomers: top 10% by final value, outside the top 50% at 40% of training."""
    n, E = task.values.shape
    k40 = max(1, round(0.4 * E))
    final_rank = ranks_better_first(task.values[:, -1], task.mode)
    mid_rank = ranks_better_first(task.values[:, k40 - 1], task.mode)
    top10 = final_rank < max(1, math.ceil(0.1 * n))
    return top10 & (mid_rank >= math.ceil(0.5 * n))


# ---------------------------------------------------------------------------------------------
# replays
# ---------------------------------------------------------------------------------------------


def schedule_curve_scheduler(model, config, lr_by_cid: dict[str, np.ndarray], name: str):
    """Our stopper, told each trial's schedule (trial ids map to config ids at bind)."""
    from search.schedule_stopper import ScheduleStopper

    class _Sched(CurveReplayScheduler):
        def bind(self, sim):
            self.sim = sim
            lr = {}
            for tid, i in sim.index.items():
                cid = sim.task.config_ids[i]
                if cid in lr_by_cid:
                    lr[tid] = lr_by_cid[cid]
            self.stopper = ScheduleStopper(model, horizon=float(sim.task.horizon),
                                           mode=sim.task.mode, config=config, schedules=lr)

    return _Sched(lambda h, m: None, name=name)


def replay_one(task: Task, sched, seed: int, workers: int, max_configs: int | None) -> dict:
    sub = shuffled(task, seed, max_configs)
    sim = Simulation(sub, sched, workers)
    t0 = time.perf_counter()
    sim.run()
    d = sim.outcome(seed).to_dict()
    d["replay_s"] = round(time.perf_counter() - t0, 2)
    lb = late_bloomers(sub)
    killed = np.array([s == STOPPED or (s == PAUSED and e > 0)
                       for s, e in zip(sim.status, sim.epoch)])
    d["late_bloomers"] = int(lb.sum())
    d["late_bloomers_killed"] = int((lb & killed).sum())
    done = np.array([s == COMPLETED for s in sim.status])
    d["late_bloomers_completed"] = int((lb & done).sum())
    # a killed late bloomer that would have beaten every trial the run completed is a kill that
    # cost something (regret); the others ended below the run's best anyway
    sign = 1.0 if sub.mode == "max" else -1.0
    final = sign * sub.values[:, -1]
    best_done = final[done].max() if done.any() else -np.inf
    d["late_bloomers_killed_costly"] = int((lb & killed & (final > best_done)).sum())
    return d


def run_replays(data, models: dict, policy, schedulers: list[str], seeds: int, workers: int,
                max_configs: int | None, log=print) -> list[dict]:
    from search.replay.run import make_scheduler

    out = []
    for task, lr in data:
        for name in schedulers:
            for seed in range(seeds):
                if name == "curve-schedule":
                    sch = schedule_curve_scheduler(models["pfn-schedule"], policy, lr, name)
                elif name == "curve":
                    sch = make_scheduler("curve", models["pfn"], policy)
                else:
                    sch = make_scheduler(name, None, policy)
                d = replay_one(task, sch, seed, workers, max_configs)
                out.append(d)
                log(f"{task.task[:40]:<40} {name:<15} seed={seed} speedup={d['speedup']:.2f} "
                    f"regret_rel={d['regret_rel']:.3f} best_killed={d['best_killed']} "
                    f"late_bloomers_killed={d['late_bloomers_killed']}/{d['late_bloomers']}")
    return out


def summarize_replays(results: list[dict]) -> list[dict]:
    """Per (benchmark, scheduler): median over tasks of the mean speed-up, the pooled speed-up
    (FIFO epochs / epochs, summed over every run: the compute a user saves over the whole set),
    the mean speed-up per task, mean relative regret, share of runs that killed the best config,
    late bloomers killed / seen over all runs."""
    by: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in results:
        by.setdefault((r["benchmark"], r["scheduler"]), {}).setdefault(r["task"], []).append(r)
    rows = []
    for (bench, name), tasks in sorted(by.items()):
        allr = [r for rs in tasks.values() for r in rs]
        rows.append({
            "benchmark": bench, "scheduler": name, "tasks": len(tasks), "runs": len(allr),
            "speedup_median": float(np.median([np.mean([r["speedup"] for r in rs])
                                               for rs in tasks.values()])),
            "speedup_pooled": float(sum(r["fifo_epochs"] for r in allr)
                                    / sum(r["epochs"] for r in allr)),
            "speedup_by_task": {t: float(np.mean([r["speedup"] for r in rs]))
                                for t, rs in sorted(tasks.items())},
            "regret_rel_mean": float(np.mean([r["regret_rel"] for r in allr])),
            "best_killed_frac": float(np.mean([r["best_killed"] for r in allr])),
            "late_bloomers": int(sum(r["late_bloomers"] for r in allr)),
            "late_bloomers_killed": int(sum(r["late_bloomers_killed"] for r in allr)),
            "late_bloomers_killed_costly": int(sum(r.get("late_bloomers_killed_costly", 0)
                                                   for r in allr)),
        })
    return rows


def markdown(out: dict) -> str:
    """The tables of BENCHMARKS.md's schedule section, from this script's JSON."""
    lines = ["| task | configs | epochs | median final/peak lr | late bloomers |",
             "|---|---|---|---|---|"]
    for r in out["late_bloomers"]:
        dec = r["final_over_peak_lr_median"]
        lines.append(f"| {r['task']} | {r['configs']} | {r['epochs']} | "
                     f"{'-' if dec is None else f'{dec:.3g}'} | {r['late_bloomers']} |")
    if out.get("forecast_summary"):
        lines += ["", "| benchmark | cutoff | model | loglik | coverage90 | MAE/spread | tasks |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(out["forecast_summary"], key=lambda r: (r["benchmark"], r["cutoff"],
                                                                 r["model"])):
            lines.append(f"| {r['benchmark']} | {r['cutoff']:.0%} | {r['model']} | "
                         f"{r['loglik']:.3f} | {r['coverage90']:.3f} | {r['mae']:.3f} | "
                         f"{r['tasks']} |")
    if out.get("replay_summary"):
        head = ("| benchmark | scheduler | speed-up (median over tasks) | speed-up (pooled) "
                "| relative regret (mean) | best killed | late bloomers killed / seen "
                "| of them better than every completed trial |")
        lines += ["", head, "|---|---|---|---|---|---|---|---|"]
        for r in out["replay_summary"]:
            pooled = f"{r['speedup_pooled']:.2f}x" if "speedup_pooled" in r else "-"
            lines.append(f"| {r['benchmark']} | {r['scheduler']} | {r['speedup_median']:.2f}x | "
                         f"{pooled} | "
                         f"{r['regret_rel_mean']:.2%} | {r['best_killed_frac']:.0%} | "
                         f"{r['late_bloomers_killed']} / {r['late_bloomers']} | "
                         f"{r['late_bloomers_killed_costly']} |")
        by_task = [r for r in out["replay_summary"] if "speedup_by_task" in r]
        if by_task:
            names = [r["scheduler"].split("[")[0] for r in by_task]
            cols = list(dict.fromkeys(names))
            lines += ["", "| task | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            tasks = sorted({t for r in by_task for t in r["speedup_by_task"]})
            for t in tasks:
                cells = {n: r["speedup_by_task"][t] for n, r in zip(names, by_task)
                         if t in r["speedup_by_task"]}
                lines.append(f"| {t} | " + " | ".join(
                    f"{cells[n]:.2f}x" if n in cells else "-" for n in cols) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# forecasts
# ---------------------------------------------------------------------------------------------


def _density(fc, y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Predictive density at ``y`` from the forecast's CDF (central difference, width 2h)."""
    return (fc.cdf(y + h) - fc.cdf(y - h)) / (2.0 * h)


def forecast_cells(data, models: dict, max_configs: int | None, seed: int = 0,
                   log=print) -> list[dict]:
    """Score final-value forecasts per (task, cutoff, model); see the module docstring.

    Log-likelihoods are of the true final value in units of the task's spread (the standard
    deviation of its finite final values), so every model is scored on the same scale: a model
    that puts density d (per user unit) on the truth scores ``log(d * spread)``.
    """
    from search.schedule_stopper import ScheduledCurve

    cells = []
    for task, lr in data:
        sub = shuffled(task, seed, max_configs)
        n, E = sub.values.shape
        fin = sub.values[:, -1]
        ok = np.isfinite(fin)
        spread = float(np.std(fin[ok])) if ok.sum() > 1 else 1.0
        spread = spread if spread > 0 else 1.0
        for cut in CUTOFFS:
            k = max(1, round(cut * E))
            rows = [i for i in range(n) if ok[i] and np.isfinite(sub.values[i, :k]).any()]
            if not rows:
                continue
            steps = np.arange(1, k + 1, dtype=np.float64)
            truth = fin[rows]
            lrs = {"pfn": [None] * len(rows),
                   "pfn-schedule": [lr.get(sub.config_ids[i]) for i in rows],
                   "pfn-schedule-blind": [np.ones(E)] * len(rows)}
            for label, mname in (("pfn", "pfn"), ("pfn-schedule", "pfn-schedule"),
                                 ("pfn-schedule-blind", "pfn-schedule")):
                if mname not in models:
                    continue
                curves = [ScheduledCurve(steps, sub.values[i, :k], s)
                          for i, s in zip(rows, lrs[label])]
                fc = models[mname].forecast(curves, float(E), mode=sub.mode)
                q = fc.quantiles([0.05, 0.5, 0.95])
                dens = _density(fc, truth, np.full(len(rows), 1e-3 * spread))
                ll = np.log(np.maximum(dens * spread, 1e-12))
                cells.append({
                    "benchmark": sub.benchmark, "task": sub.task, "cutoff": cut, "model": label,
                    "loglik": float(np.mean(ll)),
                    "mae": float(np.mean(np.abs(q[:, 1] - truth)) / spread),
                    "coverage90": float(np.mean((truth >= q[:, 0]) & (truth <= q[:, 2]))),
                    "n": len(rows),
                })
                log(f"{sub.task[:40]:<40} cut={cut} {label:<19} loglik={cells[-1]['loglik']:.3f} "
                    f"cov90={cells[-1]['coverage90']:.3f} mae={cells[-1]['mae']:.3f}")
    return cells


def summarize_cells(cells: list[dict]) -> list[dict]:
    """Per (benchmark, model, cutoff): mean loglik and coverage over tasks."""
    by: dict[tuple, list[dict]] = {}
    for c in cells:
        by.setdefault((c["benchmark"], c["model"], c["cutoff"]), []).append(c)
    return [{"benchmark": b, "model": m, "cutoff": cut,
             "loglik": float(np.mean([c["loglik"] for c in cs])),
             "coverage90": float(np.mean([c["coverage90"] for c in cs])),
             "mae": float(np.mean([c["mae"] for c in cs])), "tasks": len(cs)}
            for (b, m, cut), cs in sorted(by.items())]


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def late_bloomer_table(data) -> list[dict]:
    rows = []
    for task, lr in data:
        lb = late_bloomers(task)
        decay = [float(v[-1] / v.max()) for v in lr.values()]
        rows.append({"benchmark": task.benchmark, "task": task.task, "configs": len(task.config_ids),
                     "epochs": task.horizon, "with_schedule": len(lr),
                     "late_bloomers": int(lb.sum()),
                     "final_over_peak_lr_median": float(np.median(decay)) if decay else None})
    return rows


def load_models(names: list[str], schedule_weights: str | None = None) -> dict:
    """Models as a sweep's scheduler builds them (``resolve_model``: ``"pfn"`` per curve)."""
    from search.forecast import get_model
    from search.stopper import resolve_model

    return {n: get_model(n, weights=schedule_weights) if n == "pfn-schedule" and schedule_weights
            else resolve_model(n) for n in names}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--curves", action="append", required=True, help="benchmark folder(s)")
    ap.add_argument("--max-configs", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--schedulers", default="asha,median,curve,curve-schedule")
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    ap.add_argument("--skip-forecast", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--json", required=True)
    ap.add_argument("--policy", default="{}",
                    help="PolicyConfig fields as JSON for the curve schedulers, e.g. "
                         "'{\"incumbent\": \"top_fraction\", \"top_fraction\": 0.1}' "
                         "(default: the default policy); the scheduler names get the fields "
                         "as a suffix")
    ap.add_argument("--schedule-weights", default=None,
                    help="weights of the schedule-aware PFN (default: the shipped ones)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    data = load(a.curves)
    if a.tasks:
        keep = set(a.tasks.split(","))
        data = [(t, lr) for t, lr in data if t.task in keep]
    out: dict = {"command": " ".join(sys.argv), "late_bloomers": late_bloomer_table(data)}
    for r in out["late_bloomers"]:
        print(f"{r['task'][:44]:<44} configs={r['configs']} late_bloomers={r['late_bloomers']} "
              f"median final/peak lr={r['final_over_peak_lr_median']}")
    schedulers = [s for s in a.schedulers.split(",") if s]
    need = set()
    if not a.skip_forecast:
        need |= {"pfn", "pfn-schedule"}
    if not a.skip_replay:
        need |= {"pfn"} if "curve" in schedulers else set()
        need |= {"pfn-schedule"} if "curve-schedule" in schedulers else set()
    models = load_models(sorted(need), a.schedule_weights) if need else {}
    if not a.skip_forecast:
        out["cells"] = forecast_cells(data, models, a.max_configs)
        out["forecast_summary"] = summarize_cells(out["cells"])
        for r in out["forecast_summary"]:
            print(json.dumps(r))
    if not a.skip_replay:
        from search.policy import PolicyConfig

        pol = json.loads(a.policy)
        out["policy"] = pol
        out["replays"] = run_replays(data, models, PolicyConfig(**pol), schedulers, a.seeds,
                                     a.workers, a.max_configs)
        if pol:  # label the curve rows with the policy they ran
            tag = ",".join(f"{k}={v}" for k, v in sorted(pol.items()))
            for r in out["replays"]:
                if r["scheduler"].startswith("curve"):
                    r["scheduler"] += f"[{tag}]"
        out["replay_summary"] = summarize_replays(out["replays"])
        for r in out["replay_summary"]:
            print(json.dumps(r))
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print(markdown(out))


if __name__ == "__main__":
    main()
