"""Warm-start a covariate PFN from schedule-free weights, as a checkpoint the trainer resumes.

The schedule-aware PFN (issue 8) has the same architecture as the schedule-free one plus a linear
encoder of the per-step covariates (``PFN.enc_cov``). Starting it from the shipped schedule-free
weights with ``enc_cov`` set to zero gives, at step 0, exactly the schedule-free model; training
on the ``"schedule"`` prior then only has to learn how the schedule bends a curve, which is far
cheaper than learning curves from scratch on this machine. A prior without covariates gives a
plain copy of the weights, as does a source that already has the prior's covariates (a new run
continued from a shipped model, with a fresh optimiser). Usage::

    python -m search.forecast.warmstart --from search/forecast/weights/pfn.pt \
        --prior schedule --out train_runs/pfn_schedule
    python -m search.forecast.train --prior schedule --out train_runs/pfn_schedule ...

The second command finds ``OUT/ckpt.pt`` and resumes from it (step 0, a fresh AdamW state), so
the training script is used as is. The bar-distribution borders are those of the source model.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from search.forecast.pfn import PFN, PFNConfig, load_pfn
from search.forecast.prior import get_prior


def warm_start_state(source: PFN, n_covariates: int, prior: str) -> dict:
    """A ``train.py`` checkpoint dict: ``source``'s weights, zero ``enc_cov``, step 0."""
    if n_covariates < 0:
        raise ValueError(f"n_covariates must be >= 0, got {n_covariates!r}")
    if source.config.n_covariates not in (0, n_covariates):
        raise ValueError(f"source model already has {source.config.n_covariates} covariates")
    c = source.config
    config = PFNConfig(emsize=c.emsize, layers=c.layers, nhead=c.nhead, nhid_factor=c.nhid_factor,
                       n_buckets=c.n_buckets, n_covariates=n_covariates, horizon=c.horizon,
                       prior=prior, info={"warm_start_from": c.info})
    model = PFN(config, borders=source.bar.borders.clone())
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    fresh_cov = n_covariates > 0 and source.config.n_covariates == 0
    expect = {"enc_cov.weight", "enc_cov.bias"} if fresh_cov else set()
    if unexpected or set(missing) != expect:
        raise ValueError(f"architectures differ: missing {missing}, unexpected {unexpected}")
    if fresh_cov:
        with torch.no_grad():
            model.enc_cov.weight.zero_()
            model.enc_cov.bias.zero_()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    return {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "opt": opt.state_dict(), "step": 0, "elapsed_s": 0.0, "config": config.to_json()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="src", required=True, help="schedule-free weights (.pt)")
    ap.add_argument("--prior", default="schedule")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    prior = get_prior(a.prior)
    out = Path(a.out)
    ck = out / "ckpt.pt"
    if ck.exists():
        raise SystemExit(f"{ck} exists: the run has started; resume it with search.forecast.train")
    out.mkdir(parents=True, exist_ok=True)
    state = warm_start_state(load_pfn(a.src), prior.n_covariates, a.prior)
    tmp = ck.with_suffix(".ckpt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, ck)
    print(f"wrote {ck}: warm start from {a.src}, {prior.n_covariates} covariates, prior {a.prior}")


if __name__ == "__main__":
    main()
