"""SchedulePFNModel: the PFN forecaster told each trial's learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.forecast.base import Curve
from search.forecast.pfn import PFN, PFNConfig, make_borders, save_pfn
from search.forecast.pfn_schedule import SchedulePFNModel, curve_features
from search.schedule_stopper import ScheduledCurve
from search.schedules import lr_per_step, schedule_features


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("w")
    net = PFN(PFNConfig(emsize=16, layers=1, nhead=2, n_buckets=50, n_covariates=3),
              borders=make_borders(np.random.default_rng(0).random(2000), 50))
    save_pfn(net, d, "tiny")
    return SchedulePFNModel(d / "tiny.pt")


def _curves(rng):
    out = []
    for k in (2, 9, 30, 70):
        s = np.arange(1, k + 1, dtype=np.float64)
        out.append(Curve.of(s, 2.3 * np.exp(-0.05 * s) + 0.01 * rng.standard_normal(k)))
    return out


def test_curve_features_at_steps_and_target():
    lr = lr_per_step({"name": "cosine"}, 50)
    f = curve_features(lr, np.array([1.0, 10.0, 20.0]), 50.0)
    full = schedule_features(lr)
    np.testing.assert_allclose(f, full[[0, 9, 19, 49]])
    # a forecast for an earlier step sees the schedule cut there (the target is the model's end)
    g = curve_features(lr, np.array([5.0]), 25.0)
    np.testing.assert_allclose(g[-1], schedule_features(lr[:25])[-1])
    np.testing.assert_allclose(curve_features(None, np.array([2.0]), 10.0)[:, 0], 1.0)
    with pytest.raises(ValueError, match="gives 20 steps but the forecast is for step 50"):
        curve_features(lr[:20], np.array([1.0]), 50.0)


def test_contract_shapes_monotone_quantiles_and_cdf(tiny):
    rng = np.random.default_rng(0)
    curves = [ScheduledCurve(c.steps, c.values, lr_per_step({"name": "step", "step_size": 30}, 100))
              for c in _curves(rng)]
    for mode in ("min", "max"):
        fc = tiny.forecast(curves, 100, mode=mode)
        q = fc.quantiles([0.05, 0.25, 0.5, 0.75, 0.95])
        assert q.shape == (4, 5) and np.all(np.isfinite(q)) and np.all(np.diff(q, axis=1) >= -1e-9)
        c = fc.cdf(q[:, 2])
        assert np.all((c >= 0) & (c <= 1)) and np.allclose(c, 0.5, atol=0.02)
        assert np.all(np.isfinite(fc.mean))


def test_schedule_input_reaches_the_network_and_is_checked(tiny):
    rng = np.random.default_rng(1)
    curves = _curves(rng)
    cos = lr_per_step({"name": "cosine"}, 100)
    a = tiny.forecast(curves, 100, mode="min", schedules=[cos] * 4).quantiles([0.5])
    b = tiny.forecast(curves, 100, mode="min", schedules=[None] * 4).quantiles([0.5])
    c = tiny.forecast([ScheduledCurve(x.steps, x.values, cos) for x in curves], 100,
                      mode="min").quantiles([0.5])
    assert not np.allclose(a, b)  # an untrained covariate encoder still moves the forecast
    np.testing.assert_allclose(a, c)  # ScheduledCurve.lr and schedules= are the same input
    with pytest.raises(ValueError, match=r"curves\[0\]: the schedule gives 10 steps"):
        tiny.forecast(curves, 100, schedules=[np.ones(10)] + [None] * 3)
    with pytest.raises(ValueError, match="one entry per curve"):
        tiny.forecast(curves, 100, schedules=[None])
    with pytest.raises(ValueError, match="empty curve|at least one curve"):
        tiny.forecast([], 100)


def test_refuses_weights_without_covariates(tmp_path):
    save_pfn(PFN(PFNConfig(emsize=16, layers=1, nhead=2, n_buckets=20)), tmp_path, "free")
    with pytest.raises(ValueError, match="needs 3"):
        SchedulePFNModel(tmp_path / "free.pt")


def test_shipped_weights_load_offline_and_follow_the_schedule():
    """The shipped schedule-aware model loads with weights_only and, for the same observed
    prefix, expects more late improvement when the rate is about to anneal than when it stays
    constant (the effect it was trained to know)."""
    from search.forecast import get_model
    from search.forecast.pfn_schedule import shipped_weights

    pt, js = shipped_weights("pfn_schedule")
    assert pt.is_file() and js.is_file()
    model = get_model("pfn-schedule")
    assert model.net.config.n_covariates == 3
    s = np.arange(1.0, 21.0)
    prefix = 0.3 + 0.4 * (1 - np.exp(-s / 6.0))  # an accuracy that has levelled off by epoch 20
    curves = [Curve.of(s, prefix)] * 3
    scheds = [np.ones(50), lr_per_step({"name": "cosine"}, 50),
              lr_per_step({"name": "step", "milestones": [30], "gamma": 0.1}, 50)]
    med = model.forecast(curves, 50, mode="max", schedules=scheds).quantiles([0.5])[:, 0]
    assert med[1] > med[0] and med[2] > med[0]
