"""A sweep with ``storage_path`` on an object store (S3 API: moto's server on 127.0.0.1): the
driver is SIGKILLed mid-sweep, its local mirror deleted (as on another machine), and
``sweepcast resume s3://...`` finishes the sweep from what is in the bucket alone.

Checks: Tune's experiment state, trial checkpoints and sweepcast's state files are objects in
the bucket; the resume reuses the parent run and every trial keeps its one run (no duplicates);
a trial that ended before the crash is not run again. The driver uses its own local Ray (the
AWS variables reach its workers from its environment).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import (
    SweepRun,
    grid,
    local_driver_env,
    mlflow_sweep,
    reported_points,
    wait_for,
    write_config,
)
from servers import FAKE_AWS_ENV, MotoS3

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.integration]

BUCKET = "sweeps"


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    for k, v in FAKE_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    server = MotoS3()
    server.client().create_bucket(Bucket=BUCKET)
    try:
        yield server
    finally:
        server.stop()


def _tracker_state(s3: MotoS3, key: str) -> dict:
    try:
        return json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    except Exception:  # noqa: BLE001 - not uploaded yet
        return {}


def test_kill_then_resume_from_the_bucket_without_duplicates(s3: MotoS3, tmp_path: Path) -> None:
    name = "s3-resume"
    root = s3.uri(BUCKET, "team")
    cfg = write_config(tmp_path / "sweep.yaml", name, tmp_path / "unused", max_epochs=4,
                       max_concurrent=1, search=grid([0.7, 0.2, 0.5], sleep=0.4),
                       storage_path=root)
    cache, points = tmp_path / "cache", tmp_path / "points"
    env = local_driver_env(f"sqlite:///{tmp_path / 'mlflow.db'}", points,
                           **FAKE_AWS_ENV, SWEEPCAST_CACHE_DIR=str(cache))
    run = SweepRun.start(["run", str(cfg)], env, tmp_path, tmp_path / "run.out")
    state_key = f"team/{name}/sweepcast_tracker.json"

    def crash_point() -> dict | None:
        st = _tracker_state(s3, state_key).get("trials", {})
        done = [t for t, i in st.items() if i.get("status") == "completed"]
        pts = reported_points(points / name)
        running = [t for t, i in st.items() if i.get("status") == "running"]
        if done and any(pts.get(t) for t in running):
            return {t: i.get("status") for t, i in st.items()}
        return None

    try:
        before = wait_for(crash_point, 240, "a completed trial and another one running", run=run)
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, 9)  # the driver and the local Ray it started
            run.proc.wait(timeout=10)
    keys = s3.keys(BUCKET, f"team/{name}/")
    rel = [k[len(f"team/{name}/"):] for k in keys]
    for own in ("sweepcast_sweep.json", "sweepcast_tracker.json", "sweepcast_driver.lock"):
        assert own in rel, rel  # the dead driver's lock is left behind in the bucket
    assert "tuner.pkl" in rel and any(r.startswith("experiment_state-") for r in rel), rel
    assert any("/checkpoint_" in r for r in rel), rel  # the trials' checkpoints went there
    done_before = sorted(t for t, s in before.items() if s == "completed")
    n_before = {t: len(ps) for t, ps in reported_points(points / name).items()}
    _, trials_before = mlflow_sweep(f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    runs_before = {t.trial_id: t.run_id for t in trials_before}

    shutil.rmtree(cache)  # another machine: nothing but the bucket
    target = s3.uri(BUCKET, f"team/{name}")
    resume = SweepRun.start(["resume", target], env, tmp_path, tmp_path / "resume.out")
    rc = resume.wait(timeout_s=300)
    out = resume.output()
    assert rc == 0, out[-4000:]
    assert "(reused)" in out and f"resuming sweep {name} from {target}" in out, out[-4000:]

    parents, trials = mlflow_sweep(f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    assert len(parents) == 1, [p.info.run_id for p in parents]  # no second parent run
    assert len(trials) == 3 and len({t.trial_id for t in trials}) == 3, trials
    by_id = {t.trial_id: t for t in trials}
    for tid, run_id in runs_before.items():
        assert by_id[tid].run_id == run_id  # a trial kept its run across the crash
    for t in trials:
        assert t.sweepcast_status == "completed" and t.status == "FINISHED", t
    pts = reported_points(points / name)
    for tid in done_before:  # ended before the crash: not run again
        assert len(pts[tid]) == n_before[tid], (tid, pts[tid])
    rel = [k[len(f"team/{name}/"):] for k in s3.keys(BUCKET, f"team/{name}/")]
    assert "sweepcast_ledger.json" in rel and "sweepcast_driver.lock" not in rel, rel
    manifest = json.loads(s3.client().get_object(
        Bucket=BUCKET, Key=f"team/{name}/sweepcast_sweep.json")["Body"].read())
    assert manifest["resumes"] == 1
    assert FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in (tmp_path / "run.out").read_text() + out
