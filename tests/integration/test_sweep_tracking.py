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


def test_real_server_outage_buffers_and_replays_every_point(tmp_path: Path, caplog) -> None:
    """Stop the real server mid-stream, keep logging (spilling to disk), restart it: no loss."""
    import logging
    import time

    from servers import free_port, start_mlflow_server, stop_mlflow_server

    from orchestrator.tracking import MlflowTracker

    caplog.set_level(logging.WARNING, logger="sweepcast.tracking")
    root, port = tmp_path / "server", free_port()
    proc, uri = start_mlflow_server(root, port)
    try:
        t = MlflowTracker(uri, experiment="outage", spill_dir=tmp_path / "spill",
                          max_buffer_points=40, linger_s=0.05, max_backoff_s=1.0)
        t.start_sweep("outage", {})
        t.start_trial("x", {"lr": 0.1})
        for step in range(1, 21):
            t.log_metrics("x", step, {"loss": 1.0 / step})
        assert t.flush(60)
        stop_mlflow_server(proc)
        t0 = time.perf_counter()
        for step in range(21, 221):  # 200 points while the server is down
            t.log_metrics("x", step, {"loss": 1.0 / step})
        assert time.perf_counter() - t0 < 5.0  # never blocked on the dead server
        t.end_trial("x", "completed")
        assert not t.flush(2.0)
        assert (tmp_path / "spill" / "tracking_spill.jsonl").stat().st_size > 0
        proc, uri2 = start_mlflow_server(root, port)  # same store, same port
        assert uri2 == uri
        assert t.flush(120)
        rec = read_mlflow(uri, t.experiment_id, t.parent_run_id)
        pts = rec["trials"]["x"]["metrics"]["loss"]
        assert [s for s, _ in pts] == list(range(1, 221))
        assert rec["trials"]["x"]["status"] == "FINISHED"
        msgs = " ".join(r.getMessage() for r in caplog.records)
        assert "unreachable" in msgs and "reachable again" in msgs and "spilling" in msgs
        t.close()
    finally:
        stop_mlflow_server(proc)
