"""benchmarks/forecast.py: per-curve scores and the cell means built from them."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.forecast import P_FLOOR, H, parse_cells, score, score_curves
from search.forecast import Curve, get_model


def _cases():
    steps = np.arange(1.0, 11.0)
    curves = [Curve.of(steps, 0.5 + 0.03 * steps), Curve.of(steps, 0.9 - 0.0 * steps)]
    return curves, np.array([0.9, 0.9])  # the second curve's last value is its final value


def test_per_curve_scores_and_their_means():
    curves, finals = _cases()
    fc = get_model("last-value").forecast(curves, [20.0, 20.0], mode="max")
    per = score_curves(fc, curves, finals, "max")
    assert per["covered"].tolist() == [False, True]
    assert per["loglik"][0] == pytest.approx(np.log(P_FLOOR / H))  # a point mass off the truth
    assert per["loglik"][1] > per["loglik"][0]
    assert np.all(per["q05"] <= per["q50"]) and np.all(per["q50"] <= per["q95"])
    cell = score(fc, curves, finals, "max")
    assert cell["n"] == 2 and cell["coverage90"] == 0.5
    assert cell["loglik"] == pytest.approx(per["loglik"].mean())
    assert cell["mae"] == pytest.approx(per["abs_err"].mean())


def test_per_curve_cells_are_checked():
    assert parse_cells(["a:b:0.2", "t:0.8"]) == [("a:b", 0.2), ("t", 0.8)]
    for bad in ("t:0.3", "t", ":0.2", "t:x"):
        with pytest.raises(SystemExit, match="TASK:CUTOFF"):
            parse_cells([bad])


def test_cells_carry_the_batch_temperature_of_models_that_have_one():
    """The PFN's batch calibration picks one temperature per batch; a cell records its mean
    (what the per-cell temperature analysis in BENCHMARKS.md reads); other models have none."""
    from benchmarks.forecast import cell_scores

    rng = np.random.default_rng(0)
    steps = np.arange(1.0, 21.0)
    curves = [Curve.of(steps, 0.5 + 0.3 * (1 - np.exp(-steps / (3 + i))) + 0.002 * rng.standard_normal(20))
              for i in range(12)]
    finals, targets = np.full(12, 0.79), np.full(12, 40.0)
    pfn = get_model("pfn")
    cell = cell_scores(pfn, curves, finals, targets, "max")
    want = pfn.forecast(curves, list(targets), mode="max").temperature
    assert cell["temperature"] == pytest.approx(want) and 0.5 <= cell["temperature"] <= 2.0
    assert "temperature" not in cell_scores(get_model("last-value"), curves, finals, targets, "max")
