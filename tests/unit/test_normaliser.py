"""The normaliser between user units and the forecaster's domain (search/forecast/normalise.py)."""

from __future__ import annotations

import numpy as np
import pytest

from search.forecast.normalise import (
    ValueMap,
    divergent_mask,
    fit_value_map,
    normalise_curve,
    subsample_indices,
)


def test_accuracy_is_identity_and_round_trips():
    v = np.array([0.1, 0.35, 0.6, np.nan, 0.72])
    m = fit_value_map(v, "max")
    assert m == ValueMap(0.0, 1.0, 1.0)
    y = m.forward(v)
    np.testing.assert_allclose(y[[0, 1, 2, 4]], v[[0, 1, 2, 4]])
    assert y[3] == 0.0  # NaN -> worst end
    np.testing.assert_allclose(m.inverse(y[[0, 1, 2, 4]]), v[[0, 1, 2, 4]])


def test_loss_maps_start_to_zero_perfect_to_one_and_round_trips():
    v = np.array([2.3, 1.2, 0.9, 0.7, 0.65])
    m = fit_value_map(v, "min")
    y = m.forward(v)
    assert y[0] == pytest.approx(0.0) and np.all(np.diff(y) > 0) and np.all(y < 1)
    assert float(m.forward(0.0)) == pytest.approx(1.0)
    np.testing.assert_allclose(m.inverse(y), v)
    # any scale: multiplying the loss by 1000 gives the same normalised curve
    np.testing.assert_allclose(fit_value_map(v * 1000, "min").forward(v * 1000), y)


def test_divergent_loss_values_go_to_the_worst_end():
    v = np.array([0.69, 0.6, 0.55, 1e30, np.inf, np.nan, 5e3])
    assert divergent_mask(v).tolist() == [False, False, False, True, True, True, True]
    nc = normalise_curve(np.arange(1, 8), v, 50, "min")
    assert np.all(nc.y[3:] == 0.0)
    assert nc.vmap.worst == pytest.approx(0.69)  # the reference ignores divergent values
    np.testing.assert_allclose(nc.vmap.inverse(nc.y[:3]), v[:3])


def test_huge_first_loss_does_not_become_the_reference():
    v = np.array([1e26, 300.0, 200.0, 150.0])
    m = fit_value_map(v, "min")
    assert m.worst == 300.0
    assert m.forward(1e26) == 0.0


def test_values_worse_than_reference_clip_but_inverse_does_not():
    m = fit_value_map(np.array([1.0, 0.8]), "min")
    assert m.forward(1.5) == 0.0
    assert m.inverse(-0.5) == pytest.approx(1.5)  # mass below 0 means 'worse than the start'
    np.testing.assert_allclose(m.forward_unclipped(1.5), -0.5)


def test_signed_and_unbounded_metrics():
    rew = np.array([-50.0, -20.0, 10.0, 30.0])  # a reward, max
    m = fit_value_map(rew, "max")
    y = m.forward(rew)
    assert y[0] == 0.0 and y[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(m.inverse(y), rew)
    nll = np.array([1.0, -0.5, -1.0])  # a signed loss, min
    m2 = fit_value_map(nll, "min")
    np.testing.assert_allclose(m2.forward(nll), [0.0, 0.375, 0.5])
    np.testing.assert_allclose(m2.inverse(m2.forward(nll)), nll)


def test_bounds_override_and_validation():
    m = fit_value_map(np.array([3.0, 2.0]), "min", bounds=(4.0, 0.0))
    np.testing.assert_allclose(m.forward(np.array([4.0, 2.0, 0.0])), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="wrong way"):
        fit_value_map(np.array([3.0]), "min", bounds=(0.0, 4.0))
    with pytest.raises(ValueError, match="mode"):
        fit_value_map(np.array([3.0]), "down")


def test_all_nan_curve_is_all_worst():
    nc = normalise_curve(np.array([1.0, 2.0]), np.array([np.nan, np.inf]), 10, "min")
    assert np.all(nc.y == 0.0)


def test_steps_map_target_to_horizon_and_subsample_keeps_last():
    steps = np.arange(10, 1010, 10, dtype=float)  # 100 reports every 10 epochs
    nc = normalise_curve(steps, np.linspace(1, 0.5, 100), 2000, "min", max_points=48)
    assert nc.x_target == 100.0
    assert nc.x.size <= 48 and nc.x[-1] == pytest.approx(50.0) and nc.x[0] == pytest.approx(0.5)
    assert np.all(np.diff(nc.x) > 0)
    idx = subsample_indices(1000, 48)
    assert idx[-1] == 999 and idx[0] == 0 and idx.size <= 48
    np.testing.assert_array_equal(subsample_indices(5, 48), np.arange(5))
