"""Train the PFN forecaster on curves drawn from a named prior; resumable, seeded, 1 thread.

Usage::

    python -m search.forecast.train --prior sweepcast-v3 --emsize 64 --layers 3 --steps 22000 \
        --batch 400 --lr 2.5e-3 --warmup 300 --queries 16 --seed 0 --threads 2 --bf16 off \
        --length-groups 8 --out train_runs/pfn

(the shipped weights' recipe, about 2 hours of a 2-core CPU; ``search/forecast/MODEL.md``)

Every step draws a fresh batch from the prior with ``numpy.random.default_rng([seed, step])``, so
a run is reproducible and a resumed run sees exactly the batches it would have seen. Each curve has
its own cutoff; the context is the prefix up to it, thinned for some curves (random drops or a
stride) so the network also learns from sparse, irregular reports. The loss is the bar
distribution's NLL at ``--queries`` later steps per curve, one of them the final step.

``--length-groups G`` (default 4) cuts each batch into G parts by context length, each padded only
to its own longest context: the same loss on the same curves with about a third fewer tokens (on
a CPU, batch 400, 8 groups and the plain-attention encoder train 1.6x faster than one padded
batch did; ``benchmarks/train_speed.py``). On a GPU, 1 (fewer, larger kernels).

``--workers N`` draws the batches in N processes (a GPU outruns one core's sampling); each step's
batch still comes from ``default_rng([seed, step])``, in step order, so the run is the same.
``--budget-minutes M`` sets ``--steps`` (then an upper bound) from the speed measured over the
first steps (all inside the warm-up, which must be longer than 250 steps) so that the cosine schedule
ends after about M minutes; the chosen count is printed and recorded in the command, which then
reproduces the run.

``OUT/ckpt.pt`` (model, optimiser, step; loadable with ``weights_only=True``) is written every
``--ckpt-every`` steps and at the end, atomically; rerunning the same command resumes from it.
``OUT/pfn.pt`` + ``OUT/pfn.json`` are the exported weights (a plain state_dict and config) after
each checkpoint; ``OUT/log.jsonl`` has the training loss, validation NLL and 90%-interval coverage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from search.forecast.pfn import PFN, PFNConfig, make_borders, save_pfn
from search.forecast.prior import PriorBatch, get_prior

MAX_CONTEXT = 48  # context tokens per curve; the forecaster subsamples longer prefixes to this
BUDGET_PROBE = (30, 250)  # --budget-minutes times the steps between these (after CUDA's warm-up)


def context_masks(
    batch: PriorBatch, rng: np.random.Generator, thin_frac: float = 0.4, max_context: int = MAX_CONTEXT
) -> tuple[np.ndarray, np.ndarray]:
    """Context and target masks (n, m) for a prior batch.

    Context: ``x <= cutoff``; for a ``thin_frac`` share of curves it is thinned, either by keeping
    every k-th point counted back from the cutoff (k in 2..6) or by dropping points at random,
    always keeping the last observed point; a context longer than ``max_context`` keeps a random
    subset of that size (again with the last point). Targets: every ``x > cutoff``.
    """
    n, m = batch.y.shape
    pos = np.arange(1, m + 1)[None, :]
    cut = batch.cutoff[:, None]
    ctx = pos <= cut
    thin = rng.random(n) < thin_frac
    stride = rng.random(n) < 0.5
    k = rng.integers(2, 7, n)[:, None]
    keep_stride = ((cut - pos) % k) == 0
    keep_p = rng.uniform(0.2, 0.9, n)[:, None]
    keep_rand = (rng.random((n, m)) < keep_p) | (pos == cut)
    keep = np.where(stride[:, None], keep_stride, keep_rand)
    ctx = ctx & np.where(thin[:, None], keep, True)
    score = np.where(ctx, rng.random((n, m)), np.inf)
    score[pos == cut] = -1.0
    rank = np.argsort(np.argsort(score, axis=1), axis=1)
    ctx = ctx & (rank < max_context)
    tgt = pos > cut
    return ctx, tgt


def compact(batch: PriorBatch, ctx: np.ndarray, rng: np.random.Generator, n_query: int, groups: int = 1):
    """Pack each curve into ``[its context tokens, padding, n_query query tokens]``.

    Queries are drawn uniformly from the steps after the cutoff; the last one is always the final
    step (the one the forecaster is asked about in practice). Padding tokens are neither context
    nor asked about. Returns torch tensors x, y, ctx (B, L), out_idx (B, Q), y_query (B, Q) and
    cov (B, L, k) or None.

    ``groups`` > 1 returns a list of such tuples instead: the curves sorted by their number of
    context tokens and cut into that many parts, each padded only to its own longest context.
    The curves, contexts and queries are the same (the random draws do not depend on
    ``groups``), so the mean loss over all queries is the same number computed with less padding
    (about 1.3x fewer tokens on a CPU, where the padded tokens cost as much as the real ones).
    """
    n, m = batch.y.shape
    n_ctx = ctx.sum(axis=1)
    cut = batch.cutoff[:, None]
    u = rng.random((n, n_query))
    qpos = np.minimum(cut + np.floor(u * (m - cut)).astype(np.int64), m - 1)  # 0-based, > cut-1
    qpos[:, -1] = m - 1
    if groups <= 1:
        return _pack(batch, ctx, n_ctx, qpos, np.arange(n))
    order = np.argsort(n_ctx, kind="stable")
    return [_pack(batch, ctx, n_ctx, qpos, part) for part in np.array_split(order, min(groups, n)) if part.size]


def _pack(batch: PriorBatch, ctx: np.ndarray, n_ctx: np.ndarray, qpos: np.ndarray, rows: np.ndarray):
    ctx, n_ctx, qpos = ctx[rows], n_ctx[rows], qpos[rows]
    n, m = ctx.shape
    n_query = qpos.shape[1]
    r = rows[:, None]
    lc = int(n_ctx.max())
    order = np.argsort(~ctx, axis=1, kind="stable")[:, :lc]  # context positions first, in order
    cpos = np.take_along_axis(np.broadcast_to(np.arange(m), (n, m)), order, axis=1)
    cmask = np.arange(lc)[None, :] < n_ctx[:, None]
    pos = np.concatenate([cpos, qpos], axis=1)
    x = batch.x[r, pos]
    y = batch.y[r, pos]
    c = np.concatenate([cmask, np.zeros((n, n_query), dtype=bool)], axis=1)
    out_idx = np.broadcast_to(np.arange(lc, lc + n_query), (n, n_query))
    cov = None if batch.cov is None else torch.as_tensor(batch.cov[r, pos], dtype=torch.float32)
    return (
        torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(c), torch.as_tensor(np.ascontiguousarray(out_idx)),
        torch.as_tensor(y[:, lc:], dtype=torch.float32), cov,
    )


def batch_loss(model: PFN, parts, bf16: bool = False) -> torch.Tensor:
    """The mean NLL over every query of a batch given as compacted parts (``make_batch``)."""
    n_targets = sum(part[4].numel() for part in parts)
    loss = 0.0
    for x, y, c, oi, yq, cov in parts:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x, y, c, cov, out_idx=oi)
        loss = loss - model.bar.log_prob(logits.float(), yq).sum() / n_targets
    return loss


def bf16_fast(dev: torch.device) -> bool:
    """bf16 autocast only where the hardware has bf16 arithmetic (else it is several times slower)."""
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return bool(
        (hasattr(cpu, "_is_avx512_bf16_supported") and cpu._is_avx512_bf16_supported())
        or (hasattr(cpu, "_is_amx_tile_supported") and cpu._is_amx_tile_supported())
    )


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, p)))


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


@torch.no_grad()
def evaluate(model: PFN, batch: PriorBatch, rng: np.random.Generator) -> dict:
    """NLL and 90% central-interval coverage at the final step on held-out prior curves."""
    model.eval()
    ctx, _ = context_masks(batch, rng)
    dev = next(model.parameters()).device
    x, y, c, oi, yq, cov = (None if v is None else v.to(dev) for v in compact(batch, ctx, rng, 1))
    logits = model(x, y, c, cov, out_idx=oi)[:, -1]
    yt = yq[:, -1]
    nll = float(-model.bar.log_prob(logits, yt).mean())
    q = model.bar.icdf(logits, torch.tensor([0.05, 0.5, 0.95]))
    cov90 = float(((yt >= q[:, 0]) & (yt <= q[:, 2])).float().mean())
    mae = float((q[:, 1] - yt).abs().mean())
    model.train()
    return {"val_nll": nll, "val_cov90": cov90, "val_mae": mae}


def make_batch(prior, seed: int, step: int, batch: int, queries: int, groups: int = 1):
    """The training batch of ``step`` (compacted tensors, a list of ``groups`` parts if > 1), from
    ``default_rng([seed, step])``."""
    rng = np.random.default_rng([seed, step])
    b = prior.sample(batch, rng)
    ctx, _ = context_masks(b, rng)
    return compact(b, ctx, rng, queries, groups)


class BatchStream(torch.utils.data.IterableDataset):
    """Batches (each a list of compacted parts) of steps ``start, start + 1, ...`` without end;
    worker ``w`` of ``k`` draws the steps ``start + w + j * k``, and the loader takes from the
    workers in turn, so batches arrive in step order whatever the number of workers."""

    def __init__(self, prior_name: str, seed: int, start: int, batch: int, queries: int, groups: int = 1):
        self.prior_name, self.seed, self.start = prior_name, seed, start
        self.batch, self.queries, self.groups = batch, queries, groups

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, k = (0, 1) if info is None else (info.id, info.num_workers)
        prior = get_prior(self.prior_name)
        step = self.start + w
        while True:
            parts = make_batch(prior, self.seed, step, self.batch, self.queries, self.groups)
            yield parts if isinstance(parts, list) else [parts]
            step += k


def batch_stream(prior_name: str, seed: int, start: int, batch: int, queries: int, workers: int, pin: bool,
                 groups: int = 1):
    ds = BatchStream(prior_name, seed, start, batch, queries, groups)
    if workers <= 0:
        return iter(ds)
    return iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                            prefetch_factor=4, pin_memory=pin))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", default="sweepcast")
    ap.add_argument("--emsize", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--nhead", type=int, default=4)
    ap.add_argument("--buckets", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--queries", type=int, default=8, help="query steps per curve (the last is always the final step)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--val-curves", type=int, default=1000, help="held-out prior curves scored at each checkpoint")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this long; 0 = no limit")
    ap.add_argument("--length-groups", type=int, default=4,
                    help="cut each batch into this many parts by context length, each padded to its own "
                         "longest context (the same loss with fewer padded tokens; 1: one padded batch)")
    ap.add_argument("--workers", type=int, default=0, help="processes drawing prior batches (0: in this one)")
    ap.add_argument("--budget-minutes", type=float, default=0.0,
                    help="set --steps so that training ends after about this long (see the module docstring)")
    a = ap.parse_args(argv)
    if a.steps <= 0 or a.batch <= 0 or a.lr <= 0:
        raise SystemExit(f"--steps, --batch and --lr must be positive, got {a.steps}, {a.batch}, {a.lr}")
    if a.length_groups < 1:
        raise SystemExit(f"--length-groups must be >= 1, got {a.length_groups}")
    if a.workers < 0:
        raise SystemExit(f"--workers must be >= 0, got {a.workers}")
    if a.budget_minutes < 0 or (a.budget_minutes and min(a.warmup, a.steps) <= BUDGET_PROBE[1]):
        raise SystemExit(f"--budget-minutes needs a positive value and --warmup and --steps above "
                         f"{BUDGET_PROBE[1]}, got {a.budget_minutes}, {a.warmup} and {a.steps}")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    prior = get_prior(a.prior)
    dev = torch.device(a.device)
    use_bf16 = a.bf16 == "on" or (a.bf16 == "auto" and bf16_fast(dev))

    ck = out / "ckpt.pt"
    if ck.exists():
        state = torch.load(ck, map_location="cpu", weights_only=True)
        config = PFNConfig.from_json(state["config"])
        model = PFN(config, borders=state["model"]["bar.borders"]).to(dev)
        model.load_state_dict(state["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        elapsed0 = float(state["elapsed_s"])
        segments = list(config.info.get("segments", []))
        warm_from = config.info.get("warm_start_from")
        if not segments and step > 0:  # a checkpoint written before segments were recorded
            segments = [{"from_step": None, "prior": config.prior, "command": config.info.get("command")}]
        if config.prior != a.prior:
            if prior.n_covariates != config.n_covariates or prior.horizon != config.horizon:
                raise SystemExit(f"--prior {a.prior} does not fit the checkpoint's network ({config.prior})")
            print(f"switching prior {config.prior} -> {a.prior} at step {step}", flush=True)
            config.prior = a.prior
        print(f"resumed from {ck} at step {step}", flush=True)
    else:
        brng = np.random.default_rng([a.seed, 10**9])
        bsamples = prior.sample(4000, brng).y
        config = PFNConfig(
            emsize=a.emsize, layers=a.layers, nhead=a.nhead, n_buckets=a.buckets,
            n_covariates=prior.n_covariates, horizon=prior.horizon, prior=a.prior,
        )
        model = PFN(config, borders=make_borders(bsamples, a.buckets)).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
        step, elapsed0 = 0, 0.0
        segments, warm_from = [], None

    def command_line() -> str:
        return (f"python -m search.forecast.train --prior {a.prior} --emsize {a.emsize} --layers {a.layers} "
                f"--nhead {a.nhead} --buckets {a.buckets} --steps {a.steps} --batch {a.batch} --lr {a.lr} --warmup {a.warmup} --queries {a.queries} --seed {a.seed} "
                f"--out {a.out}")

    command = command_line()
    segments.append({"from_step": step, "prior": a.prior, "command": command, "device": str(dev),
                     "workers": a.workers, "threads": a.threads, "length_groups": a.length_groups})
    val_batch = prior.sample(a.val_curves, np.random.default_rng([a.seed, 10**9 + 1]))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"PFN {n_params} params, prior {a.prior}, bf16={use_bf16}, threads={a.threads}", flush=True)

    def checkpoint(final: bool = False) -> None:
        nonlocal t0
        el = elapsed0 + time.time() - t0
        model.config.info = {
            "steps": step, "batch": a.batch, "curves_seen": step * a.batch, "lr": a.lr,
            "seed": a.seed, "prior": a.prior, "queries": a.queries, "train_seconds": round(el, 1),
            "threads": a.threads, "bf16": use_bf16, "params": n_params,
            "command": command, "segments": segments,
        }
        if warm_from is not None:  # the weights this run started from (search.forecast.warmstart)
            model.config.info["warm_start_from"] = warm_from
        state = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "opt": _to_cpu(opt.state_dict()), "step": step, "elapsed_s": el, "config": model.config.to_json(),
        }
        tmp = ck.with_suffix(".ckpt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, ck)
        save_pfn(model, out, "pfn")
        ev = evaluate(model, val_batch, np.random.default_rng([a.seed, 10**9 + 2]))
        rec = {"step": step, "elapsed_s": round(el, 1), **ev, "final": final}
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)

    t0 = time.time()
    model.train()
    run_losses: list[float] = []
    stream = batch_stream(a.prior, a.seed, step, a.batch, a.queries, a.workers, dev.type == "cuda", a.length_groups)
    probe_at = (step + BUDGET_PROBE[0], step + BUDGET_PROBE[1]) if a.budget_minutes and step == 0 else None
    if a.budget_minutes and probe_at is None:
        print("--budget-minutes applies to a run's first segment only; using --steps", flush=True)
    probe_t = 0.0
    while step < a.steps:
        parts = [[None if v is None else v.to(dev, non_blocking=True) for v in part] for part in next(stream)]
        if probe_at and step == probe_at[0]:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            probe_t = time.time()
        if probe_at and step == probe_at[1]:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.time() - probe_t) / (probe_at[1] - probe_at[0])
            left = a.budget_minutes * 60 - (time.time() - t0)
            a.steps = min(a.steps, max(step + 1, step + int(0.97 * left / per_step)))
            command = command_line()
            segments[-1]["command"] = command
            print(f"budget {a.budget_minutes} min: {per_step * 1000:.1f} ms per step -> --steps {a.steps}", flush=True)
            probe_at = None
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, a.warmup)
        loss = batch_loss(model, parts, use_bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_losses.append(loss.item())
        if step % 50 == 0:
            el = elapsed0 + time.time() - t0
            print(f"step {step} loss {np.mean(run_losses):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                  f"elapsed {el:.0f}s", flush=True)
            run_losses = []
        if step % a.ckpt_every == 0 or step == a.steps:
            checkpoint(final=step == a.steps)
        if a.max_minutes and (time.time() - t0) > a.max_minutes * 60:
            if step % a.ckpt_every:
                checkpoint()
            print(f"stopping after {a.max_minutes} minutes at step {step}", flush=True)
            break


if __name__ == "__main__":
    main()
