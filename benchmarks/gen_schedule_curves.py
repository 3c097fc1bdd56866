"""Generate real learning curves of the built-in MLP under learning-rate schedules (issue 8).

Runs ``trials.examples.mlp:train`` outside Ray, in a plain loop on one thread, through
``trials.api.local_session`` (so the trainable is exactly what a sweep runs), for a seeded random
sample of hyperparameter configs whose ``lr_schedule`` is constant, cosine, step or one-cycle,
and writes them in the format of ``../shared/data/curves``::

    python benchmarks/gen_schedule_curves.py --configs 80 --epochs 50 --seed 0 \
        --out benchmarks/data/schedule_curves

Two tasks (one sweep each): ``digits_mlp_adam`` (Adam/AdamW) and ``digits_mlp_sgd`` (SGD with
momentum). ``metric`` is ``val_loss`` (minimise); ``val_accuracy``, ``train_loss`` and the epoch's
``lr`` are extra columns; ``diverged`` is 1 where the loss is not finite. There is no epoch 0
(the trainable reports epochs 1..E). ``configs.json`` holds every config as the trainable took
it (``lr_schedule``, ``schedule_<param>``, ``max_epochs`` included), so
``orchestrator.config_schedule.ScheduleConfig().resolve(config, E)`` recovers each schedule.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import time
from pathlib import Path

import numpy as np

SCHEDULE_MIX = {"constant": 0.25, "cosine": 0.25, "step": 0.25, "onecycle": 0.25}
# sweep kinds: task -> (optimizers, lr range per optimizer, widths, depths, batch sizes)
#   wide:   a first exploration, rates over 2-3 decades (many configs are far from good)
#   narrow: a sweep around known-good rates and one architecture (every config competitive,
#           so the schedule decides the ranking late)
SWEEPS = {
    "wide": {
        "digits_mlp_adam": (("adam", "adamw"), {"adam": (2e-4, 5e-2), "adamw": (2e-4, 5e-2)},
                            (16, 32, 64), (1, 2, 3), (64, 128, 256)),
        "digits_mlp_sgd": (("sgd",), {"sgd": (2e-3, 1.0)}, (16, 32, 64), (1, 2, 3),
                           (64, 128, 256)),
    },
    "narrow": {
        "digits_mlp_narrow": (("adam", "sgd"), {"adam": (2e-3, 3e-2), "sgd": (3e-2, 0.5)},
                              (64,), (2,), (128, 256)),
    },
}


def sample_config(rng: np.random.Generator, space: tuple, epochs: int, seed: int) -> dict:
    """One hyperparameter config for ``trials.examples.mlp:train`` from a sweep's space."""
    optimizers, lr_range, widths, depths, batches = space
    opt = str(rng.choice(optimizers))
    lo, hi = lr_range[opt]
    names = list(SCHEDULE_MIX)
    p = np.array([SCHEDULE_MIX[n] for n in names])
    sched = str(rng.choice(names, p=p / p.sum()))
    cfg = {
        "lr": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        "optimizer": opt,
        "width": int(rng.choice(widths)),
        "depth": int(rng.choice(depths)),
        "dropout": float(rng.uniform(0.0, 0.5)) if rng.random() < 0.5 else 0.0,
        "weight_decay": float(np.exp(rng.uniform(np.log(1e-6), np.log(1e-3))))
        if rng.random() < 0.5 else 0.0,
        "batch_size": int(rng.choice(batches)),
        "lr_schedule": sched,
        "max_epochs": epochs,
        "seed": seed,
    }
    if sched == "cosine" and rng.random() < 0.3:
        cfg["schedule_min_factor"] = float(rng.uniform(0.0, 0.1))
    elif sched == "step":
        cfg["schedule_step_size"] = int(rng.choice([epochs // 4, epochs // 3, epochs // 2]))
        cfg["schedule_gamma"] = float(rng.choice([0.1, 0.2, 0.5]))
    elif sched == "onecycle":
        cfg["schedule_pct_start"] = float(rng.uniform(0.15, 0.4))
    return cfg


def run_config(cfg: dict) -> list[dict]:
    """Train one config to the end; the reported results, one dict per epoch."""
    from trials.api import local_session
    from trials.examples.mlp import train

    with local_session() as s:
        train(dict(cfg))
    return s.results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", type=int, default=70, help="configs per task")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", choices=sorted(SWEEPS), default="wide")
    ap.add_argument("--out", default="benchmarks/data/schedule_curves")
    ap.add_argument("--task-suffix", default="",
                    help="appended to the task names, so a second sweep of a kind (another --seed) "
                         "is a task of its own when both folders are replayed together")
    ap.add_argument("--max-minutes", type=float, default=0.0,
                    help="stop starting new configs after this long (0: no limit)")
    a = ap.parse_args(argv)
    if a.configs < 1 or a.epochs < 4:
        raise SystemExit(f"--configs must be >= 1 and --epochs >= 4, got {a.configs}, {a.epochs}")
    import torch

    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list] = []
    configs: dict[str, dict[str, dict]] = {}
    t0, c0 = time.time(), time.process_time()
    stopped = False
    tasks = {task + a.task_suffix: space for task, space in SWEEPS[a.sweep].items()}
    rngs = {task: np.random.default_rng([a.seed, ti]) for ti, task in enumerate(tasks)}
    for task in tasks:
        configs[task] = {}
    # tasks interleaved, config by config, so a run cut short by --max-minutes stays balanced
    for i in range(a.configs):
        for task, space in tasks.items():
            if a.max_minutes and time.time() - t0 > a.max_minutes * 60:
                stopped = True
                break
            cid = f"{i:04d}"
            cfg = sample_config(rngs[task], space, a.epochs,
                                seed=int(rngs[task].integers(0, 10_000)))
            configs[task][cid] = cfg
            for r in run_config(cfg):
                v = r["val_loss"]
                div = int(not math.isfinite(v))
                rows.append(["sweepcast_schedules", task, cid, int(r["epoch"]),
                             "" if div else f"{v:.6g}", "val_loss", 0, "" if div else f"{v:.6g}",
                             f"{r['val_accuracy']:.6g}", f"{r['train_loss']:.6g}",
                             f"{r['lr']:.6g}", div])
            print(f"{task} {cid} {cfg['optimizer']} {cfg['lr_schedule']} lr={cfg['lr']:.2e} "
                  f"final val_loss={rows[-1][7] or 'nan'} cpu={time.process_time() - c0:.0f}s",
                  flush=True)
        if stopped:
            break
    header = ["benchmark", "task", "config_id", "epoch", "metric", "metric_name",
              "higher_is_better", "val_loss", "val_accuracy", "train_loss", "lr", "diverged"]
    with gzip.open(out / "curves.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    (out / "configs.json").write_text(json.dumps(configs, indent=1, sort_keys=True) + "\n")
    info = {"command": "python benchmarks/gen_schedule_curves.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()),
        "configs": {t: len(c) for t, c in configs.items()}, "epochs": a.epochs,
        "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
        "stopped_early": stopped, "torch": torch.__version__}
    (out / "generation.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
