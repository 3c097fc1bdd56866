"""Properties of the curve priors (search/forecast/prior.py)."""

from __future__ import annotations

import numpy as np
import pytest

from search.forecast.prior import (
    ExtendedPrior,
    PriorBatch,
    available_priors,
    get_prior,
    register_prior,
    sample_extended_noiseless,
    sample_lcpfn_noiseless,
)


@pytest.mark.parametrize("name", ["lcpfn", "extended", "sweepcast", "sweepcast-v3", "sweepcast-v4"])
def test_shapes_cutoffs_and_determinism(name):
    p = get_prior(name)
    a = p.sample(64, np.random.default_rng(7))
    b = p.sample(64, np.random.default_rng(7))
    c = p.sample(64, np.random.default_rng(8))
    assert isinstance(a, PriorBatch) and len(a) == 64
    assert a.x.shape == a.y.shape == (64, p.horizon)
    np.testing.assert_array_equal(a.x[0], np.arange(1, p.horizon + 1))
    assert a.cutoff.shape == (64,)
    assert a.cutoff.min() >= 1 and a.cutoff.max() <= p.horizon - 1
    assert a.cov is None and p.n_covariates == 0
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.cutoff, b.cutoff)
    assert not np.array_equal(a.y, c.y)
    assert np.all(np.isfinite(a.y))


def test_lcpfn_rejection_rule_holds_on_noiseless_curves():
    f = sample_lcpfn_noiseless(500, np.random.default_rng(0))
    assert np.all((f >= 0) & (f <= 1))
    assert np.all(f[:, -1] > f[:, 0])  # net improvement; dips are allowed


def test_lcpfn_noise_level_matches_paper():
    """ln sigma ~ N(-4, 1): the median residual scale is about exp(-4) = 0.018."""
    rng = np.random.default_rng(1)
    b = get_prior("lcpfn").sample(2000, rng)
    # the noiseless curve is smooth: differences of neighbours are dominated by noise
    sd = np.median(np.std(np.diff(b.y[:, 60:], axis=1), axis=1) / np.sqrt(2))
    assert 0.01 < sd < 0.035


def test_noisy_values_mostly_in_unit_interval():
    y = get_prior("sweepcast").sample(1000, np.random.default_rng(2)).y
    assert np.mean((y >= -0.05) & (y <= 1.05)) > 0.98


def test_extended_shapes_are_monotone_ish_and_include_real_run_behaviours():
    f, collapsed = sample_extended_noiseless(4000, np.random.default_rng(3))
    assert np.all((f >= 0) & (f <= 1))
    ok = ~collapsed.any(axis=1)
    net = f[ok, -1] - f[ok, 0]
    assert np.mean(net >= -1e-12) > 0.85  # mostly improving; overfitting runs may end lower
    assert 0.04 < collapsed.any(axis=1).mean() < 0.12  # divergent runs exist
    late = f[ok, -1] - f[ok, 49]
    lc = sample_lcpfn_noiseless(4000, np.random.default_rng(3))
    # the extension has more curves still improving in the second half than the LC-PFN prior
    assert np.mean(late > 0.05) > 2 * np.mean(lc[:, -1] - lc[:, 49] > 0.05)


def test_collapsed_points_are_exactly_zero_in_the_noisy_batch():
    b = get_prior("extended").sample(2000, np.random.default_rng(4))
    zero_tail = (b.y[:, -5:] == 0).all(axis=1)
    assert zero_tail.mean() > 0.03


def test_registry():
    assert {"lcpfn", "extended", "sweepcast"} <= set(available_priors())
    with pytest.raises(ValueError, match="unknown prior 'nope'"):
        get_prior("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_prior("lcpfn", lambda: get_prior("lcpfn"))
    with pytest.raises(ValueError, match="positive int"):
        get_prior("lcpfn").sample(0, np.random.default_rng(0))


def test_v2_adds_nearly_noiseless_curves_and_leaves_extended_unchanged():
    def resid_sd(y):
        return np.median(np.abs(np.diff(y[:, 60:], n=2, axis=1)), axis=1)

    a = get_prior("extended").sample(2000, np.random.default_rng(5))
    b = get_prior("extended-v2").sample(2000, np.random.default_rng(5))
    live = lambda batch: batch.y[:, -1] > 0
    quiet_a = np.mean(resid_sd(a.y[live(a)]) < 2e-3)
    quiet_b = np.mean(resid_sd(b.y[live(b)]) < 2e-3)
    assert quiet_b > quiet_a + 0.15
    # the v1 sampler is untouched by the option (same draws for the same generator state)
    np.testing.assert_array_equal(a.y, get_prior("extended").sample(2000, np.random.default_rng(5)).y)
    assert get_prior("sweepcast-v2").name == "sweepcast-v2"


def test_v4_late_gains_follow_progress_and_declines_are_mostly_small():
    """``"extended-v4"``'s options take the same draws as the earlier sampler, so curves pair up
    one to one: scaling a late gain by progress only lowers a curve, a smaller decline only
    raises it, and a run stuck at its start gets no late gain at all."""
    n, m = 4000, 100
    base, _ = sample_extended_noiseless(n, np.random.default_rng(3), m)
    prog, _ = sample_extended_noiseless(n, np.random.default_rng(3), m, gain_by_progress=True)
    mild, _ = sample_extended_noiseless(n, np.random.default_rng(3), m, drop_power=2.0)
    assert np.all(prog <= base + 1e-12) and np.any(prog < base - 1e-3)
    assert np.all(mild >= base - 1e-12) and np.any(mild > base + 1e-3)
    # runs that have barely moved by the middle of training: v3 late gains lift some of them
    # well above their start, v4 far fewer (the progress factor is ~0 for them)
    stuck = (base[:, m // 2] - base[:, 0] < 0.01)
    lift_base = np.mean(base[stuck, -1] - base[stuck, m // 2] > 0.05)
    lift_prog = np.mean(prog[stuck, -1] - prog[stuck, m // 2] > 0.05)
    assert stuck.sum() > 100 and lift_prog < 0.5 * lift_base
    with pytest.raises(ValueError, match="drop_power must be a finite number > 0, got 0"):
        ExtendedPrior(drop_power=0)
    p = get_prior("sweepcast-v4")
    assert p.name == "sweepcast-v4" and p.components[1].name == "extended-v4"
    assert (p.components[1].gain_by_progress, p.components[1].drop_power) == (True, 2.0)
