"""Tracking: the ``Tracker`` seam and its implementations.

``Tracker``/``InMemoryTracker`` import no mlflow; ``MlflowTracker`` (the only place mlflow is
imported in sweepcast) is loaded on first access, so ``sweepcast validate`` stays light.
"""

from __future__ import annotations

from typing import Any

from orchestrator.tracking.base import (
    TRIAL_STATUSES,
    Tracker,
    VerdictRecord,
    mask_uri,
    normalise_verdict,
)
from orchestrator.tracking.memory import InMemoryTracker

__all__ = [
    "TRIAL_STATUSES",
    "InMemoryTracker",
    "MlflowTracker",
    "Tracker",
    "TrackingUnavailableError",
    "VerdictRecord",
    "default_tracking_uri",
    "mask_uri",
    "normalise_verdict",
]


def __getattr__(name: str) -> Any:
    if name in ("MlflowTracker", "TrackingUnavailableError", "default_tracking_uri"):
        from orchestrator.tracking import mlflow_tracker

        return getattr(mlflow_tracker, name)
    raise AttributeError(name)
