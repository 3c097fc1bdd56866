"""The contract every `CurveModel` passes (search/forecast/base.py).

A new implementation subclasses ``CurveModelContract`` and provides ``make_model``.
"""

from __future__ import annotations

import numpy as np
import pytest

from search.forecast import Curve, CurveModel, LastValueModel, get_model

QS = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


def _curves() -> list[Curve]:
    t = np.arange(1, 21, dtype=float)
    acc = 0.9 - 0.7 * np.exp(-t / 6)
    loss = 2.0 * np.exp(-t / 8) + 0.3
    return [
        Curve.of(t, acc),
        Curve.of(t[:5], acc[:5]),
        Curve.of([1.0], [0.4]),
        Curve.of([2.0, 4.0, 10.0], [0.2, 0.3, 0.5]),  # irregular reports
        Curve.of(t, 0.5 + 0.0 * t),  # flat
    ], [Curve.of(t, loss), Curve.of(t[:3], loss[:3]), Curve.of(t * 10, loss)]


@pytest.fixture(scope="class")
def model(request) -> CurveModel:
    """One model per test class, built by the class's ``make_model``."""
    return request.cls().make_model()


class CurveModelContract:
    """Shapes, monotone quantiles, CDF range, finite output, clear errors."""

    def make_model(self) -> CurveModel:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.mark.parametrize("mode", ["max", "min"])
    def test_shapes_monotone_finite(self, model, mode):
        acc, loss = _curves()
        curves = acc if mode == "max" else loss
        target = 300.0 if mode == "min" else 50.0
        f = model.forecast(curves, target, mode=mode)
        n = len(curves)
        assert len(f) == n
        q = f.quantiles(QS)
        assert q.shape == (n, QS.size)
        assert np.all(np.isfinite(q))
        assert np.all(np.diff(q, axis=1) >= -1e-9)
        assert f.mean.shape == (n,) and np.all(np.isfinite(f.mean))
        med = q[:, 2]
        c = f.cdf(med)
        assert c.shape == (n,) and np.all((c >= 0) & (c <= 1))
        lo, hi = f.cdf(q[:, 0] - 1e6), f.cdf(q[:, -1] + 1e6)
        assert np.all(lo <= c + 1e-12) and np.all(c <= hi + 1e-12)
        assert np.all(hi >= 0.95 - 1e-9)
        p = f.p_beat(med, mode)
        assert np.all((p >= 0) & (p <= 1))

    def test_per_curve_targets(self, model):
        acc, _ = _curves()
        f = model.forecast(acc, [30.0, 40.0, 5.0, 20.0, 25.0], mode="max")
        assert f.quantiles([0.5]).shape == (len(acc), 1)

    def test_target_equal_last_step_ok(self, model):
        f = model.forecast([Curve.of([1, 2, 3], [0.1, 0.2, 0.3])], 3.0)
        assert np.isfinite(f.mean).all()

    def test_nan_and_divergent_values_do_not_crash(self, model):
        t = np.arange(1, 11, dtype=float)
        v = np.r_[1.0, 0.8, 0.7, np.nan, 1e30, np.inf, 0.6, 0.5, np.nan, 0.55]
        f = model.forecast([Curve.of(t, v), Curve.of(t[:2], [np.nan, np.nan])], 40.0, mode="min")
        c = f.cdf(np.array([0.5, 0.5]))
        assert np.all((c >= 0) & (c <= 1))
        assert np.all(np.isfinite(f.quantiles([0.5])[0]))

    def test_empty_batch(self, model):
        with pytest.raises(ValueError, match="empty batch"):
            model.forecast([], 10.0)

    def test_empty_curve(self, model):
        with pytest.raises(ValueError, match="empty curve"):
            model.forecast([Curve(np.array([]), np.array([]))], 10.0)

    def test_backwards_steps(self, model):
        with pytest.raises(ValueError, match="strictly increase"):
            model.forecast([Curve(np.array([1.0, 3.0, 2.0]), np.array([0.1, 0.2, 0.3]))], 10.0)

    def test_target_before_last_step(self, model):
        with pytest.raises(ValueError, match="target_step"):
            model.forecast([Curve.of([1, 2, 3], [0.1, 0.2, 0.3])], 2.0)

    def test_bad_mode(self, model):
        with pytest.raises(ValueError, match="mode"):
            model.forecast([Curve.of([1, 2, 3], [0.1, 0.2, 0.3])], 5.0, mode="maximise")


class TestLastValueContract(CurveModelContract):
    def make_model(self):
        return LastValueModel()


class TestPFNContract(CurveModelContract):
    def make_model(self):
        return get_model("pfn")

    def test_batch_invariance(self):
        """Without the batch calibration a curve's forecast does not depend on the other curves in
        the batch (padding, masks); with it, only through one temperature
        (tests/unit/test_forecast_calibration.py)."""
        model = get_model("pfn", calibration="none")
        acc, _ = _curves()
        together = model.forecast(acc, 50.0).quantiles(QS)
        alone = np.vstack([model.forecast([c], 50.0).quantiles(QS) for c in acc])
        np.testing.assert_allclose(together, alone, atol=2e-4)


class TestParametricContract(CurveModelContract):
    def make_model(self):
        return get_model("parametric", n_walkers=10, n_steps=20, n_samples=200,
                         families=["pow3", "exp3"], seed=0)


def test_get_model_unknown_name():
    with pytest.raises(ValueError, match="unknown curve model 'nope'"):
        get_model("nope")
