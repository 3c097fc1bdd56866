"""Replay benchmark: the continuation-reward stop option against the plain p_beat rule.

The curve scheduler stops a trial when ``p_beat < threshold`` (search.policy). The scoring
option (``scoring.stop_on_reward``) adds: stop when continuing no longer pays,

    P_survive(H) * p_beat * V - c * H <= margin      (H: device-hours still ahead)

(search.scoring.continuation). In the replay one epoch costs one time unit (or the recorded
seconds per epoch), counted as one device-hour; c = 1; V defaults to SCORING.md's "one full
trial's cost times the number of trials", and ``--value-scales`` multiplies it to trace the
trade-off. Variants, each replayed through the same simulator and forecaster:

* ``curve``: the plain p_beat rule (PolicyConfig defaults);
* ``curve+reward[xS]``: the p_beat rule, plus the continuation rule with V scaled by S;
* ``reward[xS]``: only the continuation rule (p_beat threshold 1e-9).

Usage::

    python benchmarks/scoring_continuation.py --curves ../shared/data/curves \\
        --max-configs 100 --seeds 1 --model pfn --json scoring_continuation.json
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
sys.path.insert(0, str(ROOT))

from search.policy import PolicyConfig
from search.replay.data import load_curves
from search.replay.run import format_table, run_all, summarize
from search.replay.sim import CONTINUE, STOP, CurveReplayScheduler
from search.scoring import FailureHistory, continuation_reward, p_survive
from search.stopper import CurveStopper, resolve_model

NO_STOP_REASONS = {"beats_incumbent", "grace", "no_incumbent"}


class RewardReplay(CurveReplayScheduler):
    """The curve stopper, plus the continuation-reward rule on the verdict's p_beat."""

    def __init__(self, model, config: PolicyConfig, value_scale: float, margin: float, name: str):
        super().__init__(lambda h, m: CurveStopper(model, horizon=h, mode=m, config=config),
                         name=name)
        self.value_scale, self.margin = value_scale, margin
        self.n_reward_stops = 0

    def bind(self, sim):
        super().bind(sim)
        t = sim.task
        per_epoch = (np.ones(t.horizon) if t.durations is None
                     else np.nanmean(t.durations, axis=0))
        self.per_epoch = per_epoch
        # hours_ahead[e - 1]: hours still ahead after epoch e
        self.hours_ahead = np.concatenate([np.cumsum(per_epoch[::-1])[::-1][1:], [0.0]])
        full = float(per_epoch.sum())
        self.value = self.value_scale * full * len(t.config_ids)  # SCORING.md's default V
        self.hours_done = 0.0

    def result(self, tid, epoch, value):
        vd = self.stopper.observe(tid, epoch, value)
        self.hours_done += float(self.per_epoch[epoch - 1])
        if vd.stop:
            return STOP
        if vd.p_beat is None or vd.reason in NO_STOP_REASONS or epoch >= self.sim.task.horizon:
            return CONTINUE
        h = float(self.hours_ahead[epoch - 1])
        ps = float(p_survive(h, FailureHistory(0, self.hours_done)))
        r = float(continuation_reward(ps * vd.p_beat, self.value, 1.0, h))
        if r <= self.margin:
            self.n_reward_stops += 1
            return STOP
        return CONTINUE


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curves", required=True, type=Path)
    ap.add_argument("--model", default="pfn")
    ap.add_argument("--max-configs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--value-scales", default="1,0.1,0.02")
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--tasks", default=None, help="comma-separated task names (default all)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass

    tasks = load_curves(a.curves, set(a.tasks.split(",")) if a.tasks else None)
    model = resolve_model(a.model)  # as a sweep builds it ("pfn": per curve)
    base = PolicyConfig()
    off = PolicyConfig(threshold=1e-9)
    specs: list = ["curve"]
    for s in (float(x) for x in a.value_scales.split(",")):
        specs.append((f"curve+reward[x{s:g}]",
                      lambda s=s: RewardReplay(model, base, s, a.margin, f"curve+reward[x{s:g}]")))
        specs.append((f"reward[x{s:g}]",
                      lambda s=s: RewardReplay(model, off, s, a.margin, f"reward[x{s:g}]")))
    t0 = time.perf_counter()
    results = run_all(tasks, specs, model=model, config=base, workers=a.workers, seeds=a.seeds,
                      max_configs=a.max_configs, progress=lambda m: print(m, flush=True))
    summary = summarize(results)
    print(format_table(results))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps({"results": results, "summary": summary,
                                      "args": {k: str(v) for k, v in vars(a).items()}},
                                     indent=1, default=lambda v: None if isinstance(v, float)
                                     and not math.isfinite(v) else str(v)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
