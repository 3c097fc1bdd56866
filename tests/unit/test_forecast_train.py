"""The training command: seeded, checkpointed, resumable (search/forecast/train.py)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch

from search.forecast.pfn import PFN, PFNConfig, make_borders
from search.forecast.prior import get_prior
from search.forecast.train import batch_loss, batch_stream, compact, context_masks, make_batch
from search.forecast.train import main as train_main

TINY = ["--prior", "sweepcast", "--emsize", "16", "--layers", "1", "--nhead", "2", "--buckets", "20",
        "--batch", "8", "--warmup", "1", "--ckpt-every", "2", "--bf16", "off", "--seed", "3", "--val-curves", "50"]


@pytest.mark.slow
def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train_main(TINY + ["--steps", "4", "--out", str(a)])
    train_main(TINY + ["--steps", "4", "--out", str(b), "--max-minutes", "1e-9"])  # stops after 1 step
    assert json.loads((b / "pfn.json").read_text())["info"]["steps"] < 4
    train_main(TINY + ["--steps", "4", "--out", str(b)])  # resumes from b/ckpt.pt
    sa = torch.load(a / "pfn.pt", weights_only=True)
    sb = torch.load(b / "pfn.pt", weights_only=True)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5, msg=k)
    info = json.loads((b / "pfn.json").read_text())["info"]
    assert info["steps"] == 4 and info["curves_seen"] == 32 and len(info["segments"]) == 2
    for seg in info["segments"]:  # how each segment ran (the defaults here), beside the command
        assert (seg["threads"], seg["length_groups"], seg["workers"]) == (1, 4, 0), seg
    logs = [json.loads(line) for line in (b / "log.jsonl").read_text().splitlines()]
    assert logs[-1]["final"] and np.isfinite(logs[-1]["val_nll"])


def test_context_masks_keep_last_point_and_cap_length():
    b = get_prior("lcpfn").sample(200, np.random.default_rng(0))
    ctx, tgt = context_masks(b, np.random.default_rng(1), max_context=20)
    rows = np.arange(200)
    assert np.all(ctx[rows, b.cutoff - 1])  # the last observed point is always context
    assert ctx.sum(1).max() <= 20
    pos = np.arange(1, 101)[None, :]
    assert not np.any(ctx & (pos > b.cutoff[:, None]))
    assert np.array_equal(tgt, pos > b.cutoff[:, None])
    x, _y, c, oi, yq, cov = compact(b, ctx, np.random.default_rng(2), 5)
    assert oi.shape == (200, 5) and cov is None
    assert torch.all(yq[:, -1] == torch.as_tensor(b.y[:, -1], dtype=torch.float32))
    xq = torch.gather(x, 1, oi)
    assert torch.all(xq > torch.as_tensor(b.cutoff)[:, None])  # queries lie after the cutoff
    assert torch.equal(c.sum(1), torch.as_tensor(ctx.sum(1)))


def test_worker_processes_draw_the_same_batches_in_step_order():
    """--workers only moves the sampling: batch k is still the one of default_rng([seed, k])."""
    here = batch_stream("sweepcast-v3", 3, 5, 16, 4, workers=0, pin=False)
    there = batch_stream("schedule-v3", 3, 5, 16, 4, workers=2, pin=False)
    prior_a, prior_b = get_prior("sweepcast-v3"), get_prior("schedule-v3")
    for step in range(5, 10):
        (a,), (b,) = next(here), next(there)  # one part per batch (no --length-groups)
        for got, want in zip(a, make_batch(prior_a, 3, step, 16, 4)):
            assert got is None and want is None or torch.equal(got, want)
        for got, want in zip(b, make_batch(prior_b, 3, step, 16, 4)):
            assert torch.equal(got, want)
    other = make_batch(prior_a, 3, 6, 16, 4)
    assert not torch.equal(make_batch(prior_a, 3, 5, 16, 4)[1], other[1])


def test_length_groups_repack_the_same_curves_with_less_padding_and_the_same_loss():
    """--length-groups only changes the padding: same contexts, same queries, same mean loss."""
    prior = get_prior("sweepcast-v3")
    whole = make_batch(prior, 4, 7, 64, 5)
    parts = make_batch(prior, 4, 7, 64, 5, groups=4)
    assert isinstance(parts, list) and len(parts) == 4 and sum(p[0].shape[0] for p in parts) == 64

    def rows(batch):  # every curve as (its context (x, y) pairs, its query (x, y) pairs)
        x, y, c, oi, yq, _ = batch
        xq = torch.gather(x, 1, oi)
        return sorted((tuple(zip(x[i][c[i]].tolist(), y[i][c[i]].tolist())),
                       tuple(zip(xq[i].tolist(), yq[i].tolist()))) for i in range(x.shape[0]))

    assert rows(whole) == sorted(r for p in parts for r in rows(p))
    tokens = sum(p[0].numel() for p in parts)
    assert tokens < 0.9 * whole[0].numel()  # each part is padded to its own longest context only
    torch.manual_seed(0)
    net = PFN(PFNConfig(emsize=16, layers=1, nhead=2, n_buckets=20), make_borders(prior.sample(500, np.random.default_rng(0)).y, 20))
    x, y, c, oi, yq, _ = whole
    ref = -net.bar.log_prob(net(x, y, c, out_idx=oi), yq).mean()
    got = batch_loss(net, parts)  # what the trainer minimises
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_budget_sets_the_step_count_and_records_it(tmp_path):
    out = tmp_path / "r"
    args = TINY + ["--warmup", "260", "--steps", "100000", "--budget-minutes", "0.05", "--out", str(out),
                   "--ckpt-every", "100000"]  # the later --warmup wins
    train_main(args)
    info = json.loads((out / "pfn.json").read_text())["info"]
    assert 250 < info["steps"] < 100000  # the measured speed, not the given count, ended the run
    assert f"--steps {info['steps']} " in info["command"] == info["segments"][-1]["command"]


def test_the_recorded_command_reproduces_the_run(tmp_path):
    """Every option that changes the weights (--queries, --nhead and --buckets too) is in the command."""
    a = tmp_path / "a"
    train_main(TINY + ["--steps", "3", "--queries", "3", "--out", str(a)])
    info = json.loads((a / "pfn.json").read_text())["info"]
    assert info["queries"] == 3 and " --queries 3 " in info["command"] and " --nhead 2 --buckets 20 " in info["command"]
    argv = shlex.split(info["command"])[3:]  # drop "python -m search.forecast.train"
    argv[argv.index("--out") + 1] = str(tmp_path / "b")
    train_main(argv + ["--ckpt-every", "2", "--bf16", "off", "--val-curves", "50"])  # options that change no weight
    sa, sb = (torch.load(d / "pfn.pt", weights_only=True) for d in (a, tmp_path / "b"))
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_budget_and_workers_reject_bad_values(tmp_path):
    with pytest.raises(SystemExit, match="--budget-minutes needs"):
        train_main(TINY + ["--steps", "4", "--out", str(tmp_path), "--budget-minutes", "1"])
    with pytest.raises(SystemExit, match="--workers must be"):
        train_main(TINY + ["--steps", "4", "--out", str(tmp_path), "--workers", "-1"])
