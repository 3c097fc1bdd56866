"""The schedule-conditioned prior (search.forecast.prior_schedule)."""

from __future__ import annotations

import numpy as np
import pytest

from search.forecast.prior import get_prior
from search.forecast.prior_schedule import (
    SCHEDULE_KINDS,
    SchedulePrior,
    sample_law_curves,
    sample_schedules,
)
from search.schedules import lr_per_step, schedule_features


def test_batch_shapes_covariates_and_cutoffs():
    p = SchedulePrior()
    b = p.sample(64, np.random.default_rng(0))
    m = p.horizon
    assert p.n_covariates == 3 and b.cov is not None
    assert b.x.shape == b.y.shape == (64, m) and b.cov.shape == (64, m, 3)
    np.testing.assert_array_equal(b.x[0], np.arange(1, m + 1))
    assert b.cutoff.min() >= 1 and b.cutoff.max() <= m - 1
    assert np.all(np.isfinite(b.y)) and np.all(np.isfinite(b.cov))
    assert -0.3 < b.y.min() and b.y.max() < 1.3
    assert np.all((b.cov[..., 0] >= 0) & (b.cov[..., 0] <= 1))
    assert np.all((b.cov[..., 1] > 0) & (b.cov[..., 1] <= 1 + 1e-12))
    assert np.all((b.cov[..., 2] >= -1) & (b.cov[..., 2] <= 1))


def test_same_seed_same_batch_other_seed_other_batch():
    p = SchedulePrior()
    a = p.sample(32, np.random.default_rng(7))
    b = p.sample(32, np.random.default_rng(7))
    c = p.sample(32, np.random.default_rng(8))
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.cov, b.cov)
    np.testing.assert_array_equal(a.cutoff, b.cutoff)
    assert not np.array_equal(a.y, c.y)


def test_registered_under_schedule():
    p = get_prior("schedule")
    assert isinstance(p, SchedulePrior) and p.n_covariates == 3


def test_schedule_v3_has_quieter_law_curves_and_the_v3_base():
    p = get_prior("schedule-v3")
    assert isinstance(p, SchedulePrior) and p.name == "schedule-v3" and p.base.name == "sweepcast-v3"
    lr, _ = sample_schedules(400, 100, np.random.default_rng(4))
    lr[:] = 1.0  # constant rate: the noise is sigma itself
    quiet = sample_law_curves(lr, np.random.default_rng(5), low_noise=1.0, quiet_lo=1e-5)
    loud = sample_law_curves(lr, np.random.default_rng(5), low_noise=0.0)
    rough = lambda y: np.median(np.abs(np.diff(y, 2, axis=1)), axis=1)
    assert np.median(rough(quiet)) < 0.2 * np.median(rough(loud))
    with pytest.raises(ValueError, match="quiet_lo"):
        SchedulePrior(quiet_lo=0.01)
    with pytest.raises(ValueError, match="low_noise"):
        SchedulePrior(low_noise=1.5)


def test_sampled_schedules_cover_every_kind_with_peak_one():
    lr, kinds = sample_schedules(600, 100, np.random.default_rng(1))
    assert set(kinds) == set(SCHEDULE_KINDS)
    assert lr.shape == (600, 100) and np.all(np.isfinite(lr)) and np.all(lr >= 0)
    np.testing.assert_allclose(lr.max(axis=1), 1.0)
    assert np.all(lr[[k == "constant" for k in kinds]][:, -1] == 1.0)


def test_mixture_shares_control_the_covariates():
    const = schedule_features(np.ones(100))
    only_free = SchedulePrior(weights=(0.0, 1.0, 0.0)).sample(40, np.random.default_rng(2))
    np.testing.assert_allclose(only_free.cov, np.broadcast_to(const, (40, 100, 3)))
    only_law = SchedulePrior(weights=(1.0, 0.0, 0.0)).sample(200, np.random.default_rng(2))
    decaying = np.mean(only_law.cov[:, -1, 0] < 0.9)
    assert decaying > 0.5
    with pytest.raises(ValueError, match="weights must be 3 non-negative shares"):
        SchedulePrior(weights=(1.0, -1.0, 0.0))


def test_annealing_makes_late_gains_that_a_constant_rate_does_not():
    """Same curve parameters (same generator state), constant vs cosine schedule: the cosine
    curve gains more over the last 40% of training, and its final value is better on average,
    because annealing adds a bonus the constant run never gets (Tissue et al. 2024)."""
    n, m = 3000, 100
    const = np.ones((n, m))
    cos = np.broadcast_to(lr_per_step({"name": "cosine"}, m), (n, m)).copy()
    yc = sample_law_curves(const, np.random.default_rng(3))
    ya = sample_law_curves(cos, np.random.default_rng(3))
    late_c = np.mean(yc[:, -5:].mean(1) - yc[:, 55:60].mean(1))
    late_a = np.mean(ya[:, -5:].mean(1) - ya[:, 55:60].mean(1))
    assert late_a > late_c + 0.03
    assert np.mean(ya[:, -5:].mean(1) > yc[:, -5:].mean(1)) > 0.6
    # a step decay at 70% produces its jump after the step, not before
    step = np.broadcast_to(lr_per_step({"name": "step", "milestones": [70], "gamma": 0.1}, m),
                           (n, m)).copy()
    ys = sample_law_curves(step, np.random.default_rng(3))
    before = np.mean(ys[:, 60:69].mean(1) - yc[:, 60:69].mean(1))
    after = np.mean(ys[:, -5:].mean(1) - yc[:, -5:].mean(1))
    assert abs(before) < 0.01 and after > 0.05


def test_schedule_v4_weakens_the_annealing_bonus_and_overfits_more():
    p = get_prior("schedule-v4")
    assert isinstance(p, SchedulePrior) and p.name == "schedule-v4" and p.base.name == "sweepcast-v3"
    assert (p.weak_anneal, p.overfit) == (0.3, 0.2)
    m = 100
    t = np.arange(m)
    lr = np.broadcast_to(0.5 * (1 + np.cos(np.pi * t / (m - 1))), (3000, m)).copy()  # cosine to 0
    # the gain of the last 30% of a cosine run is mostly the annealing bonus
    def late_gain(**kw):
        y = sample_law_curves(lr, np.random.default_rng(6), low_noise=1.0, quiet_lo=1e-5, **kw)
        return np.mean(y[:, -1] - y[:, int(0.7 * m)])
    strong, weak = late_gain(), late_gain(weak_anneal=1.0)
    assert weak < 0.6 * strong
    # overfitting: the final value is below the curve's peak by more than the noise
    def declined(**kw):
        y = sample_law_curves(np.ones((3000, m)), np.random.default_rng(6), low_noise=1.0,
                              quiet_lo=1e-5, **kw)
        return np.mean(y.max(axis=1) - y[:, -1] > 0.02)
    assert declined(overfit=0.5) > declined() + 0.1
    with pytest.raises(ValueError, match="weak_anneal must be in"):
        SchedulePrior(weak_anneal=1.2)
    with pytest.raises(ValueError, match="overfit must be in"):
        SchedulePrior(overfit=-0.1)
