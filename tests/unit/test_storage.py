"""Object-store ``storage_path`` (:mod:`orchestrator.storage`) against a real S3 API (moto's
server on 127.0.0.1): URI checks, the mirror's upload/download round trip, the remote driver
lock, name lookup for ``resume``, and the errors for a dead endpoint or a missing bucket."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import FAKE_AWS_ENV, MotoS3

from orchestrator.storage import (
    Mirror,
    StorageError,
    check_uri,
    is_uri,
    mirror_path,
    open_remote,
)


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    old = {k: os.environ.get(k) for k in FAKE_AWS_ENV}
    os.environ.update(FAKE_AWS_ENV)
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
def bucket(s3: MotoS3, request: pytest.FixtureRequest) -> str:
    name = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEPCAST_CACHE_DIR", str(tmp_path / "cache"))


def test_uri_checks_name_the_value_without_secrets() -> None:
    assert is_uri("s3://b/p") and is_uri("gs://b/p")
    assert not is_uri("./results") and not is_uri("file:///tmp/x") and not is_uri("/abs/s3:")
    check_uri("s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http")
    with pytest.raises(ValueError, match=r"unknown storage scheme 'ftp://'.*'ftp://b/x'"):
        check_uri("ftp://b/x")
    with pytest.raises(ValueError, match="no bucket"):
        check_uri("s3:///x")
    for bad in ("s3://AKIAXX:sEcReT@b/p", "s3://b/p?secret_key=sEcReT"):
        with pytest.raises(ValueError, match="must not carry credentials") as e:
            check_uri(bad)
        assert "sEcReT" not in str(e.value) and "***" in str(e.value)


def test_mirror_round_trip(s3: MotoS3, bucket: str, tmp_path: Path) -> None:
    exp = open_remote(s3.uri(bucket, "sweeps")).child("demo")
    local = mirror_path(exp)
    assert local == tmp_path / "cache" / "mirrors" / exp.parent().key() / "demo"
    m = Mirror(exp, local, period_s=0.05)
    m.reset_local()
    (local / "sweepcast_sweep.json").write_text('{"version": 1}')
    (local / "tracking").mkdir()
    (local / "tracking" / "tracking_spill.jsonl").write_text("{}\n")
    (local / "tracking" / "staged_artifacts").mkdir()
    (local / "tracking" / "staged_artifacts" / "plot.png").write_bytes(b"png")
    (local / "sweepcast_driver.lock").write_text("{}")
    (local / ".tmp-abc.json").write_text("partial")
    with m:
        pass  # the final round on exit uploads everything that changed
    assert s3.keys(bucket, "sweeps/demo/") == [
        "sweeps/demo/sweepcast_sweep.json", "sweeps/demo/tracking/tracking_spill.jsonl"]
    assert m.push() == []  # nothing changed since
    (local / "sweepcast_sweep.json").write_text('{"version": 1, "resumes": 1}')
    assert m.push() == ["sweepcast_sweep.json"]
    # Tune's files, written by Tune straight to the store (top level and a trial folder)
    s3.client().put_object(Bucket=bucket, Key="sweeps/demo/experiment_state-1.json", Body=b"{}")
    s3.client().put_object(Bucket=bucket, Key="sweeps/demo/t_00000/checkpoint_000001/c",
                           Body=b"ckpt")
    s3.client().put_object(Bucket=bucket, Key="sweeps/demo/sweepcast_driver.lock", Body=b"{}")

    import shutil

    shutil.rmtree(local)  # another machine: no mirror
    again = Mirror(exp, local)
    got = again.pull()
    assert got == ["experiment_state-1.json", "sweepcast_sweep.json",
                   "tracking/tracking_spill.jsonl"]  # no trial folders, no lock
    assert json.loads((local / "sweepcast_sweep.json").read_text())["resumes"] == 1
    assert again.push() == []  # what was downloaded is not uploaded back
    (local / "experiment_state-1.json").write_text('{"edited": true}')
    assert again.push(strict=True) == ["experiment_state-1.json"]
    body = s3.client().get_object(Bucket=bucket, Key="sweeps/demo/experiment_state-1.json")
    assert json.loads(body["Body"].read()) == {"edited": True}


def test_background_rounds_upload_while_running(s3: MotoS3, bucket: str) -> None:
    import time

    exp = open_remote(s3.uri(bucket)).child("bg")
    m = Mirror(exp, mirror_path(exp), period_s=0.05)
    m.reset_local()
    with m:
        (m.local / "sweepcast_tracker.json").write_text("{}")
        deadline = time.monotonic() + 10
        while "bg/sweepcast_tracker.json" not in s3.keys(bucket, "bg/"):
            assert time.monotonic() < deadline, "not uploaded by the background thread"
            time.sleep(0.05)


@pytest.mark.slow  # pyarrow retries a refused connection for ~6 s
def test_unreachable_endpoint_and_missing_bucket(s3: MotoS3) -> None:
    from cluster.local import free_port

    dead = f"s3://b/p?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    with pytest.raises(StorageError, match=r"cannot reach 's3://b/p\?endpoint_override="):
        open_remote(dead)
    with pytest.raises(StorageError, match=r"bucket 'no-such-bucket' does not exist"):
        open_remote(s3.uri("no-such-bucket", "x"))


def test_remote_driver_lock(s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.driver_lock as dl

    monkeypatch.setattr(dl, "REMOTE_SETTLE_S", 0.01)
    exp = open_remote(s3.uri(bucket, "s")).child("locked")
    key = "s/locked/sweepcast_driver.lock"
    with dl.DriverLock(mirror_path(exp), remote=exp):
        held = json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
        assert held["pid"] == os.getpid()
    assert key not in s3.keys(bucket, "s/")  # released
    # a live driver on another host (its local mirror elsewhere): refused, nothing taken
    other = {"host": "elsewhere", "pid": 1, "start": None, "since": "2026-01-01T00:00:00"}
    s3.client().put_object(Bucket=bucket, Key=key, Body=json.dumps(other).encode())
    with pytest.raises(dl.DriverLockError, match="being driven by pid 1 on elsewhere"):
        dl.DriverLock(mirror_path(exp), remote=exp).acquire()
    assert not (mirror_path(exp) / "sweepcast_driver.lock").exists()  # local lock given back
    with dl.DriverLock(mirror_path(exp), remote=exp, force=True):
        pass
    assert key not in s3.keys(bucket, "s/")


def test_resume_finds_a_sweep_by_name_under_a_uri(s3: MotoS3, bucket: str) -> None:
    from orchestrator.resume import ResumeError, find_experiment

    c = s3.client()
    for name, created in (("sw", 1.0), ("sw_20260101-000000", 2.0), ("sw-other", 3.0)):
        c.put_object(Bucket=bucket, Key=f"r/{name}/sweepcast_sweep.json",
                     Body=json.dumps({"created_unix": created}).encode())
    root = s3.uri(bucket, "r")
    got = find_experiment("sw", root)
    assert got == s3.uri(bucket, "r/sw_20260101-000000")  # the latest started, query kept
    assert find_experiment(got) == got
    with pytest.raises(ResumeError, match="no resumable sweep 'nope' under s3://"):
        find_experiment("nope", root)
    with pytest.raises(ResumeError, match="not a sweepcast experiment"):
        find_experiment(s3.uri(bucket, "r/missing"))


def test_a_taken_name_gets_a_stamp_and_a_bad_store_is_a_config_error(
        s3: MotoS3, bucket: str, tmp_path: Path) -> None:
    import datetime as dt
    from types import SimpleNamespace

    from orchestrator.sweep import SweepConfigError, locate_experiment

    root = s3.uri(bucket, "runs")
    cfg = SimpleNamespace(name="demo", storage_path=root)
    folder, remote = locate_experiment(cfg)
    assert remote.uri == s3.uri(bucket, "runs/demo") and folder == mirror_path(remote)
    s3.client().put_object(Bucket=bucket, Key="runs/demo/tuner.pkl", Body=b"x")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    _, remote = locate_experiment(cfg, now)
    assert remote.path == f"{bucket}/runs/demo_20260102-030405"
    with pytest.raises(SweepConfigError, match=r"^storage_path: bucket 'nope' does not exist"):
        locate_experiment(SimpleNamespace(name="demo", storage_path=s3.uri("nope")))
