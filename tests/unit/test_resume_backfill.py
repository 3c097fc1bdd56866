"""``sweepcast resume`` sends a trial's last result from Tune's snapshot when its point never
reached MLflow (``orchestrator.resume._backfill_last_points``): the point at the epoch a trial
resumes from is not reported again, and the killed driver may have held it unsent. A real
``MlflowTracker`` against a sqlite MLflow store."""

from __future__ import annotations

from pathlib import Path

from orchestrator.resume import _backfill_last_points
from orchestrator.tracking.mlflow_tracker import MlflowTracker


def _history(tracker: MlflowTracker, tid: str, key: str) -> list[tuple[int, float, int]]:
    hist = tracker._client.get_metric_history(tracker.trial_run_id(tid), key)
    return sorted((m.step, m.value, m.timestamp) for m in hist)


def test_missing_last_point_is_sent_once_with_its_time(tmp_path: Path) -> None:
    t = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="bf",
                      spill_dir=tmp_path / "tracking", linger_s=0.0)
    try:
        t.start_sweep("bf", {"lr": 0.1})
        for tid in ("a", "b", "c"):
            t.start_trial(tid, {"lr": 0.1})
        for step in (1, 2):
            t.log_metrics("a", step, {"val/acc@1": 0.1 * step})
            t.log_metrics("b", step, {"val/acc@1": 0.1 * step})
        assert t.flush(60)
        lasts = {
            # epoch 3 was reported and checkpointed, then the driver died with it unsent
            "a": {"epoch": 3, "val/acc@1": 0.3, "loss": 1.5, "timestamp": 1_700_000_000,
                  "training_iteration": 3, "time_this_iter_s": 0.5},
            "b": {"epoch": 2, "val/acc@1": 0.2, "training_iteration": 2},  # it reached MLflow
            "c": {"epoch": 1, "training_iteration": 1},  # no value of the sweep's metric
            "unknown": {"epoch": 1, "val/acc@1": 0.5},  # no run: not this function's business
        }
        done = _backfill_last_points(t, t, lasts, "val/acc@1", "epoch")
        assert done == [("a", 3)]
        assert t.flush(60)
        hist = _history(t, "a", "val/acc_1")
        assert [(s, v) for s, v, _ in hist] == [(1, 0.1), (2, 0.2), (3, 0.3)]
        assert hist[-1][2] == 1_700_000_000_000  # the time Tune recorded, not the resume's
        assert [s for s, _, _ in _history(t, "a", "loss")] == [3]  # its other metrics too
        assert [s for s, _, _ in _history(t, "b", "val/acc_1")] == [1, 2]  # no duplicate
        assert _backfill_last_points(t, t, lasts, "val/acc@1", "epoch") == []  # once
    finally:
        t.close(timeout=30)
