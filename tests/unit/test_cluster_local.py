"""Smoke test of `sweepcast cluster up/down` and of submit/status/logs/stop against that cluster.

Real processes: a head and two workers as separate `ray start` processes, the Ray Jobs API on
the head's dashboard, a real MLflow server for the submitted sweep. One cluster for the module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cluster.local import load_state, marked_processes

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SWEEPCAST = str(Path(sys.executable).with_name("sweepcast"))
PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
@ray.remote(num_cpus=0)
def where():
    return ray.get_runtime_context().get_node_id()
out = {}
for name in sys.argv[2:]:
    out[name] = ray.get(where.options(resources={name: 0.01}).remote())
print(json.dumps(out))
"""


def _cli(*args: str, env: dict | None = None, timeout: float = 300,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SWEEPCAST, *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def _port_open(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("cluster")
    res = _cli("cluster", "up", "--workers", "2", "--run-dir", str(run_dir))
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        yield run_dir
    finally:
        if (run_dir / "cluster.json").exists():
            _cli("cluster", "down", "--run-dir", str(run_dir))


def test_up_starts_separate_nodes_with_their_own_resources(cluster_dir: Path) -> None:
    state = load_state(cluster_dir)
    assert [n.role for n in state.nodes] == ["head", "worker", "worker"]
    assert len({n.node_id for n in state.nodes}) == 3 and all(n.node_id for n in state.nodes)
    assert len({n.pid for n in state.nodes}) == 3
    assert state.gcs_address.startswith("127.0.0.1:") and state.dashboard_url.startswith(
        "http://127.0.0.1:")
    # A task needing worker-i's own resource runs on worker-i's node.
    names = [n.name for n in state.workers]
    env = {**os.environ, **state.client_env()}
    out = subprocess.run([sys.executable, "-c", PROBE, state.gcs_address, *names],
                         check=False, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    placed = json.loads(out.stdout.strip().splitlines()[-1])
    assert placed == {n.name: n.node_id for n in state.workers}
    status = _cli("cluster", "status", "--run-dir", str(cluster_dir))
    assert status.returncode == 0 and status.stdout.count("alive") == 3
    assert state.auth == "token"  # the default: Ray token auth on the loopback cluster


def test_submit_status_logs_stop(cluster_dir: Path, tmp_path: Path, mlflow_server: str,
                                 repo_root: Path) -> None:
    import orchestrator.commands.run  # noqa: F401
    state = load_state(cluster_dir)
    wd = tmp_path / "job"
    wd.mkdir()
    (wd / "sc_fault_trainables.py").write_text(
        (repo_root / "tests" / "fault" / "sc_fault_trainables.py").read_text())
    base = {
        "name": "submitted", "trainable": "sc_fault_trainables:train", "metric": "quality",
        "mode": "max", "max_epochs": 3, "num_samples": 2, "max_concurrent": 2,
        "search": {"algorithm": "random", "seed": 0, "space": {
            "x": {"type": "uniform", "low": 0.0, "high": 1.0},
            "sleep": {"type": "choice", "values": [0.2]}}},
        "tracking": {"experiment": "submitted-sweep"},
        "storage_path": str(tmp_path / "results"),
    }
    (wd / "sweep.yaml").write_text(yaml.safe_dump(base))
    (wd / "long.yaml").write_text(yaml.safe_dump({**base, "name": "long", "max_epochs": 200,
                                                  "num_samples": 1}))
    plain = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server)
    for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE"):
        plain.pop(k, None)
    env = {**plain, **state.client_env()}  # what `cluster up` tells the user to export

    # submit, follow to the end: exit 0 iff SUCCEEDED; the sweep's own output comes through
    res = _cli("submit", "sweep.yaml", "--address", state.dashboard_url, "--working-dir",
               str(wd), "--follow", "--submission-id", "sc-ok", env=env, cwd=wd)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "submitted sweep 'submitted' as job sc-ok" in res.stdout
    assert "SUCCEEDED" in res.stderr
    # address and token use taken from the cluster's run dir alone
    logs = _cli("logs", "sc-ok", "--run-dir", str(cluster_dir), env=plain)
    assert logs.returncode == 0 and "submitted" in logs.stdout
    st = _cli("status", "sc-ok", "--address", state.dashboard_url, env=env)
    assert st.returncode == 0 and "SUCCEEDED" in st.stdout

    # a long job, stopped
    res = _cli("submit", "long.yaml", "--address", state.dashboard_url, "--working-dir",
               str(wd), "--submission-id", "sc-long", env=env, cwd=wd)
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = _cli("status", "sc-long", "--address", state.dashboard_url, env=env)
        if "RUNNING" in st.stdout:
            break
        time.sleep(1)
    stop = _cli("stop", "sc-long", "--address", state.dashboard_url, env=env)
    assert stop.returncode == 0 and "STOPPED" in stop.stdout, stop.stdout + stop.stderr
    listing = _cli("status", "--address", state.dashboard_url, env=env)
    assert "sc-ok" in listing.stdout and "sc-long" in listing.stdout
    assert "STOPPED" in listing.stdout

    unknown = _cli("status", "nope", "--address", state.dashboard_url, env=env)
    assert unknown.returncode == 1 and "nope" in unknown.stderr


def test_down_stops_exactly_what_up_started(cluster_dir: Path) -> None:
    state = load_state(cluster_dir)
    assert marked_processes(state.cluster_id)  # raylets, agents, workers carry the marker
    res = _cli("cluster", "down", "--run-dir", str(cluster_dir))
    assert res.returncode == 0, res.stderr
    assert marked_processes(state.cluster_id) == []
    assert not _port_open(state.gcs_address)
    assert not (cluster_dir / "cluster.json").exists()
    assert (cluster_dir / "cluster.json.stopped").exists()
    again = _cli("cluster", "down", "--run-dir", str(cluster_dir))
    assert again.returncode == 1 and "no local cluster" in again.stderr
