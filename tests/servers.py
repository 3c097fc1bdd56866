"""Real-server helpers shared by fixtures and tests (a module of its own: ``conftest`` names
clash between test folders, so tests import these from here, never from a conftest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cluster.local import free_port  # one "free port on 127.0.0.1" helper (re-exported here)


def _mlflow_executable() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "mlflow"]


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} was up")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:  # not up yet
            last = e
        time.sleep(0.25)
    raise TimeoutError(f"{url} not healthy after {timeout_s}s (last error: {last})")


def start_mlflow_server(root: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start a real ``mlflow server`` on 127.0.0.1 storing under ``root``.

    Returns ``(process, uri)``. The process is the leader of a new session so that
    :func:`stop_mlflow_server` can stop it and its workers by process group. Reusing the same
    ``root`` and ``port`` after a stop restarts the same server (used by outage tests).
    """
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        *_mlflow_executable(),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(root / f"server-{port}.log", "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{uri}/health", timeout_s=120, proc=proc)
    except (RuntimeError, TimeoutError):
        stop_mlflow_server(proc)
        tail = (root / f"server-{port}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"mlflow server failed to start on {uri}; log tail:\n{tail}")
    return proc, uri


def stop_mlflow_server(proc: subprocess.Popen, timeout_s: float = 5) -> None:
    """Stop a server started by :func:`start_mlflow_server` (its whole process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


class MotoS3:
    """A real S3 API (moto's ``ThreadedMotoServer``) on 127.0.0.1 with a free port, in this
    process. ``uri(bucket, prefix)`` is a ``storage_path`` for pyarrow (endpoint in the query).
    Clients need credentials in the environment (any value: moto accepts them all)."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def client(self):  # boto3 S3 client on this server
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def uri(self, bucket: str, prefix: str = "") -> str:
        path = f"{bucket}/{prefix}".rstrip("/")
        return f"s3://{path}?endpoint_override=127.0.0.1:{self.port}&scheme=http"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in ``bucket``."""
        out: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def stop(self) -> None:
        self._server.stop()


FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}
