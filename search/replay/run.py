"""Run a replay benchmark: tasks x schedulers x seeds, results as plain dicts, a summary table.

Scheduler names: ``curve`` (our stopper, driven directly), ``curve-tune`` (the same policy
through the Ray ``CurveScheduler``, to show the adapter decides identically), and the peers of
:mod:`search.replay.peers` (``asha``, ``median``, ``hyperband``, ``fifo``, ``optuna-median``,
``optuna-sh``, ``optuna-hyperband``). Peers import Ray / Optuna lazily.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from search.forecast.base import CurveModel
from search.policy import PolicyConfig
from search.replay.sim import (
    CurveReplayScheduler,
    FifoReplay,
    ReplayScheduler,
    RunResult,
    Task,
    replay,
)
from search.stopper import CurveStopper

CURVE_NAMES = ("curve", "curve-tune")


def curve_scheduler(model: CurveModel, config: PolicyConfig, name: str = "curve") -> ReplayScheduler:
    """Our policy as a replay scheduler (``name`` ``curve-tune`` goes through Ray's adapter)."""
    if name.startswith("curve-tune"):
        from search.adapters.ray_tune import CurveScheduler
        from search.replay.peers import METRIC, TIME_ATTR, RayReplay

        return RayReplay(name, lambda h, m: CurveScheduler(
            metric=METRIC, mode=m, time_attr=TIME_ATTR, max_t=h, model=model, config=config))
    return CurveReplayScheduler(
        lambda h, m: CurveStopper(model, horizon=h, mode=m, config=config), name=name)


def make_scheduler(name: str, model: CurveModel | None, config: PolicyConfig) -> ReplayScheduler:
    if name in CURVE_NAMES:
        if model is None:
            raise ValueError(f"scheduler {name!r} needs a forecaster model")
        return curve_scheduler(model, config, name)
    if name == "fifo-pure":
        return FifoReplay()
    from search.replay.peers import peer_scheduler

    return peer_scheduler(name)


def run_all(
    tasks: Iterable[Task],
    schedulers: Iterable[str | tuple[str, Callable[[], ReplayScheduler]]],
    *,
    model: CurveModel | None,
    config: PolicyConfig,
    workers: int = 8,
    seeds: int = 3,
    max_configs: int | None = 200,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], int] = time.thread_time_ns,
) -> list[dict]:
    """Replay every task with every scheduler and seed; returns result dicts (JSON-able).

    ``schedulers`` items are names or ``(label, factory)`` pairs (a fresh scheduler per run).
    ``clock`` times each decision: the default is the driver thread's CPU time, so that other
    processes on a shared machine do not inflate it (pass ``time.perf_counter_ns`` for wall).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    out: list[dict] = []
    specs = list(schedulers)
    for task in tasks:
        for spec in specs:
            for seed in range(seeds):
                if isinstance(spec, str):
                    sch = make_scheduler(spec, model, config)
                else:
                    sch = spec[1]()
                    sch.name = spec[0]
                t0 = time.perf_counter()
                r: RunResult = replay(task, sch, workers=workers, seed=seed,
                                      max_configs=max_configs, clock=clock)
                d = r.to_dict()
                d["replay_s"] = time.perf_counter() - t0
                out.append(d)
                if progress:
                    progress(f"{task.task} {r.scheduler} seed={seed}: {r.speedup:.1f}x "
                             f"regret_rel={r.regret_rel:.3f} best_killed={r.best_killed} "
                             f"({d['replay_s']:.1f}s)")
    return out


def summarize(results: list[dict]) -> list[dict]:
    """Per scheduler: median over tasks of the per-task mean speed-up, mean relative regret,
    fraction of runs that killed the best config, decision p99 (max over runs)."""
    by: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        by.setdefault(r["scheduler"], {}).setdefault(r["task"], []).append(r)
    rows = []
    for name, tasks in by.items():
        sp = [float(np.mean([r["speedup"] for r in rs])) for rs in tasks.values()]
        allr = [r for rs in tasks.values() for r in rs]
        rows.append({
            "scheduler": name,
            "tasks": len(tasks),
            "runs": len(allr),
            "speedup_median": float(np.median(sp)),
            "regret_rel_mean": float(np.mean([r["regret_rel"] for r in allr])),
            "best_killed_frac": float(np.mean([r["best_killed"] for r in allr])),
            "decision_us_p99_max": float(np.max([r["decision_us_p99"] for r in allr])),
            "decision_us_p50_median": float(np.median([r["decision_us_p50"] for r in allr])),
        })
    return rows


def format_table(results: list[dict]) -> str:
    """A per-task table and the summary, as text."""
    lines = []
    by: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        by.setdefault((r["task"], r["scheduler"]), []).append(r)
    lines.append(f"{'task':<44} {'scheduler':<16} {'speedup':>8} {'regret_rel':>10} "
                 f"{'best_killed':>11} {'p99_us':>8}")
    for (task, sch), rs in by.items():
        lines.append(
            f"{task[-44:]:<44} {sch:<16} {np.mean([r['speedup'] for r in rs]):>8.2f} "
            f"{np.mean([r['regret_rel'] for r in rs]):>10.4f} "
            f"{sum(r['best_killed'] for r in rs):>5}/{len(rs):<5} "
            f"{max(r['decision_us_p99'] for r in rs):>8.0f}")
    lines.append("")
    lines.append(f"{'scheduler':<16} {'median speedup':>14} {'mean regret_rel':>15} "
                 f"{'best killed':>11} {'p99 us (max)':>12}")
    for s in summarize(results):
        lines.append(f"{s['scheduler']:<16} {s['speedup_median']:>14.2f} "
                     f"{s['regret_rel_mean']:>15.4f} {s['best_killed_frac']:>11.2f} "
                     f"{s['decision_us_p99_max']:>12.0f}")
    return "\n".join(lines)
