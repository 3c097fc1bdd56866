"""The PFN's batch calibration (search/forecast/pfn_model.py): a temperature chosen by
back-testing the batch's own prefixes, applied to the density of every forecast in the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.forecast import Curve, get_model
from search.forecast import pfn_model as pm
from search.forecast.prior import get_prior


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return get_model("pfn"), get_model("pfn", calibration="none")


def _saturating(n: int, seed: int, noise: float) -> list[Curve]:
    rng = np.random.default_rng(seed)
    t = np.arange(1, 31.0)
    return [Curve.of(t, 0.9 - 0.6 * np.exp(-t / rng.uniform(3, 10)) + rng.normal(0, noise, t.size))
            for _ in range(n)]


def _random_walks(n: int, seed: int) -> list[Curve]:
    rng = np.random.default_rng(seed)
    t = np.arange(1, 31.0)
    return [Curve.of(t, np.clip(0.5 + np.cumsum(rng.normal(0, 0.05, t.size)), 0, 1)) for _ in range(n)]


def test_the_batch_changes_a_forecast_only_through_one_temperature(models):
    cal, raw = models
    curves = _saturating(12, 0, 1e-3) + _random_walks(12, 1)
    f, g = cal.forecast(curves, 100.0), raw.forecast(curves, 100.0)
    assert g.temperature == 1.0 and f.temperature != 1.0
    np.testing.assert_allclose(f._p, pm.temper(g._p, g._b, f.temperature), rtol=1e-9, atol=1e-15)


def test_too_few_backtestable_curves_leave_the_forecast_alone(models):
    cal, raw = models
    curves = _saturating(3, 2, 1e-3) + [Curve.of([1.0, 2.0], [0.2, 0.3])] * 5  # 2 points: no back-test
    f, g = cal.forecast(curves, 100.0), raw.forecast(curves, 100.0)
    assert f.temperature == 1.0
    np.testing.assert_array_equal(f.quantiles([0.05, 0.5, 0.95]), g.quantiles([0.05, 0.5, 0.95]))


def test_smooth_sweeps_are_sharpened_and_rough_ones_widened(models):
    cal, raw = models
    smooth, rough = _saturating(32, 3, 1e-4), _random_walks(32, 4)
    fs, fr = cal.forecast(smooth, 100.0), cal.forecast(rough, 100.0)
    assert fs.temperature < 0.95
    assert fr.temperature > 1.25
    width = lambda fc: np.diff(fc.quantiles([0.05, 0.95]), axis=1)[:, 0]
    assert np.median(width(fs) / width(raw.forecast(smooth, 100.0))) < 1.0
    assert np.median(width(fr) / width(raw.forecast(rough, 100.0))) > 1.0


@pytest.mark.slow
def test_curves_from_the_prior_keep_a_temperature_near_one(models):
    """The network is calibrated on its own prior, so back-tests there should not move T far.

    Measured on 12 batches of 64 prior curves (32 back-tested, so log T is shrunk by 32/48): T in
    0.84..1.12, geometric mean 0.99; the bounds below leave about one grid step (2^(1/8)) either
    side. A sharpening or widening bias of two steps (19%) on every batch fails the first assert.
    """
    cal, _ = models
    prior = get_prior(cal.net.config.prior)
    ts = []
    for seed in range(6):
        b = prior.sample(64, np.random.default_rng([seed, 777]))
        curves = [Curve.of(b.x[i, :c], b.y[i, :c]) for i, c in enumerate(b.cutoff)]
        ts.append(cal.forecast(curves, float(b.y.shape[1]), mode="max").temperature)
    assert 0.85 <= float(np.exp(np.mean(np.log(ts)))) <= 1.15, ts
    assert all(0.75 <= t <= 1.25 for t in ts), ts


def test_temper_is_a_density_power_and_keeps_probabilities():
    b = np.array([0.0, 0.1, 0.3, 0.6, 1.0])
    p = np.array([[0.1, 0.4, 0.3, 0.2]])
    q = pm.temper(p, b, 0.5)
    d = (p / np.diff(b)) ** 2 * np.diff(b)
    np.testing.assert_allclose(q, d / d.sum())
    assert pm.temper(p, b, 1.0) is p
    # a wider temperature flattens the density towards the bucket widths
    flat = pm.temper(p, b, 1e6)
    np.testing.assert_allclose(flat, np.diff(b)[None] / 1.0, atol=1e-5)


def test_temper_keeps_the_worst_end_point_mass():
    """Buckets starting below 0 hold the normaliser's worst end (diverged or collapsed runs, exactly
    0): their mass is kept, and the density above it is tempered. Tempering it as a density would
    move mass into a narrow bucket there when T < 1 (a sharpened forecast more likely to collapse)."""
    b = np.array([-0.2, -0.0005, 0.0005, 0.3, 0.6, 1.0])  # a narrow bucket around 0
    p = np.array([[0.05, 0.05, 0.4, 0.3, 0.2]])
    q = pm.temper(p, b, 0.5)
    assert pm.worst_end_buckets(b) == 2
    np.testing.assert_allclose(q[0, :2], p[0, :2])
    d = (p[0, 2:] / np.diff(b)[2:]) ** 2 * np.diff(b)[2:]
    np.testing.assert_allclose(q[0, 2:], 0.9 * d / d.sum())
    dense = (p[0] / np.diff(b)) ** 2 * np.diff(b)
    assert dense[1] / dense.sum() > 0.5  # what density tempering would have done to the narrow bucket


def test_bucket_cdf_matches_the_forecast_cdf(models):
    _, raw = models
    fc = raw.forecast(_saturating(5, 5, 1e-3), 100.0)
    y = np.array([-0.3, 0.0, 0.5, 0.95, 1.3])
    np.testing.assert_allclose((fc._p * pm._bucket_cdf(fc._b, y)).sum(1), fc.model_cdf(y), atol=1e-12)


def test_unknown_calibration_is_named():
    with pytest.raises(ValueError, match="calibration must be one of .*'always'"):
        get_model("pfn", calibration="always")


def test_the_scheduler_gets_the_per_curve_forecaster(models):
    """A stopper's batches are the few trials that just reported; its "pfn" is uncalibrated, so a
    trial's forecast (and its stop) never depends on which others reported beside it."""
    from search.stopper import resolve_model

    m = resolve_model("pfn")
    assert m.calibration == "none"
    curves = _saturating(8, 6, 1e-4)
    np.testing.assert_array_equal(m.forecast(curves, 100.0).quantiles([0.05, 0.95]),
                                  models[1].forecast(curves, 100.0).quantiles([0.05, 0.95]))
    assert models[0].forecast(curves, 100.0).temperature != 1.0  # the batch would have moved it
    assert resolve_model(models[0]) is models[0]  # an instance is used as given
    assert resolve_model("pfn", calibration="batch").calibration == "batch"  # asked for by name
    with pytest.raises(ValueError, match="need a model name"):
        resolve_model(models[0], weights="x.pt")
