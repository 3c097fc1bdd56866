"""Warm-starting the schedule-aware PFN from schedule-free weights (search.forecast.warmstart)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from search.forecast.pfn import PFN, PFNConfig, save_pfn
from search.forecast.prior import get_prior
from search.forecast.warmstart import main as warmstart_main
from search.forecast.warmstart import warm_start_state


def _tiny(n_cov=0):
    torch.manual_seed(0)
    return PFN(PFNConfig(emsize=16, layers=1, nhead=2, n_buckets=20, n_covariates=n_cov))


def test_warm_started_model_equals_the_source_until_trained():
    src = _tiny().eval()
    state = warm_start_state(src, 3, "schedule")
    cfg = PFNConfig.from_json(state["config"])
    assert cfg.n_covariates == 3 and cfg.prior == "schedule" and state["step"] == 0
    new = PFN(cfg, borders=state["model"]["bar.borders"])
    new.load_state_dict(state["model"])
    new.eval()
    b = get_prior("schedule").sample(4, np.random.default_rng(0))
    x = torch.as_tensor(b.x, dtype=torch.float32)
    y = torch.as_tensor(b.y, dtype=torch.float32)
    ctx = torch.as_tensor(b.x <= b.cutoff[:, None])
    cov = torch.as_tensor(b.cov, dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(new(x, y, ctx, cov), src(x, y, ctx))
    # the optimiser state matches the model's parameters (what train.py loads on resume)
    opt = torch.optim.AdamW(new.parameters(), lr=1e-3)
    opt.load_state_dict(state["opt"])
    with pytest.raises(ValueError, match="already has 3 covariates"):
        warm_start_state(_tiny(3), 2, "schedule")


def test_same_architecture_source_is_copied_as_is():
    """A continued run (schedule-free -> schedule-free, or schedule-aware -> schedule-aware)."""
    for k, prior in ((0, "sweepcast-v3"), (3, "schedule-v3")):
        src = _tiny(k)
        with torch.no_grad():
            for p in src.parameters():
                p.add_(0.01)  # no zero covariate encoder to hide behind
        state = warm_start_state(src, k, prior)
        cfg = PFNConfig.from_json(state["config"])
        assert cfg.n_covariates == k and cfg.prior == prior and state["step"] == 0
        for name, v in src.state_dict().items():
            torch.testing.assert_close(state["model"][name], v, msg=name)


@pytest.mark.slow
def test_train_resumes_from_the_warm_start(tmp_path):
    from search.forecast.train import main as train_main

    save_pfn(_tiny(), tmp_path, "src")
    out = tmp_path / "run"
    warmstart_main(["--from", str(tmp_path / "src.pt"), "--prior", "schedule", "--out", str(out)])
    train_main(["--prior", "schedule", "--steps", "2", "--batch", "8", "--warmup", "1",
                "--ckpt-every", "2", "--out", str(out), "--bf16", "off"])
    cfg = json.loads((out / "pfn.json").read_text())
    assert cfg["n_covariates"] == 3 and cfg["info"]["steps"] == 2
    assert "warm_start_from" in cfg["info"]  # provenance survives the trainer's checkpoints
    with pytest.raises(SystemExit, match="exists"):
        warmstart_main(["--from", str(tmp_path / "src.pt"), "--out", str(out)])
