"""The shipped PFN: offline loading, calibration on held-out prior curves, user-unit coherence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from search.forecast import Curve, get_model
from search.forecast.pfn import PFN, PFNConfig, load_pfn, save_pfn
from search.forecast.pfn_model import PFNForecast, shipped_weights
from search.forecast.prior import get_prior


@pytest.fixture(scope="module")
def net() -> PFN:
    torch.set_num_threads(1)
    return load_pfn(*shipped_weights())


def test_shipped_weights_load_offline_with_weights_only():
    pt, js = shipped_weights()
    sd = torch.load(pt, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    cfg = PFNConfig.from_json(js.read_text())
    assert cfg.n_covariates == 0 and cfg.horizon == 100
    assert sd["bar.borders"].numel() == cfg.n_buckets + 1
    model = PFN(cfg, borders=sd["bar.borders"])
    model.load_state_dict(sd)  # strict: every key matches the architecture
    info = json.loads(js.read_text())["info"]
    assert info["curves_seen"] > 0 and info["prior"] == cfg.prior


@pytest.mark.parametrize("train", [False, True])
def test_written_out_encoder_matches_torchs_transformer_encoder(net, train):
    """PFN._encode runs the parameters of ``net.encoder`` (nn.TransformerEncoder) with plain
    attention; both must give the same tokens, with and without grad (train and eval mode)."""
    g = torch.Generator().manual_seed(0)
    B, L, E = 7, 30, net.config.emsize
    h = torch.randn(B, L, E, generator=g)
    ctx = torch.rand(B, L, generator=g) < 0.6
    ctx[:, -5:] = False  # queries
    allowed = ctx.unsqueeze(1) | torch.eye(L, dtype=torch.bool).unsqueeze(0)
    bias = torch.zeros(B, 1, L, L).masked_fill_(~allowed.unsqueeze(1), float("-inf"))
    net.train(train)
    try:
        with torch.set_grad_enabled(train):
            want = net.encoder(h, mask=(~allowed).repeat_interleave(net.config.nhead, dim=0))
            got = net._encode(h, bias)
    finally:
        net.eval()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_save_load_round_trip(tmp_path, net):
    save_pfn(net, tmp_path, "copy")
    again = load_pfn(tmp_path / "copy.pt")
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def _prior_forecast(net: PFN, n: int, seed: int):
    """Forecast the final value of held-out prior curves from their prefixes (model domain)."""
    b = get_prior(net.config.prior).sample(n, np.random.default_rng([seed, 31337]))
    m = b.y.shape[1]
    L = int(b.cutoff.max()) + 1
    x = np.zeros((n, L), np.float32)
    y = np.zeros((n, L), np.float32)
    ctx = np.zeros((n, L), bool)
    for i, c in enumerate(b.cutoff):
        sub = np.linspace(0, c - 1, min(c, 48)).round().astype(int)  # the forecaster's context cap
        k = sub.size
        x[i, :k], y[i, :k], ctx[i, :k] = b.x[i, sub], b.y[i, sub], True
        x[i, k:] = m
    with torch.inference_mode():
        lg = net(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(ctx),
                 out_idx=torch.full((n, 1), L - 1))[:, 0]
    probs = torch.softmax(lg, -1).double().numpy()
    return PFNForecast(probs, net.bar.borders.double().numpy(), []), b


@pytest.mark.slow
def test_calibrated_on_held_out_prior_curves(net):
    """The 90% central interval covers 85-95% of held-out prior curves' final values.

    With n = 600 curves a perfectly calibrated model's coverage has a binomial sd of
    sqrt(0.9 * 0.1 / 600) = 0.012, so +-0.05 is 4 sd of sampling noise: the test fails only for
    a model miscalibrated by about 3 points or more. The median must also beat the last observed
    value as a point forecast (the network extrapolates rather than copying).
    """
    fc, b = _prior_forecast(net, 600, seed=11)
    q = fc.model_quantiles(np.array([0.05, 0.5, 0.95]))
    yt = b.y[:, -1]
    cov = np.mean((yt >= q[:, 0]) & (yt <= q[:, 2]))
    assert 0.85 <= cov <= 0.95, cov
    last = b.y[np.arange(len(b)), b.cutoff - 1]
    assert np.mean(np.abs(q[:, 1] - yt)) < np.mean(np.abs(last - yt))
    # the exact density and the CDF agree: the PIT of the truths is roughly uniform
    pit = fc.model_cdf(yt)
    assert 0.4 < np.mean(pit) < 0.6


def test_loss_forecast_in_user_units_is_coherent():
    model = get_model("pfn")
    t = np.arange(1, 31, dtype=float)
    loss = 3.0 * np.exp(-t / 10) + 0.5  # a clean loss curve, still improving at step 30
    f = model.forecast([Curve.of(t, loss)], 100.0, mode="min")
    q05, q50, q95 = f.quantiles([0.05, 0.5, 0.95])[0]
    assert q05 <= q50 <= q95
    assert q50 < loss[-1] + 0.05 and q50 > 0  # no worse than now (to noise), a loss stays > 0
    # P(final <= y) in user units: beating a much better incumbent is unlikely, beating the
    # starting loss is almost certain
    assert f.p_beat(0.05, "min")[0] < 0.05
    assert f.p_beat(loss[0], "min")[0] > 0.95
    assert f.cdf(q50)[0] == pytest.approx(0.5, abs=0.02)


def test_diverged_curve_forecasts_the_worst_end():
    model = get_model("pfn")
    t = np.arange(1, 21, dtype=float)
    v = np.r_[np.linspace(0.7, 0.6, 8), np.full(12, np.nan)]
    f = model.forecast([Curve.of(t, v)], 50.0, mode="min")
    # a run that has been NaN for 12 reports is predicted to stay at (or beyond) its start
    assert f.p_beat(0.6, "min")[0] < 0.2
