"""The MLflow tracker's batching, chunking, retry, buffering and spill logic, with a fake client.

The fake stands in for ``MlflowClient`` (httpx-style: a small transport double); it can be
"down" (raises what MLflow raises for a refused connection) or reject calls (a 400). The real
server is exercised in ``tests/integration/test_sweep_tracking.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.tracking.buffer import SpillQueue
from orchestrator.tracking.mlflow_tracker import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
    MlflowTracker,
    plan_units,
)

URI = "http://alice:hunter2-secret@mlflow.internal:5000"


class FakeClient:
    """Records calls like an MLflow server would (metric points de-duplicated)."""

    def __init__(self) -> None:
        self.down = False
        self.reject_batches = False
        self.lock = threading.Lock()
        self.runs: dict[str, dict[str, Any]] = {}
        self.batches: list[tuple[int, int, int]] = []
        self.calls = 0

    def _net(self) -> None:
        from mlflow.exceptions import MlflowException

        self.calls += 1
        if self.down:
            raise MlflowException(
                f"API request to {URI}/api/2.0/mlflow/runs/log-batch failed with exception "
                "HTTPConnectionPool: Max retries exceeded (Connection refused)"
            )

    def search_experiments(self, max_results: int = 1) -> list:
        self._net()
        return []

    def get_experiment_by_name(self, name: str):
        self._net()
        return SimpleNamespace(experiment_id="7", lifecycle_stage="active")

    def create_experiment(self, name: str) -> str:
        self._net()
        return "7"

    def create_run(self, experiment_id, start_time=None, tags=None, run_name=None):
        self._net()
        with self.lock:
            rid = f"run{len(self.runs)}"
            self.runs[rid] = {"tags": dict(tags or {}), "params": {}, "metrics": set(),
                              "status": "RUNNING", "artifacts": []}
        return SimpleNamespace(info=SimpleNamespace(run_id=rid))

    def update_run(self, run_id, status=None):
        self._net()
        self.runs[run_id]["status"] = status

    def set_terminated(self, run_id, status=None, end_time=None):
        self._net()
        self.runs[run_id]["status"] = status

    def log_artifact(self, run_id, path, artifact_path=None):
        self._net()
        self.runs[run_id]["artifacts"].append(path)

    def search_runs(self, experiment_ids, filter_string="", max_results=1):
        self._net()
        tid = filter_string.split("'")[1]
        return [SimpleNamespace(info=SimpleNamespace(run_id=r)) for r, v in self.runs.items()
                if v["tags"].get("sweepcast.trial_id") == tid][:max_results]

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        self._net()
        if self.reject_batches:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException("Invalid value for param", INVALID_PARAMETER_VALUE)
        assert len(metrics) <= MAX_METRICS_PER_BATCH
        assert len(params) <= MAX_PARAMS_PER_BATCH and len(tags) <= MAX_TAGS_PER_BATCH
        assert len(metrics) + len(params) + len(tags) <= MAX_ENTITIES_PER_BATCH
        with self.lock:
            self.batches.append((len(metrics), len(params), len(tags)))
            run = self.runs[run_id]
            run["metrics"] |= {(m.key, m.timestamp, m.step, m.value) for m in metrics}
            run["params"].update({p.key: p.value for p in params})
            run["tags"].update({t.key: t.value for t in tags})

    def points(self, trial_tag: str, key: str) -> list[tuple[int, float]]:
        run = next(v for v in self.runs.values() if v["tags"].get("sweepcast.trial_id") == trial_tag)
        return sorted((s, v) for k, _, s, v in run["metrics"] if k == key)


def make(client: FakeClient, tmp_path, **kw) -> MlflowTracker:
    kw.setdefault("linger_s", 0.0)
    kw.setdefault("max_backoff_s", 0.05)
    return MlflowTracker(URI, experiment="e", spill_dir=tmp_path / "spill", client=client, **kw)


# ---------------------------------------------------------------------------- limits & planning
def test_batch_limits_match_the_installed_mlflow() -> None:
    from mlflow.utils import validation as v

    assert MAX_METRICS_PER_BATCH == v.MAX_METRICS_PER_BATCH
    assert MAX_PARAMS_PER_BATCH == v.MAX_PARAMS_TAGS_PER_BATCH
    assert MAX_TAGS_PER_BATCH == v.MAX_PARAMS_TAGS_PER_BATCH
    assert MAX_ENTITIES_PER_BATCH == v.MAX_ENTITIES_PER_BATCH


def _m(key: str, step: int, n: int) -> dict[str, Any]:
    return {"op": "metrics", "key": key, "step": step, "ts": 1,
            "values": {f"m{i}": float(i) for i in range(n)}}


def test_plan_chunks_metrics_params_and_tags_to_the_limits() -> None:
    units = plan_units([_m("a", 1, 2500)])
    assert [len(u.metrics) for u in units] == [1000, 1000, 500]
    assert sum(len(u.ops) for u in units) == 1  # the op completes with its last chunk
    params = {"op": "params", "key": "a", "values": {f"p{i}": "x" for i in range(250)}}
    tags = {"op": "tags", "key": "a", "values": {f"t{i}": "x" for i in range(150)}}
    units = plan_units([params, tags])
    assert all(len(u.params) <= 100 and len(u.tags) <= 100 for u in units)
    assert sum(len(u.params) for u in units) == 250 and sum(len(u.tags) for u in units) == 150
    units = plan_units([_m("a", 1, 950), params])
    assert all(len(u.metrics) + len(u.params) + len(u.tags) <= 1000 for u in units)


def test_plan_merges_runs_but_keeps_each_runs_order() -> None:
    ops = [
        {"op": "create", "key": "a", "tags": {}, "ts": 1},
        _m("a", 1, 2), _m("b", 1, 2), _m("a", 2, 2),
        {"op": "end", "key": "a", "status": "FINISHED", "ts": 2},
        _m("a", 3, 1),
    ]
    units = plan_units(ops)
    kinds = [(u.kind, u.key) for u in units]
    assert kinds == [("create", "a"), ("batch", "a"), ("batch", "b"), ("end", "a"),
                     ("batch", "a")]
    assert [s for *_, s in units[1].metrics] == [1, 1, 2, 2]  # two reports, one call
    assert sum(len(u.ops) for u in units) == len(ops)


# ---------------------------------------------------------------------------- sending
def test_points_are_batched_and_all_arrive(tmp_path) -> None:
    c = FakeClient()
    t = make(c, tmp_path, linger_s=0.05)
    t.start_sweep("s", {"a": 1})
    t.start_trial("x", {"lr": 0.1})
    for step in range(1, 301):
        t.log_metrics("x", step, {"loss": 1.0 / step, "acc": step / 300})
    t.end_trial("x", "completed")
    assert t.flush(10)
    assert c.points("x", "loss") == [(s, 1.0 / s) for s in range(1, 301)]
    assert len(c.batches) < 50  # 300 reports: far fewer calls
    assert t.stats["points_sent"] >= 600
    t.close()


def test_outage_buffers_never_blocks_and_loses_nothing(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="sweepcast.tracking")
    c = FakeClient()
    t = make(c, tmp_path)
    t.start_sweep("s", {})
    t.start_trial("x", {})
    c.down = True
    t0 = time.perf_counter()
    for step in range(1, 201):
        t.log_metrics("x", step, {"loss": float(step)})
    assert time.perf_counter() - t0 < 2.0  # the driver never waits on the network
    time.sleep(0.3)
    assert not t.flush(0.2)  # still down
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    c.down = False
    assert t.flush(10)
    assert c.points("x", "loss") == [(s, float(s)) for s in range(1, 201)]
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert t.stats["outages"] == 1 and t.stats["ops_dropped"] == 0
    assert "hunter2" not in caplog.text and "***@mlflow.internal" in caplog.text
    t.close()


def test_long_outage_spills_to_disk_with_bounded_memory_then_replays(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="sweepcast.tracking")
    c = FakeClient()
    t = make(c, tmp_path, max_buffer_points=50)
    t.start_sweep("s", {})
    t.start_trial("x", {})
    assert t.flush(5)
    c.down = True
    for step in range(1, 1001):
        t.log_metrics("x", step, {"loss": float(step)})
        assert t._queue.memory_weight <= 50
    spill = tmp_path / "spill" / "tracking_spill.jsonl"
    assert spill.stat().st_size > 0
    assert any("spilling" in r.getMessage() for r in caplog.records)
    c.down = False
    assert t.flush(20)
    assert c.points("x", "loss") == [(s, float(s)) for s in range(1, 1001)]
    assert spill.stat().st_size == 0  # drained
    t.close()


def test_close_during_outage_keeps_data_for_a_restored_tracker(tmp_path) -> None:
    c = FakeClient()
    t = make(c, tmp_path)
    t.start_sweep("s", {})
    t.start_trial("x", {})
    assert t.flush(5)
    c.down = True
    for step in range(1, 51):
        t.log_metrics("x", step, {"loss": float(step)})
    t.end_trial("x", "completed")
    state = json.loads(json.dumps(t.state()))
    t.close(timeout=0.3)
    assert (tmp_path / "spill" / "tracking_spill.jsonl").stat().st_size > 0
    c.down = False
    t2 = make(c, tmp_path)  # same spill dir: picks the file up
    t2.restore(state)
    t2.start_sweep("s", {})
    assert t2.flush(10)
    assert c.points("x", "loss") == [(s, float(s)) for s in range(1, 51)]
    run = next(v for v in c.runs.values() if v["tags"].get("sweepcast.trial_id") == "x")
    assert run["status"] == "FINISHED"
    assert len(c.runs) == 2  # no duplicate parent or trial run
    t2.close()


def test_rejected_batch_is_dropped_not_retried_forever(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="sweepcast.tracking")
    c = FakeClient()
    t = make(c, tmp_path)
    t.start_sweep("s", {})
    t.start_trial("x", {})
    assert t.flush(5)
    c.reject_batches = True
    t.log_metrics("x", 1, {"loss": 1.0})
    assert t.flush(5)
    assert t.stats["ops_dropped"] >= 1
    assert "rejected" in caplog.text and "hunter2" not in caplog.text
    c.reject_batches = False
    t.log_metrics("x", 2, {"loss": 2.0})
    assert t.flush(5)
    assert c.points("x", "loss") == [(2, 2.0)]
    t.close()


def test_unreachable_at_start_names_the_uri_without_credentials(tmp_path) -> None:
    from orchestrator.tracking.mlflow_tracker import TrackingUnavailableError

    c = FakeClient()
    c.down = True
    t = make(c, tmp_path)
    with pytest.raises(TrackingUnavailableError) as e:
        t.check_reachable()
    assert "http://***@mlflow.internal:5000" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_retried_run_creation_finds_the_run_instead_of_duplicating(tmp_path) -> None:
    c = FakeClient()
    t = make(c, tmp_path)
    t.start_sweep("s", {})
    t._maybe_created.add("x")  # as if a create's answer had been lost
    c.create_run("7", tags={"sweepcast.trial_id": "x"})
    t.start_trial("x", {})
    assert t.flush(5)
    assert len(c.runs) == 2
    t.close()


# ---------------------------------------------------------------------------- the queue itself
def test_spill_queue_keeps_fifo_order_across_memory_and_disk(tmp_path) -> None:
    q = SpillQueue(tmp_path / "q.jsonl", max_weight=3)
    for i in range(10):
        q.put({"op": "tags", "key": "k", "values": {"i": i}})
    assert q.memory_weight <= 3 and q.spilled_pending == 7
    got = []
    while q.pending:
        got += [op["values"]["i"] for op in q.take(2, timeout=0)]
    assert got == list(range(10))
    n = q.persist([{"op": "tags", "key": "k", "values": {"i": -1}}])
    assert n == 1
    q2 = SpillQueue(tmp_path / "q.jsonl", max_weight=3)
    assert [op["values"]["i"] for op in q2.take(10, timeout=0)] == [-1]


def test_spill_queue_rejects_a_zero_bound(tmp_path) -> None:
    with pytest.raises(ValueError, match="max_weight must be >= 1, got 0"):
        SpillQueue(tmp_path / "q.jsonl", max_weight=0)


def test_spill_file_keeps_taken_ops_until_acknowledged(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    q = SpillQueue(path, max_weight=1)
    for i in range(3):
        q.put({"op": "tags", "key": "k", "values": {"i": i}})
    while q.pending:
        q.take(5, timeout=0)
    assert path.stat().st_size > 0  # taken but not yet sent: a crash now loses nothing
    replay = SpillQueue(path, max_weight=10)  # what a restarted tracker would see
    assert replay.pending == 2
    q.ack()
    assert path.stat().st_size == 0


def test_state_saves_from_the_sender_and_the_caller_cannot_deadlock(tmp_path) -> None:
    """The caller saves the state while holding the tracker's lock (``end_trial``); the sender
    thread saves after creating a run. The sender must wait for the tracker's lock *before* it
    takes the state file's lock, or each thread holds the lock the other needs (a sweep hung
    that way in CI)."""
    t = make(FakeClient(), tmp_path, state_path=tmp_path / "state.json")
    try:
        with t._lock:  # the caller, inside end_trial
            sender = threading.Thread(target=t._save_state, daemon=True)
            sender.start()
            sender.join(0.3)  # it blocks on the tracker's lock, holding nothing
            assert sender.is_alive() and not t._state_lock.locked()
            t._save_state()  # the caller's own save goes through
        sender.join(5.0)
        assert not sender.is_alive()
        assert json.loads((tmp_path / "state.json").read_text())["kind"] == "mlflow"
    finally:
        t.close(timeout=5)
