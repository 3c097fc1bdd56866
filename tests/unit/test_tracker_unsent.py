"""A killed driver loses no metric point of a trial that had ended: the tracker's write-ahead
copy of what it had not yet sent (``tracking_unsent.jsonl``) is replayed by the next tracker.

The first test kills a real tracker process (SIGKILL, no cleanup) while its sender is stuck in
``log_batch`` against a real MLflow store; the others use the fake client of
``test_tracker_mlflow``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_tracker_mlflow import FakeClient, make

from orchestrator.tracking.buffer import SpillQueue, adopt_unsent, write_ops
from orchestrator.tracking.mlflow_tracker import UNSENT_FILE, MlflowTracker

REPO = Path(__file__).resolve().parents[2]

_KILLED_DRIVER = textwrap.dedent("""
    import os, signal, sys, threading, time
    from orchestrator.tracking.mlflow_tracker import MlflowTracker

    uri, spill, state = sys.argv[1:4]
    t = MlflowTracker(uri, experiment="crash", spill_dir=spill, state_path=state, linger_s=0.0)
    t.start_sweep("crash", {"lr": 0.1})
    t.start_trial("t1", {"lr": 0.1})
    t.start_trial("t2", {"lr": 0.2})
    assert t.flush(60)
    stuck = threading.Event()
    def hang(*a, **k):  # the server stops answering mid-sweep
        stuck.set()
        time.sleep(3600)
    t._client.log_batch = hang
    for step in range(1, 11):
        t.log_metrics("t1", step, {"loss": 1.0 / step})
        t.log_metrics("t2", step, {"loss": 2.0 / step})
        if step == 1:
            assert stuck.wait(30)  # step 1 is held by the sender, the rest queue in memory
    t.end_trial("t1", "pruned")  # t1 ends: the write-ahead copy is written, then the state
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.slow
def test_sigkilled_tracker_loses_no_point_of_an_ended_trial(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spill, state = tmp_path / "tracking", tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", _KILLED_DRIVER, uri, str(spill), str(state)],
                       check=False, capture_output=True, text=True, timeout=240, env=env,
                       cwd=tmp_path)
    assert p.returncode == -9 and "ready" in p.stdout, p.stderr[-3000:]
    unsent = [json.loads(line) for line in (spill / UNSENT_FILE).read_text().splitlines()]
    assert sum(1 for op in unsent if op["op"] == "metrics" and op["key"] == "t1") == 10
    assert {"op": "end", "key": "t1"}.items() <= unsent[-1].items()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("crash")
    assert exp is not None
    (t1_run,) = client.search_runs([exp.experiment_id], "tags.`sweepcast.trial_id` = 't1'")
    assert client.get_metric_history(t1_run.info.run_id, "loss") == []  # nothing was sent

    t2 = MlflowTracker(uri, experiment="crash", spill_dir=spill, state_path=state, linger_s=0.0)
    t2.restore(json.loads(state.read_text()))
    assert t2.trial_status("t1") == "pruned"
    t2.start_sweep("crash", {"lr": 0.1})  # what `sweepcast resume` does
    assert t2.flush(120)
    hist = client.get_metric_history(t1_run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in hist) == [(s, 1.0 / s) for s in range(1, 11)]
    assert client.get_run(t1_run.info.run_id).info.status == "KILLED"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3, [r.info.run_name for r in runs]  # parent, t1, t2: none created twice
    # t2 was running: its points queued before t1 ended were in the copy too
    (t2_run,) = [r for r in runs if r.data.tags.get("sweepcast.trial_id") == "t2"]
    assert len(client.get_metric_history(t2_run.info.run_id, "loss")) == 10
    assert (spill / UNSENT_FILE).read_bytes() == b""  # sent: not replayed a second time
    t2.close()


def _ended_during_outage(tmp_path: Path, steps: int, status: str) -> tuple[FakeClient, MlflowTracker]:
    """A trial that reports ``steps`` points and ends while the server is down."""
    c = FakeClient()
    t = make(c, tmp_path)
    t.start_sweep("s", {})
    t.start_trial("x", {})
    assert t.flush(5)
    assert not (tmp_path / "spill" / UNSENT_FILE).exists()  # nothing ended yet
    c.down = True
    for step in range(1, steps + 1):
        t.log_metrics("x", step, {"loss": float(step)})
    t.end_trial("x", status)
    return c, t


