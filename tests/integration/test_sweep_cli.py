"""``sweepcast run`` refuses to start: invalid config (exit 2) and unreachable MLflow (exit 1).

Both run the real console command in a subprocess; neither may start Ray or leave Tune state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _sweepcast(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("sweepcast")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "orchestrator.cli"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _config(tmp_path: Path, **over) -> Path:
    cfg = {
        "name": "cli-check", "trainable": "trials.examples.mlp:train", "metric": "val_accuracy",
        "mode": "max", "max_epochs": 2, "num_samples": 1,
        "search": {"algorithm": "random", "space": {
            "lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}}},
        "storage_path": str(tmp_path / "results"),
        **over,
    }
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def test_invalid_config_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    path = _config(tmp_path, search={"algorithm": "random", "space": {
        "lr": {"type": "loguniform", "low": 0.0, "high": 1e-1}}})
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    r = _sweepcast(["run", str(path)], tmp_path, env)
    assert r.returncode == 2, r.stderr
    assert "search.space.lr.low" in r.stderr and "nothing started" in r.stderr
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_mlflow_exits_1_naming_the_uri_without_credentials(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://bob:pa55word-XYZ@127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    r = _sweepcast(["run", str(_config(tmp_path))], tmp_path, env)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"http://***@127.0.0.1:{port}" in r.stderr
    assert "pa55word-XYZ" not in out
    assert "Ray" not in r.stdout  # the sweep never got as far as Ray
    assert not (tmp_path / "results").exists()  # no experiment folder, no Tune state


def test_unreachable_object_store_from_env_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    from cluster.local import free_port

    path = _config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    del cfg["storage_path"]  # taken from the environment, as the cluster manifests do
    path.write_text(yaml.safe_dump(cfg))
    uri = f"s3://bucket/sweeps?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "SWEEPCAST_STORAGE_PATH": uri, "SWEEPCAST_CACHE_DIR": str(tmp_path / "cache"),
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
    r = _sweepcast(["run", str(path)], tmp_path, env)
    assert r.returncode == 2, r.stderr
    assert f"SWEEPCAST_STORAGE_PATH: cannot reach {uri!r}" in r.stderr, r.stderr
    assert "nothing started" in r.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "cache").exists()


def test_missing_bucket_exits_2_naming_storage_path(tmp_path: Path) -> None:
    from servers import FAKE_AWS_ENV, MotoS3

    s3 = MotoS3()
    try:
        uri = s3.uri("no-such-bucket", "sweeps")
        env = {**os.environ, **FAKE_AWS_ENV,
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
               "SWEEPCAST_CACHE_DIR": str(tmp_path / "cache")}
        r = _sweepcast(["run", str(_config(tmp_path, storage_path=uri))], tmp_path, env)
    finally:
        s3.stop()
    assert r.returncode == 2, r.stderr
    assert "storage_path: bucket 'no-such-bucket' does not exist" in r.stderr, r.stderr
    assert uri in r.stderr and "nothing started" in r.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "cache").exists()
