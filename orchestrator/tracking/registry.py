"""Process-wide registry: sweep key -> live :class:`Tracker`.

Tune pickles its callbacks and scheduler into the experiment folder (``tuner.pkl``). Objects
that must reach the tracker (the tracking callback, the scheduler's verdict sink) therefore hold
only a *key* (the sweep's experiment path) and look the tracker up here. ``sweepcast run``
registers its tracker before ``Tuner.fit``; ``sweepcast resume`` restores a tracker from its
saved state and registers it under the same key before ``Tuner.restore(...).fit()``.
"""

from __future__ import annotations

import threading

from orchestrator.tracking.base import Tracker

_lock = threading.Lock()
_trackers: dict[str, Tracker] = {}


def register_tracker(key: str, tracker: Tracker) -> None:
    """Make ``tracker`` the one that objects holding ``key`` report to (replaces any)."""
    with _lock:
        _trackers[str(key)] = tracker


def unregister_tracker(key: str) -> None:
    with _lock:
        _trackers.pop(str(key), None)


def lookup_tracker(key: str) -> Tracker | None:
    with _lock:
        return _trackers.get(str(key))
