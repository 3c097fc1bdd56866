"""The lifecycle contract every ``Tracker`` passes (STYLE.md item 8).

A test module subclasses :class:`TrackerContract` and provides ``make_tracker`` (a fresh
tracker; called more than once per test for restore checks, each call must see the same
backend) and ``read_back`` (what the backend recorded, in the common shape below). The
``InMemoryTracker`` runs it in ``tests/unit/test_tracker_contract.py``; the MLflow tracker
against a real ``mlflow server`` in ``tests/integration/test_sweep_tracking.py``.

``read_back(tracker)`` returns::

    {"parent": RUN, "trials": {trial_id: RUN}, "n_runs": int}
    RUN = {"run_id": str, "params": {k: str}, "tags": {k: str},
           "metrics": {name: [(step, value), ...] sorted}, "artifacts": set[str], "status": str}

with MLflow's status names (RUNNING, FINISHED, KILLED, FAILED).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from orchestrator.tracking.base import Tracker

CONFIG = {
    "name": "contract",
    "metric": "val_accuracy",
    "search": {"space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}},
    "wandb_api_key": "sk-live-SHOULD-NOT-APPEAR",
}


class TrackerContract:
    """Subclass and implement ``make_tracker`` and ``read_back``."""

    def make_tracker(self) -> Tracker:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_back(self, tracker: Tracker) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _started(self, name: str = "contract") -> Tracker:
        t = self.make_tracker()
        t.start_sweep(name, CONFIG, params={"num_samples": 3, "mode": "max"})
        return t

    # ---- the lifecycle ---------------------------------------------------------------------
    def test_parent_and_nested_children_with_every_point(self) -> None:
        t = self._started()
        reported: dict[str, list[tuple[int, float]]] = {}
        for i, status in enumerate(["completed", "pruned", "failed"]):
            tid = f"trial_{i}"
            t.start_trial(tid, {"lr": 0.01 * (i + 1), "width": 64})
            for step in range(1, 6 if status != "pruned" else 3):
                v = 0.1 * step + i
                t.log_metrics(tid, step, {"val_accuracy": v, "train_loss": 1 / step})
                reported.setdefault(tid, []).append((step, v))
            t.end_trial(tid, status, {"best_val_accuracy": max(v for _, v in reported[tid])})
        t.end_sweep({"trials_completed": 1, "trials_pruned": 1}, status="completed")
        assert t.flush(30)
        rec = self.read_back(t)
        parent = rec["parent"]
        assert parent["run_id"] == t.parent_run_id
        assert parent["status"] == "FINISHED"
        assert parent["params"]["num_samples"] == "3"
        assert any("sweep_config" in a for a in parent["artifacts"])
        assert parent["metrics"]["trials_completed"] == [(0, 1.0)]
        assert set(rec["trials"]) == {"trial_0", "trial_1", "trial_2"}
        want_status = {"trial_0": "FINISHED", "trial_1": "KILLED", "trial_2": "FAILED"}
        for tid, run in rec["trials"].items():
            assert run["tags"]["mlflow.parentRunId"] == t.parent_run_id
            assert run["run_id"] == t.trial_run_id(tid)
            assert run["status"] == want_status[tid], (tid, run["status"])
            assert run["tags"]["sweepcast.status"] == {
                "FINISHED": "completed", "KILLED": "pruned", "FAILED": "failed"
            }[run["status"]]
            got = run["metrics"]["val_accuracy"]
            assert [s for s, _ in got] == [s for s, _ in reported[tid]]
            assert [v for _, v in got] == pytest.approx([v for _, v in reported[tid]])
            assert [s for s, _ in run["metrics"]["train_loss"]] == [s for s, _ in reported[tid]]
            assert run["params"]["width"] == "64"
            last_step = reported[tid][-1][0]
            assert [s for s, _ in run["metrics"]["best_val_accuracy"]] == [last_step]
        t.close()

    def test_start_trial_is_idempotent_and_reopens_a_retried_trial(self) -> None:
        t = self._started("contract-idem")
        t.start_trial("a", {"lr": 0.1})
        t.log_metrics("a", 1, {"m": 1.0})
        t.start_trial("a", {"lr": 0.1})  # duplicate start: nothing new
        t.end_trial("a", "failed")
        t.start_trial("a", {"lr": 0.1})  # retried after a failure: same run, running again
        t.log_metrics("a", 2, {"m": 2.0})
        t.end_trial("a", "completed")
        assert t.flush(30)
        rec = self.read_back(t)
        assert list(rec["trials"]) == ["a"]
        run = rec["trials"]["a"]
        assert run["metrics"]["m"] == [(1, 1.0), (2, 2.0)]
        assert run["status"] == "FINISHED"
        assert run["tags"]["sweepcast.status"] == "completed"
        t.close()

    def test_verdicts_become_metrics_and_a_stop_reason_tag(self) -> None:
        t = self._started("contract-verdict")
        t.start_trial("v", {})
        t.log_verdict("v", 3, {"decision": "continue", "reason": "grace"})
        t.log_verdict(
            "v", 4,
            {"decision": "continue", "reason": "p_beat_ok", "p_beat": 0.4,
             "q05": 0.1, "q50": 0.5, "q95": 0.9},
        )
        t.log_verdict(
            "v", 5,
            {"decision": "stop", "reason": "p_beat_low", "p_beat": 0.01,
             "forecast": {"q05": 0.2, "q50": 0.3, "q95": 0.4}},
        )
        assert t.stop_reason("v") == "p_beat_low"
        t.end_trial("v", "pruned")
        assert t.flush(30)
        run = self.read_back(t)["trials"]["v"]
        assert run["metrics"]["p_beat"] == [(4, 0.4), (5, 0.01)]
        assert run["metrics"]["forecast.q05"] == [(4, 0.1), (5, 0.2)]
        assert run["metrics"]["forecast.q50"] == [(4, 0.5), (5, 0.3)]
        assert run["metrics"]["forecast.q95"] == [(4, 0.9), (5, 0.4)]
        assert run["tags"]["sweepcast.stop_reason"] == "p_beat_low"
        assert run["status"] == "KILLED"
        t.close()

    def test_continue_verdict_sets_no_stop_reason(self) -> None:
        t = self._started("contract-continue")
        t.start_trial("c", {})
        t.log_verdict("c", 2, {"decision": "continue", "reason": "grace"})
        assert t.stop_reason("c") is None
        t.end_trial("c", "completed")
        assert t.flush(30)
        run = self.read_back(t)["trials"]["c"]
        assert "sweepcast.stop_reason" not in run["tags"]
        assert run["tags"]["sweepcast.last_reason"] == "grace"
        t.close()

    def test_secrets_never_recorded(self) -> None:
        t = self._started("contract-secrets")
        t.start_trial("s", {"lr": 0.1, "hf_token": "hf_abcdefSECRET", "db": {"password": "pw1"}})
        t.end_trial("s", "completed")
        t.end_sweep()
        assert t.flush(30)
        rec = self.read_back(t)
        blob = json.dumps(rec, default=str)
        assert "hf_abcdefSECRET" not in blob and "pw1" not in blob
        assert "SHOULD-NOT-APPEAR" not in blob
        assert "SHOULD-NOT-APPEAR" not in self.artifact_text(t, None, "sweep_config.yaml")
        params = rec["trials"]["s"]["params"]
        assert params.get("hf_token") != "hf_abcdefSECRET"
        assert params["lr"] == "0.1"
        t.close()

    def artifact_text(self, tracker: Tracker, trial_id: str | None, name: str) -> str:
        """The text of an artifact whose name contains ``name`` (override per backend)."""
        raise NotImplementedError

    def test_artifacts_from_bytes_and_paths(self, tmp_path: Path) -> None:
        t = self._started("contract-artifacts")
        t.start_trial("x", {})
        f = tmp_path / "error.txt"
        f.write_text("Traceback: boom")
        t.log_artifact("x", f)
        t.log_artifact("x", ("curve.json", b"[1, 2, 3]"), artifact_path="plots")
        f.unlink()  # the tracker must not depend on the caller keeping the file
        t.log_artifact(None, ("summary.txt", b"ok"))
        t.end_trial("x", "failed")
        assert t.flush(30)
        rec = self.read_back(t)
        assert {"error.txt", "plots/curve.json"} <= rec["trials"]["x"]["artifacts"]
        assert "summary.txt" in rec["parent"]["artifacts"]
        assert "boom" in self.artifact_text(t, "x", "error.txt")
        t.close()

    def test_non_finite_points_are_kept(self) -> None:
        t = self._started("contract-nan")
        t.start_trial("n", {})
        t.log_metrics("n", 1, {"loss": 1.0})
        t.log_metrics("n", 2, {"loss": float("nan"), "flag": True, "name": "x"})
        t.end_trial("n", "completed")
        assert t.flush(30)
        pts = self.read_back(t)["trials"]["n"]["metrics"]["loss"]
        assert [s for s, _ in pts] == [1, 2] and math.isnan(pts[1][1])
        t.close()

    # ---- state -----------------------------------------------------------------------------
    def test_state_is_plain_data_and_restore_reuses_runs(self) -> None:
        t = self._started("contract-restore")
        t.start_trial("r0", {"lr": 0.1})
        t.start_trial("r1", {"lr": 0.2})
        t.log_metrics("r0", 1, {"m": 1.0})
        t.end_trial("r0", "completed")
        assert t.flush(30)
        state = json.loads(json.dumps(t.state()))  # plain JSON round trip
        parent, r1 = t.parent_run_id, t.trial_run_id("r1")
        n_before = self.read_back(t)["n_runs"]
        t.close()

        t2 = self.make_tracker()
        t2.restore(state)
        assert t2.start_sweep("contract-restore", CONFIG) == parent
        assert t2.trial_status("r0") == "completed"
        t2.start_trial("r1", {"lr": 0.2})
        t2.log_metrics("r1", 2, {"m": 2.0})
        t2.end_trial("r1", "completed")
        t2.end_sweep()
        assert t2.flush(30)
        assert t2.trial_run_id("r1") == r1
        rec = self.read_back(t2)
        assert rec["n_runs"] == n_before  # no second parent, no duplicate trial run
        assert rec["trials"]["r1"]["status"] == "FINISHED"
        t2.close()

    # ---- bad input -------------------------------------------------------------------------
    def test_bad_input_is_rejected_with_the_value(self) -> None:
        t = self.make_tracker()
        with pytest.raises(RuntimeError, match="start_sweep"):
            t.start_trial("a", {})
        with pytest.raises(ValueError, match="sweep name"):
            t.start_sweep("", {})
        t.start_sweep("contract-bad", CONFIG)
        with pytest.raises(ValueError, match="unknown trial 'ghost'"):
            t.log_metrics("ghost", 1, {"m": 1.0})
        t.start_trial("a", {})
        with pytest.raises(ValueError, match="status must be one of .* got 'done'"):
            t.end_trial("a", "done")
        with pytest.raises(ValueError, match="step must be .* got -1"):
            t.log_metrics("a", -1, {"m": 1.0})
        with pytest.raises(ValueError, match="decision"):
            t.log_verdict("a", 1, {"reason": "x"})
        with pytest.raises(ValueError, match="not a file"):
            t.log_artifact("a", "/nonexistent/file.txt")
        t.end_trial("a", "completed")
        t.close()
        with pytest.raises(RuntimeError, match="closed"):
            t.log_metrics("a", 2, {"m": 1.0})
