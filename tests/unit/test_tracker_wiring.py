"""How Tune events, schedulers and verdicts reach the tracker, without running Ray.

The Tune callback is driven with stand-in trial objects (Tune calls the hooks with a ``Trial``;
we use only ``trial_id``, ``config`` and the error file), the tracker is the in-memory one.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.callbacks import Ledger, SweepCallback, user_metrics
from orchestrator.schedulers import VerdictSink, build_scheduler
from orchestrator.tracking import InMemoryTracker
from orchestrator.tracking.registry import register_tracker, unregister_tracker

KEY = "/tmp/sweep-under-test"


@pytest.fixture
def tracker():
    t = InMemoryTracker()
    t.start_sweep("s", {"name": "s"})
    register_tracker(KEY, t)
    yield t
    unregister_tracker(KEY)


def _trial(tid: str, **config: Any) -> Any:
    return SimpleNamespace(trial_id=tid, config={"max_epochs": 4, **config}, error_file=None,
                           local_path=None)


def _result(epoch: int, acc: float, done: bool = False) -> dict[str, Any]:
    return {"epoch": epoch, "val_accuracy": acc, "train_loss": 1.0 / epoch, "done": done,
            "training_iteration": epoch, "time_total_s": 1.0, "pid": 1, "hostname": "h",
            "config": {"lr": 0.1}, "trial_id": "x", "timestamp": 0, "date": "d",
            "nested": {"a": 2.0}, "note": "text", "flag": True}


def test_user_metrics_keep_only_what_the_trial_reported() -> None:
    m = user_metrics(_result(2, 0.5))
    assert m == {"val_accuracy": 0.5, "train_loss": 0.5, "nested/a": 2.0}


def test_callback_maps_events_and_tells_pruned_from_completed(tracker) -> None:
    out = io.StringIO()
    cb = SweepCallback(KEY, Ledger("val_accuracy", "max", 4), out=out)
    a, b = _trial("a", lr=0.1, api_key="sk-live-abcdefghijklmnopqrstuv"), _trial("b", lr=0.2)
    for t in (a, b):
        cb.on_trial_start(0, [], t)
    for e in range(1, 5):
        cb.on_trial_result(0, [], a, _result(e, 0.2 * e, done=e == 4))
    cb.on_trial_result(0, [], b, _result(1, 0.1))
    cb.on_trial_result(0, [], b, _result(2, 0.15, done=True))  # STOP before max_epochs
    cb.on_trial_complete(0, [], a)
    cb.on_trial_complete(0, [], b)
    ra, rb = tracker.trials["a"], tracker.trials["b"]
    assert ra["metrics"]["val_accuracy"] == [(e, pytest.approx(0.2 * e)) for e in range(1, 5)]
    assert ra["status"] == "FINISHED" and ra["tags"]["sweepcast.status"] == "completed"
    assert rb["status"] == "KILLED" and rb["tags"]["sweepcast.status"] == "pruned"
    assert rb["tags"]["sweepcast.stop_reason"] == "scheduler"
    assert ra["metrics"]["best_val_accuracy"] == [(4, pytest.approx(0.8))]
    assert "sk-live" not in ra["params"]["api_key"]
    text = out.getvalue()
    assert "pruned" in text and "completed" in text and "sk-live" not in text
    assert cb.ledger.best_trial().trial_id == "a"


def test_callback_records_a_failure_with_its_traceback(tracker, tmp_path: Path) -> None:
    cb = SweepCallback(KEY, Ledger("val_accuracy", "max", 4), out=None)
    t = _trial("c")
    err = tmp_path / "error.txt"
    err.write_text("Traceback (most recent call last):\nValueError: bad config")
    t.error_file = str(err)
    cb.on_trial_start(0, [], t)
    cb.on_trial_recover(0, [], t)
    cb.on_trial_error(0, [], t)
    run = tracker.trials["c"]
    assert run["status"] == "FAILED" and run["tags"]["sweepcast.status"] == "failed"
    assert b"ValueError: bad config" in run["artifacts"]["error.txt"]
    assert run["tags"]["sweepcast.retries"] == "1"
    assert cb.ledger.trials["c"].error == "ValueError: bad config"


def test_callback_survives_pickling_and_finds_the_tracker_again(tracker) -> None:
    import pickle

    cb = SweepCallback(KEY, Ledger("val_accuracy", "max", 4), out=None)
    cb.on_trial_start(0, [], _trial("d"))
    cb2 = pickle.loads(pickle.dumps(cb))
    cb2.on_trial_result(0, [], _trial("d"), _result(1, 0.3))
    assert tracker.trials["d"]["metrics"]["val_accuracy"] == [(1, 0.3)]


def test_verdict_sink_records_verdicts_and_a_stop_marks_the_trial_pruned(tracker) -> None:
    from search.policy import Verdict

    cb = SweepCallback(KEY, Ledger("val_accuracy", "min", 10), out=None)
    t = _trial("e")
    cb.on_trial_start(0, [], t)
    cb.on_trial_result(0, [], t, _result(3, 0.9))
    sink = VerdictSink(KEY)
    sink(Verdict(trial_id="e", step=3.0, stop=False, reason="grace"))
    sink(Verdict(trial_id="e", step=float("nan"), stop=True, reason="p_beat_low", p_beat=0.01,
                 q05=0.5, q50=0.6, q95=0.7))
    cb.on_trial_complete(0, [], t)
    run = tracker.trials["e"]
    assert run["metrics"]["p_beat"] == [(3, 0.01)]  # NaN step: the trial's last step
    assert run["metrics"]["forecast.q50"] == [(3, 0.6)]
    assert run["tags"]["sweepcast.stop_reason"] == "p_beat_low"
    assert run["status"] == "KILLED"
    assert sink.received == 2 and sink.dropped == 0


def test_verdict_sink_never_raises_into_the_scheduler() -> None:
    sink = VerdictSink("/nowhere")
    sink({"trial_id": "x", "step": 1, "stop": True, "reason": "r"})  # no tracker registered
    assert sink.dropped == 1


def _cfg(pruning: dict[str, Any]):
    from orchestrator.config import SweepConfig

    return SweepConfig.model_validate({
        "name": "s", "trainable": "trials.examples.mlp:train", "metric": "val_accuracy",
        "mode": "max", "max_epochs": 12, "num_samples": 2,
        "search": {"algorithm": "random", "space": {"lr": {"type": "uniform", "low": 0.0,
                                                           "high": 1.0}}},
        "pruning": pruning,
    })


@pytest.mark.parametrize("pruning, cls", [
    ({"scheduler": "fifo"}, "FIFOScheduler"),
    ({"scheduler": "asha", "grace_period": 2, "reduction_factor": 3}, "AsyncHyperBandScheduler"),
    ({"scheduler": "median", "grace_period": 2}, "MedianStoppingRule"),
    ({"scheduler": "hyperband", "reduction_factor": 3}, "HyperBandScheduler"),
    ({"scheduler": "curve", "grace_epochs": 2, "threshold": 0.1}, "CurveScheduler"),
])
def test_each_pruning_config_builds_its_scheduler(pruning, cls) -> None:
    sched = build_scheduler(_cfg(pruning), VerdictSink(KEY))
    assert type(sched).__name__ == cls
    if cls == "AsyncHyperBandScheduler":
        assert sched._time_attr == "epoch" and sched._max_t == 12
