"""The driver dies while Ray uploads Tune's snapshot, leaving the trial table of one snapshot
beside the searcher state of the next; ``sweepcast resume`` must still finish the sweep.

Seen in CI (the bucket resume of ``test_fault_object_store_resume``): with ``max_concurrent: 1``
the restored searcher still counted a trial as running that the restored trial table had
never had, so it never issued another one and the resume waited forever. Made certain here: the
sweep is killed once its second grid trial runs, and the trial table of an earlier snapshot (only
the first trial, running) is put back beside the newest searcher state, the exact mix of the CI
failure. The resume must put one snapshot back together (``orchestrator.tune_snapshot``) and
finish every trial, each in its one MLflow run.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from faultkit import (
    SweepRun,
    grid,
    local_driver_env,
    mlflow_sweep,
    reported_points,
    wait_for,
    wait_reporters_gone,
    write_config,
)
from mlflow.tracking import MlflowClient

from orchestrator.resume import LOST_REASON
from orchestrator.tracking.base import TAG_STOP_REASON
from orchestrator.tune_snapshot import COPY_FILE, read_copy

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.integration]


def _table(data: bytes) -> dict[str, str]:
    """trial id -> status in a trial table (``experiment_state-*.json``)."""
    out = {}
    for state, _ in json.loads(data)["trial_data"]:
        st = json.loads(state) if isinstance(state, str) else state
        out[st["trial_id"]] = st["status"]
    return out


def _copy_file(exp: Path, prefix: str) -> tuple[str, bytes] | None:
    """(name, bytes) of the file starting with ``prefix`` in the experiment's snapshot copy."""
    files = read_copy(exp / COPY_FILE) or {}
    return next(((n, d) for n, d in files.items() if n.startswith(prefix)), None)


@pytest.mark.parametrize("copy", [True, False], ids=["with-copy", "copy-lost"])
def test_resume_from_a_half_uploaded_snapshot_finishes_the_grid(tmp_path: Path,
                                                                copy: bool) -> None:
    name = "mixed-snapshot"
    cfg = write_config(tmp_path / "sweep.yaml", name, tmp_path / "results", max_epochs=4,
                       max_concurrent=1, search=grid([0.7, 0.2, 0.5], sleep=0.4))
    exp, points = tmp_path / "results" / name, tmp_path / "points"
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = local_driver_env(db, points)
    run = SweepRun.start(["run", str(cfg)], env, tmp_path, tmp_path / "run.out")
    early: dict[str, tuple[str, bytes]] = {}

    def crash_point() -> dict | None:
        got = _copy_file(exp, "experiment_state-")
        if got is not None and not early and list(_table(got[1]).values()) == ["RUNNING"]:
            early["table"] = got  # a snapshot from while the first trial ran, alone
        try:
            st = json.loads((exp / "sweepcast_tracker.json").read_text()).get("trials", {})
        except (OSError, ValueError):
            return None
        pts = reported_points(points / name)
        done = [t for t, i in st.items() if i.get("status") == "completed"]
        running = [t for t, i in st.items() if i.get("status") == "running" and pts.get(t)]
        snap = _table(got[1]) if got is not None else {}
        if early and done and running and all(snap.get(t) == "RUNNING" for t in running):
            return {"done": done, "running": running}  # the newest snapshot has it running
        return None

    try:
        at = wait_for(crash_point, 240, "a completed trial and a second one running", run=run,
                      poll_s=0.1)
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, 9)  # the driver and the local Ray it started
            run.proc.wait(timeout=10)
    n_before = {t: len(ps) for t, ps in wait_reporters_gone(points / name).items()}

    [second] = at["running"]
    (first,) = _table(early["table"][1])

    # The mix of the CI failure: the newest searcher state (it issued `second`) beside the trial
    # table of the early snapshot (it never had `second`), as loose files; the copy is the newest.
    table_name, table = early["table"]
    searcher_name, searcher = _copy_file(exp, "basic-variant-state-")
    live = pickle.loads(searcher)["_live_trials"]
    assert second in live and first not in live, (live, first, second)
    assert (exp / table_name).is_file(), sorted(p.name for p in exp.iterdir())
    (exp / table_name).write_bytes(table)
    (exp / searcher_name).write_bytes(searcher)
    assert second not in _table((exp / table_name).read_bytes())
    _, trials_before = mlflow_sweep(db, name)
    runs_before = {t.trial_id: t.run_id for t in trials_before}

    if not copy:  # cut short as well: the searcher's slot of `second` must still be freed
        (exp / COPY_FILE).unlink()

    resume = SweepRun.start(["resume", str(exp)], env, tmp_path, tmp_path / "resume.out")
    rc = resume.wait(timeout_s=240)
    out = resume.output()
    assert rc == 0, out[-4000:]
    parents, trials = mlflow_sweep(db, name)
    assert len(parents) == 1, [p.info.run_id for p in parents]
    assert sorted(t.trial_id for t in trials) == sorted({t.trial_id for t in trials})
    by_id = {t.trial_id: t for t in trials}
    for tid, run_id in runs_before.items():
        assert by_id[tid].run_id == run_id  # each trial kept its run
    pts = reported_points(points / name)
    assert len(pts[first]) == n_before[first]  # ended before the kill: not run again
    assert len(trials) == 3, [(t.trial_id, t.sweepcast_status) for t in trials]
    after = pts[second][n_before[second]:]
    if copy:
        assert "were not all of one snapshot" in out and table_name in out, out[-4000:]
        assert (exp / f"{table_name}.mixed").read_bytes() == table  # the mixed file, kept
        for t in trials:
            assert (t.status, t.sweepcast_status) == ("FINISHED", "completed"), t
            assert 4 in t.history, (t.trial_id, t.history)
        assert after and after[-1]["epoch"] == 4, pts[second]
        # resumed from the copy's checkpoint; what it reported after the resume reached MLflow
        # (a point reported at that checkpoint but still queued in the killed driver is lost:
        # RELIABILITY.md, scenario 2)
        assert after[0]["resumed_from"] <= n_before[second], (after[0], n_before)
        assert all(p["epoch"] in by_id[second].history for p in after), by_id[second].history
        gap = sorted({p["epoch"] for p in pts[second]} - set(by_id[second].history))
        print(f"killed with {first} completed and {second} at epoch {n_before[second]}; the "
              f"resume restarted {second} from epoch {after[0]['resumed_from']}; points of "
              f"{second} not in MLflow: {gap}")
        return
    # Without the copy Tune has no record of `second`: it cannot run it again, the searcher
    # issues the grid's next point instead, and `second`'s run is closed as lost.
    assert f"note: {second} started after Tune's last snapshot" in out, out[-4000:]
    assert not after, after
    lost = by_id[second]
    assert (lost.status, lost.sweepcast_status) == ("FAILED", "failed"), lost
    assert MlflowClient(db).get_run(lost.run_id).data.tags[TAG_STOP_REASON] == LOST_REASON
    for t in trials:
        if t.trial_id != second:
            assert (t.status, t.sweepcast_status) == ("FINISHED", "completed"), t
            assert 4 in t.history, (t.trial_id, t.history)
