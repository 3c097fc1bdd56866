"""Training speed of the PFN forecaster on this machine: curves per second, side by side.

    python benchmarks/train_speed.py --threads 2 --batch 400 --emsize 128,64 --json OUT

For each embedding size it times training steps of three set-ups on the same batches (drawn as
``search.forecast.train`` draws them, ``sweepcast-v3`` prior): ``torch-encoder`` (the network's
layers run by ``nn.TransformerEncoder`` with a per-head boolean mask, one padded batch: how the
trainer ran until the eighth session), ``plain-attention`` (``PFN._encode``, one padded batch) and
``plain-attention+groups`` (``--length-groups`` parts). The set-ups take turns, ``--rounds``
times, and the best round of each counts, so they share the machine's load alike.

``--queries 8,16,32`` adds, per embedding size, the trainer's set-up (plain attention, groups)
at each number of query steps per curve, with the time to draw and compact a batch (the trainer
does it inline unless ``--workers``): more queries are more training signal per sampled and
encoded curve, so the figure to compare is query points per second, against the first value.

    python benchmarks/train_speed.py --emsize 64 --queries 8,16,32 --json OUT
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from search.forecast.pfn import PFN, PFNConfig, make_borders
from search.forecast.prior import get_prior
from search.forecast.train import batch_loss, make_batch


def torch_encoder(net: PFN):
    """``net._encode`` as nn.TransformerEncoder (the pre-eighth-session forward)."""
    def encode(h, bias):
        B, _, L, _ = bias.shape
        H = net.config.nhead
        return net.encoder(h, mask=torch.isinf(bias).expand(B, H, L, L).reshape(B * H, L, L))
    return encode


def time_setup(net, opt, batches, k):
    t = time.perf_counter()
    for i in range(k):
        loss = batch_loss(net, batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    return (time.perf_counter() - t) / k


def queries_table(net, opt, prior, a, queries: list[int], emsize: int) -> list[dict]:
    """Step and batch-drawing time of the trainer's set-up at each number of queries (the
    values take turns, ``a.rounds`` times; the best round of each counts)."""
    batches = {q: [make_batch(prior, 0, s, a.batch, q, groups=a.groups) for s in range(6)]
               for q in queries}
    step = {q: float("inf") for q in queries}
    draw = {q: float("inf") for q in queries}
    for _ in range(a.rounds):
        for q in queries:
            t = time.perf_counter()
            make_batch(prior, 0, 100, a.batch, q, groups=a.groups)
            draw[q] = min(draw[q], time.perf_counter() - t)
            time_setup(net, opt, batches[q], 2)  # warm-up
            step[q] = min(step[q], time_setup(net, opt, batches[q], a.steps))
    rows = []
    base = None
    for q in queries:
        per_s = a.batch * q / (step[q] + draw[q])
        base = base or per_s
        row = {"emsize": emsize, "queries": q, "s_per_step": round(step[q], 4),
               "s_draw_batch": round(draw[q], 4),
               "curves_per_s": round(a.batch / (step[q] + draw[q]), 1),
               "query_points_per_s": round(per_s, 1),
               f"query_points_vs_queries{queries[0]}": round(per_s / base, 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--emsize", default="128,64")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12, help="steps per set-up and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", default="8",
                    help="query steps per curve (the first for the set-ups); several "
                         "(comma-separated): the queries table")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    queries = [int(v) for v in a.queries.split(",")]
    if any(q < 1 for q in queries):
        ap.error(f"--queries must be positive integers, got {a.queries!r}")
    torch.set_num_threads(a.threads)
    prior = get_prior("sweepcast-v3")
    whole = [[make_batch(prior, 0, s, a.batch, queries[0])] for s in range(6)]
    grouped = [make_batch(prior, 0, s, a.batch, queries[0], groups=a.groups) for s in range(6)]
    rows: list[dict] = []
    qrows: list[dict] = []
    for e in [int(v) for v in a.emsize.split(",")]:
        torch.manual_seed(0)
        net = PFN(PFNConfig(emsize=e, layers=3, nhead=4, prior="sweepcast-v3"),
                  make_borders(prior.sample(4000, np.random.default_rng(0)).y, 1000))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        plain = net._encode
        setups = {"torch-encoder": (torch_encoder(net), whole), "plain-attention": (plain, whole),
                  f"plain-attention+groups{a.groups}": (plain, grouped)}
        best = {k: float("inf") for k in setups}
        for r in range(a.rounds):
            for name, (enc, batches) in setups.items():
                net._encode = enc
                time_setup(net, opt, batches, 2)  # warm-up
                best[name] = min(best[name], time_setup(net, opt, batches, a.steps))
        net._encode = plain
        base = best["torch-encoder"]
        for name, s in best.items():
            row = {"emsize": e, "setup": name, "s_per_step": round(s, 4), "curves_per_s": round(a.batch / s, 1),
                   "speedup_vs_torch_encoder": round(base / s, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        if len(queries) > 1:
            qrows += queries_table(net, opt, prior, a, queries, e)
    out = {"rows": rows, "queries": qrows, "args": {k: str(v) for k, v in vars(a).items()},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