def test_copy_is_written_when_a_trial_ends_and_emptied_once_sent(tmp_path: Path) -> None:
    c, t = _ended_during_outage(tmp_path, 5, "completed")
    copy = tmp_path / "spill" / UNSENT_FILE
    ops = [json.loads(line) for line in copy.read_text().splitlines()]
    assert [op["step"] for op in ops if op["op"] == "metrics"] == [1, 2, 3, 4, 5]
    assert ops[-1]["op"] == "end"
    c.down = False
    assert t.flush(10)
    assert copy.read_bytes() == b""
    assert c.points("x", "loss") == [(s, float(s)) for s in range(1, 6)]
    t.close()


def test_close_moves_everything_to_the_spill_file_and_empties_the_copy(tmp_path: Path) -> None:
    _, t = _ended_during_outage(tmp_path, 3, "pruned")
    t.close(timeout=0.3)
    assert (tmp_path / "spill" / UNSENT_FILE).read_bytes() == b""
    assert SpillQueue(tmp_path / "spill" / "tracking_spill.jsonl").pending >= 4


def test_adopted_copy_goes_ahead_of_the_spill_file_and_a_cut_line_is_skipped(tmp_path) -> None:
    spill, copy = tmp_path / "spill.jsonl", tmp_path / UNSENT_FILE
    write_ops(spill, [{"op": "tags", "key": "k", "values": {"i": 2}}])
    write_ops(copy, [{"op": "tags", "key": "k", "values": {"i": i}} for i in (0, 1)])
    copy.write_bytes(copy.read_bytes() + b'{"op": "tags", "ke')  # the crash cut the last line
    assert adopt_unsent(copy, spill) == 2
    assert copy.read_bytes() == b""
    ops = SpillQueue(spill).take(10, timeout=0)
    assert [op["values"]["i"] for op in ops] == [0, 1, 2]
    assert [op.get("replayed") for op in ops] == [True, True, None]
    assert adopt_unsent(copy, spill) == 0  # nothing left to adopt


def test_replayed_artifact_already_uploaded_is_not_an_error(tmp_path, caplog) -> None:
    c = FakeClient()
    t = make(c, tmp_path)
    t.start_sweep("s", {})
    t.start_trial("x", {})
    t.log_artifact("x", ("curve.json", b"{}"), "plots")
    assert t.flush(5)
    staged = tmp_path / "spill" / "staged_artifacts"
    assert list(staged.iterdir()) == []  # uploaded, then its staged copy removed
    # a copy written before that upload, replayed by a tracker after a crash
    write_ops(tmp_path / "spill" / UNSENT_FILE, [{"op": "artifact", "key": "x",
              "path": str(staged / "gone" / "curve.json"), "artifact_path": "plots"}])
    t.close()
    with caplog.at_level(logging.DEBUG, logger="sweepcast.tracking"):
        t2 = make(c, tmp_path)
        t2.restore(t.state())
        t2.start_sweep("s", {})
        assert t2.flush(5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("uploaded already" in r.getMessage() for r in caplog.records)
    run = next(v for v in c.runs.values() if v["tags"].get("sweepcast.trial_id") == "x")
    assert len(run["artifacts"]) == 1
    t2.close()


def test_flush_waits_for_the_ops_an_earlier_tracker_left_and_then_for_new_ones(tmp_path) -> None:
    """A restored tracker sends the earlier tracker's ops first; ``flush`` returns only once
    the ops queued before it are sent, the ones left in the spill file included (it once
    counted only its own, and returned while the new point was still queued behind them)."""
    c, t = _ended_during_outage(tmp_path, 200, "completed")
    t.close(timeout=0.3)
    c.down = False
    t2 = make(c, tmp_path)
    t2.restore(t.state())
    t2.start_sweep("s", {})
    t2.start_trial("y", {})
    t2.log_metrics("y", 1, {"loss": 0.5})
    assert t2.flush(10)
    assert c.points("y", "loss") == [(1, 0.5)]
    assert len(c.points("x", "loss")) == 200
    t2.close()
