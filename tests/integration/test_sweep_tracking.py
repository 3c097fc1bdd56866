"""The MLflow tracker against a real ``mlflow server``: the Tracker contract, and an outage.

The server is the session's ``mlflow_server`` fixture (127.0.0.1, random port, SQLite store);
each test works in its own experiment.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from tracker_contract import TrackerContract

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def read_mlflow(uri: str, experiment_id: str, parent_run_id: str) -> dict[str, Any]:
    """Everything the server holds for one sweep, in the contract's common shape."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    runs = c.search_runs([experiment_id], max_results=1000)

    def artifacts(run_id: str, path: str | None = None) -> set[str]:
        out: set[str] = set()
        for f in c.list_artifacts(run_id, path):
            out |= artifacts(run_id, f.path) if f.is_dir else {f.path}
        return out

    def shape(r) -> dict[str, Any]:
        metrics = {
            k: sorted(((m.step, m.value) for m in c.get_metric_history(r.info.run_id, k)),
                      key=lambda p: p[0])
            for k in r.data.metrics
        }
        return {
            "run_id": r.info.run_id,
            "params": dict(r.data.params),
            "tags": dict(r.data.tags),
            "metrics": metrics,
            "artifacts": artifacts(r.info.run_id),
            "status": r.info.status,
        }

    parent = next(shape(r) for r in runs if r.info.run_id == parent_run_id)
    trials = {
        r.data.tags["sweepcast.trial_id"]: shape(r)
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent_run_id
    }
    return {"parent": parent, "trials": trials, "n_runs": len(runs)}


class TestMlflowTrackerContract(TrackerContract):
    @pytest.fixture(autouse=True)
    def _server(self, mlflow_server: str, tmp_path: Path) -> None:
        self.uri = mlflow_server
        self.experiment = f"contract-{uuid.uuid4().hex[:8]}"
        self.spill = tmp_path / "spill"

    def make_tracker(self):
        from orchestrator.tracking import MlflowTracker

        return MlflowTracker(
            self.uri, experiment=self.experiment, spill_dir=self.spill, linger_s=0.05
        )

    def read_back(self, tracker) -> dict[str, Any]:
        return read_mlflow(self.uri, tracker.experiment_id, tracker.parent_run_id)

    def artifact_text(self, tracker, trial_id, name) -> str:
        from mlflow import MlflowClient

        c = MlflowClient(tracking_uri=self.uri)
        run_id = tracker.parent_run_id if trial_id is None else tracker.trial_run_id(trial_id)
        local = c.download_artifacts(run_id, name, str(self.spill / "dl" / uuid.uuid4().hex))
        return Path(local).read_text()
