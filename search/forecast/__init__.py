"""Learning-curve forecasting: the `CurveModel` seam, the LC-PFN forecaster and its baselines.

``get_model(name)`` builds a model by name: ``"pfn"`` (the shipped LC-PFN, see ``MODEL.md``),
``"parametric"`` (least-squares + MCMC ensemble, Domhan et al. 2015), ``"last-value"`` or
``"pfn-schedule"`` (the PFN told each trial's learning-rate schedule, ``pfn_schedule.py``). torch is
imported only when the PFN is built.
"""

from __future__ import annotations

from search.forecast.base import (
    Curve,
    CurveModel,
    Forecast,
    LastValueModel,
    Mode,
    SampleForecast,
    check_batch,
    check_curve,
)

MODEL_NAMES = ("pfn", "parametric", "last-value", "pfn-schedule")


def get_model(name: str, **kwargs) -> CurveModel:
    """Return a new `CurveModel` by name; ``kwargs`` go to its constructor.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name == "pfn":
        from search.forecast.pfn_model import PFNModel

        return PFNModel(**kwargs)
    if name == "pfn-schedule":  # issue 8: told each trial's learning-rate schedule
        from search.forecast.pfn_schedule import SchedulePFNModel

        return SchedulePFNModel(**kwargs)
    if name == "parametric":
        from search.forecast.parametric import ParametricModel

        return ParametricModel(**kwargs)
    if name == "last-value":
        return LastValueModel(**kwargs)
    raise ValueError(f"unknown curve model {name!r}; known: {list(MODEL_NAMES)}")


__all__ = [
    "MODEL_NAMES",
    "Curve",
    "CurveModel",
    "Forecast",
    "LastValueModel",
    "Mode",
    "SampleForecast",
    "check_batch",
    "check_curve",
    "get_model",
]
