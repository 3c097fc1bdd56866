"""The Tracker lifecycle contract, run on the in-memory tracker (the MLflow one runs it in
``tests/integration/test_sweep_tracking.py`` against a real server)."""

from __future__ import annotations

from typing import Any

from tracker_contract import TrackerContract

from orchestrator.tracking import InMemoryTracker


def _sorted_run(run: dict[str, Any]) -> dict[str, Any]:
    return {
        **run,
        "metrics": {k: sorted(v, key=lambda p: p[0]) for k, v in run["metrics"].items()},
        "artifacts": set(run["artifacts"]),
    }


class TestInMemoryTrackerContract(TrackerContract):
    def make_tracker(self) -> InMemoryTracker:
        return InMemoryTracker()

    def read_back(self, tracker: InMemoryTracker) -> dict[str, Any]:  # type: ignore[override]
        return {
            "parent": _sorted_run(tracker.parent),
            "trials": {t: _sorted_run(r) for t, r in tracker.trials.items()},
            "n_runs": 1 + len(tracker.trials),
        }

    def artifact_text(self, tracker, trial_id, name) -> str:  # type: ignore[override]
        run = tracker.parent if trial_id is None else tracker.trials[trial_id]
        return "".join(v.decode() for k, v in run["artifacts"].items() if name in k)
