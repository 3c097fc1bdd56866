"""Fault 2: the driver is SIGKILLed mid-sweep, then ``sweepcast resume`` finishes the sweep.

Checks: one parent run (reused), every trial exactly one run with a terminal status, trials
pruned before the crash stay pruned and are not run again, unfinished trials continue from
their checkpoints, every trial's MLflow history covers what it reported after the resume, and a
trial that had ended before the crash lost no point in MLflow (the tracker's write-ahead copy);
the dead driver's lock is taken over and a second ``resume`` while the first runs is refused; a
searcher state truncated by the kill is put back from Ray's staging copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import (
    SweepRun,
    mlflow_sweep,
    points_dir,
    reported_points,
    sweep_env,
    wait_for,
    wait_reporters_gone,
    write_config,
)

from cluster.local import ClusterState
from orchestrator.tune_snapshot import COPY_FILE

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.integration]


def _tracker_state(exp: Path) -> dict:
    try:
        return json.loads((exp / "sweepcast_tracker.json").read_text())
    except (OSError, ValueError):
        return {}


def _lock_pid(lock: Path) -> int | None:
    try:
        return json.loads(lock.read_text()).get("pid")
    except (OSError, ValueError):  # not there yet, or being written
        return None


def _snapshot_epochs(exp: Path) -> dict[str, int]:
    """trial id -> epoch of the latest checkpoint in Tune's newest snapshot (what a restore
    resumes the trial from). Not the snapshot's ``last_result``: a snapshot written between a
    result and the registration of that result's checkpoint holds a last result one epoch newer
    than its latest checkpoint."""
    from ray import cloudpickle

    snaps = sorted(exp.glob("experiment_state-*.json"))
    if not snaps:
        return {}
    out = {}
    for state, meta in json.loads(snaps[-1].read_text())["trial_data"]:
        st = json.loads(state)
        m = json.loads(meta) if isinstance(meta, str) else meta
        cm = cloudpickle.loads(bytes.fromhex(m["checkpoint_manager"]["value"]))
        latest = cm.latest_checkpoint_result
        out[st["trial_id"]] = int(latest.metrics.get("epoch") or 0) if latest is not None else 0
    return out


def test_driver_sigkill_then_resume_completes_without_duplicates(
    fault_cluster: ClusterState, mlflow_server: str, tmp_path: Path
) -> None:
    name = "fault-driver-resume"
    max_epochs = 8
    # Grid order: two good trials first, then poor ones that ASHA prunes at its first rung.
    cfg = write_config(
        tmp_path / "sweep.yaml", name, tmp_path / "results",
        max_epochs=max_epochs,
        pruning={"scheduler": "asha", "grace_period": 2, "reduction_factor": 2},
        search={"algorithm": "grid", "seed": 0, "space": {
            "x": {"type": "grid", "values": [0.7, 0.65, 0.05, 0.1, 0.0, 0.15]},
            "sleep": {"type": "choice", "values": [0.5]},
            "fail_above": {"type": "choice", "values": [-1.0]},
        }},
    )
    exp = tmp_path / "results" / name
    logs = points_dir(fault_cluster, name)
    env = sweep_env(fault_cluster, mlflow_server)
    run = SweepRun.start(["run", str(cfg)], env, tmp_path, tmp_path / "run.out")

    def crash_point() -> dict | None:
        st = _tracker_state(exp).get("trials", {})
        pruned = [t for t, i in st.items() if i.get("status") == "pruned"]
        running = [t for t, i in st.items() if i.get("status") == "running"]
        pts = reported_points(logs)
        if pruned and any(len(pts.get(t, [])) >= 1 for t in running):
            return {t: i.get("status") for t, i in st.items()}
        return None

    before = wait_for(crash_point, 300, "a pruned trial and another one running", run=run)
    run.kill()
    # its trials report on until Ray kills the dead driver's actors: count their points after
    killed_at = time.monotonic()
    n_before = {t: len(ps) for t, ps in wait_reporters_gone(logs).items()}
    orphan_s = time.monotonic() - killed_at
    pruned_before = sorted(t for t, s in before.items() if s == "pruned")
    # trials the killed driver's tracker had recorded as ended (more may have ended since `before`)
    ended_before = sorted(t for t, i in _tracker_state(exp).get("trials", {}).items()
                          if i.get("status") in ("completed", "pruned", "failed"))
    _, trials_before = mlflow_sweep(mlflow_server, name)
    runs_before = {t.trial_id: t.run_id for t in trials_before}
    snap = _snapshot_epochs(exp)
    # The kill can land while Ray copies the searcher's state from its staging folder into the
    # experiment folder (not atomic), which once left this file truncated and the resume dead in
    # Tuner.restore. Made certain here: the newest searcher state is cut in half, and the resume
    # must put back Ray's staging copy (orchestrator.resume.repair_tune_state).
    # sweepcast's one-file copy of the snapshot would put it back first
    # (test_fault_mixed_snapshot); without it (a copy cut short too, or a sweep from before
    # the copy existed) the staging copy is what is left.
    states = sorted(exp.glob("basic-variant-state-*.json"))
    assert states, sorted(p.name for p in exp.iterdir())
    whole = states[-1].read_bytes()
    states[-1].write_bytes(whole[: len(whole) // 2])
    (exp / COPY_FILE).unlink()

    lock = exp / "sweepcast_driver.lock"
    assert json.loads(lock.read_text())["pid"] == run.proc.pid  # the dead driver's, left behind
    resume = SweepRun.start(["resume", str(exp)], env, tmp_path, tmp_path / "resume.out")
    # the resume takes the dead driver's lock over; a second driver is then refused
    wait_for(lambda: _lock_pid(lock) == resume.proc.pid, 120,
             "the resume holding the driver lock", run=resume)
    second = subprocess.run([str(Path(sys.executable).with_name("sweepcast")), "resume",
                             str(exp)], check=False, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 1, second.stderr[-2000:]
    assert f"being driven by pid {resume.proc.pid}" in second.stderr
    rc = resume.wait(timeout_s=360)
    out = resume.output()
    assert rc == 0, out[-4000:]
    assert "(reused)" in out
    assert f"note: {states[-1].name} was truncated" in out, out[-4000:]

    parents, trials = mlflow_sweep(mlflow_server, name)
    assert len(parents) == 1, [p.info.run_id for p in parents]  # no second parent run
    assert len(trials) == 6 and len({t.trial_id for t in trials}) == 6  # no duplicate trial run
    by_id = {t.trial_id: t for t in trials}
    for tid, run_id in runs_before.items():
        assert by_id[tid].run_id == run_id  # a trial kept its run across the crash
    points = reported_points(logs)
    for t in trials:
        assert t.status in ("FINISHED", "KILLED") and t.sweepcast_status in (
            "completed", "pruned"), (t.trial_id, t.status, t.sweepcast_status)
    resumed = []
    for tid in pruned_before:  # pruning decisions taken before the crash are kept
        assert by_id[tid].sweepcast_status == "pruned"
        assert len(points.get(tid, [])) == n_before.get(tid, 0), f"{tid} ran again after resume"
    for tid, ps in points.items():
        after = ps[n_before.get(tid, 0):]
        if after and n_before.get(tid, 0):
            resumed.append(tid)
            # from the latest checkpoint Tune's snapshot holds (a trial created
            # after the snapshot starts over: Tune never knew its checkpoints)
            assert after[0]["resumed_from"] >= snap.get(tid, 0), (tid, after[0], snap)
            assert after[0]["resumed_from"] <= n_before[tid], (tid, after[0])
        # whatever was reported after the resume reached MLflow
        for p in after:
            assert p["epoch"] in by_id[tid].history, (tid, p["epoch"])
    lost = [(tid, p["epoch"]) for tid, ps in points.items() for p in ps
            if p["epoch"] not in by_id[tid].history]
    # A trial that had ended is not run again: its points that were still queued in the killed
    # driver reach MLflow from the tracker's write-ahead copy (tracking_unsent.jsonl).
    assert not [(tid, e) for tid, e in lost if tid in ended_before], (lost, ended_before)
    from_ckpt = sorted(t for t in resumed if points[t][n_before[t]]["resumed_from"] > 0)
    print(f"pruned before crash: {pruned_before}; ended before crash: {ended_before}; "
          f"resumed: {sorted(resumed)}, of which from a "
          f"checkpoint: {from_ckpt}; "
          f"trials: {len(trials)}; points reported but not in MLflow: {lost}; the killed "
          f"driver's trials exited {orphan_s:.1f} s after it")
