"""Pure tests of the job-submission plumbing and the local-cluster bookkeeping (no Ray started)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from cluster.jobs import (
    JobsError,
    build_runtime_env,
    parse_env_pairs,
    redact,
    resolve_address,
    split_credentials,
    strip_credentials,
)
from cluster.local import ClusterError, ClusterState, NodeState, _node_cmd, load_state, up


def test_redact_hides_userinfo_anywhere_in_text() -> None:
    msg = "Failed to connect to Ray at address: http://alice:s3cr3t@10.0.0.1:8265/api."
    out = redact(msg)
    assert "s3cr3t" not in out and "alice" not in out
    assert "http://***@10.0.0.1:8265/api" in out
    assert redact("http://10.0.0.1:8265") == "http://10.0.0.1:8265"


def test_split_credentials_moves_them_into_a_basic_auth_header() -> None:
    ep = split_credentials("https://bob:p%40ss@ray.example:8443/")
    assert ep.url == "https://ray.example:8443"
    assert ep.headers is not None
    assert base64.b64decode(ep.headers["Authorization"].split()[1]) == b"bob:p@ss"
    assert "p@ss" not in repr(ep) and "cA==" not in repr(ep)
    plain = split_credentials("127.0.0.1:8265")
    assert plain.url == "http://127.0.0.1:8265" and plain.headers is None


def test_split_credentials_rejects_non_http_and_redacts_the_message() -> None:
    with pytest.raises(JobsError) as ei:
        split_credentials("ray://eve:pw@host:10001")
    assert "pw" not in str(ei.value) and "ray://***@host:10001" in str(ei.value)


def test_strip_credentials_keeps_everything_but_userinfo() -> None:
    assert strip_credentials("https://u:p@mlflow.local:5000/x?y=1") == "https://mlflow.local:5000/x?y=1"
    assert strip_credentials("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_env_pairs_refuse_secrets_and_malformed() -> None:
    assert parse_env_pairs(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
    for bad, needle in [
        (["MLFLOW_TRACKING_PASSWORD=x"], "MLFLOW_TRACKING_PASSWORD"),
        (["HF_TOKEN=x"], "HF_TOKEN"),
        (["NOEQUALS"], "NOEQUALS"),
        (["=v"], "key"),
    ]:
        with pytest.raises(JobsError, match=needle):
            parse_env_pairs(bad)


def test_runtime_env_forwards_uri_without_credentials(tmp_path: Path) -> None:
    environ = {
        "MLFLOW_TRACKING_URI": "http://user:pw@127.0.0.1:5000",
        "MLFLOW_TRACKING_PASSWORD": "pw",
        "SWEEPCAST_STORAGE_PATH": "/shared/sweeps",
    }
    rt, notes = build_runtime_env(tmp_path, env={"X": "1"}, excludes=["data/"], environ=environ)
    ev = rt["env_vars"]
    assert ev["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert ev["SWEEPCAST_STORAGE_PATH"] == "/shared/sweeps"
    assert ev["X"] == "1" and ev["OMP_NUM_THREADS"] == "1"
    assert "MLFLOW_TRACKING_PASSWORD" not in ev
    assert "pw" not in repr(rt)
    assert rt["working_dir"] == str(tmp_path.resolve())
    assert ".venv" in rt["excludes"] and "data/" in rt["excludes"]
    assert notes and "credentials" in notes[0] and "pw" not in notes[0]
    # an explicit --env wins over forwarding
    rt2, _ = build_runtime_env(tmp_path, env={"SWEEPCAST_STORAGE_PATH": "/x"}, environ=environ)
    assert rt2["env_vars"]["SWEEPCAST_STORAGE_PATH"] == "/x"


def test_resolve_address_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a GCS address is not a dashboard
    with pytest.raises(JobsError, match="sweepcast cluster up"):
        resolve_address(None, tmp_path)
    state = ClusterState("abc", str(tmp_path), "127.0.0.1", "127.0.0.1:1", "http://127.0.0.1:9")
    (tmp_path / "cluster.json").write_text(state.to_json())
    assert resolve_address(None, tmp_path) == "http://127.0.0.1:9"
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:7")
    assert resolve_address(None, tmp_path) == "http://127.0.0.1:7"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8")
    assert resolve_address(None, tmp_path) == "http://127.0.0.1:8"
    assert resolve_address("http://h:1", tmp_path) == "http://h:1"


def test_cluster_state_roundtrips_as_json() -> None:
    st = ClusterState(
        "id1", "/r", "127.0.0.1", "127.0.0.1:1", "",
        nodes=[NodeState("sweepcast-head", "head", 1, "ab", {"CPU": 0.0}, "/l", "/tmp/sc-x")],
        started_at=3.0,
    )
    back = ClusterState.from_json(st.to_json())
    assert back == st
    assert back.node("sweepcast-head").pid == 1
    with pytest.raises(KeyError, match="sweepcast-head"):
        back.node("nope")


def test_node_command_binds_loopback_and_isolates_ports() -> None:
    cmd = _node_cmd(
        head=True, name="sweepcast-head", host="127.0.0.1", gcs_address=None, gcs_port=1234,
        dashboard_port=4321, num_cpus=0, num_gpus=0, resources={}, object_store_bytes=10**8,
        temp_dir="/tmp/sc-t", system_config=None,
    )
    assert "--block" in cmd and "--head" in cmd
    assert "--node-ip-address=127.0.0.1" in cmd and "--dashboard-host=127.0.0.1" in cmd
    assert "--port=1234" in cmd and "--temp-dir=/tmp/sc-t" in cmd
    worker = _node_cmd(
        head=False, name="sweepcast-worker-0", host="127.0.0.1", gcs_address="127.0.0.1:1234",
        gcs_port=None, dashboard_port=None, num_cpus=1, num_gpus=0,
        resources={"sweepcast-worker-0": 1.0}, object_store_bytes=10**8, temp_dir="/tmp/sc-u",
        system_config=None,
    )
    assert "--address=127.0.0.1:1234" in worker and "--head" not in worker
    assert '--resources={"sweepcast-worker-0": 1.0}' in worker
    assert not any(a.startswith("--dashboard-host") for a in worker)


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"workers": -1}, "workers"), ({"cpus_per_worker": 0}, "cpus_per_worker"),
     ({"head_cpus": -1}, "head_cpus"), ({"object_store_mb": 10}, "object_store_mb")],
)
def test_up_rejects_bad_arguments_before_starting_anything(
    tmp_path: Path, kwargs: dict, needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        up(tmp_path, **kwargs)
    assert not (tmp_path / "cluster.json").exists()


def test_down_without_a_cluster_says_so(tmp_path: Path) -> None:
    from orchestrator.cli import main

    with pytest.raises(ClusterError, match="no local cluster"):
        load_state(tmp_path)
    res = CliRunner().invoke(main, ["cluster", "down", "--run-dir", str(tmp_path)])
    assert res.exit_code == 1 and "no local cluster" in res.output


def test_submit_invalid_config_exits_2_and_submits_nothing(tmp_path: Path) -> None:
    from orchestrator.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmode: sideways\n")
    res = CliRunner().invoke(
        main, ["submit", str(bad), "--address", "http://127.0.0.1:9", "--working-dir",
               str(tmp_path)],
    )
    assert res.exit_code == 2, res.output
    assert "mode" in res.output and "nothing submitted" in res.output


def test_submit_config_outside_working_dir_exits_2(tmp_path: Path, repo_root: Path) -> None:
    from orchestrator.cli import main

    wd = tmp_path / "wd"
    wd.mkdir()
    res = CliRunner().invoke(
        main, ["submit", str(repo_root / "examples" / "quickstart.yaml"), "--address",
               "http://127.0.0.1:9", "--working-dir", str(wd)],
    )
    assert res.exit_code == 2, res.output
    assert "inside the working dir" in res.output


def test_submit_unreachable_dashboard_is_a_clear_redacted_error(
    tmp_path: Path, repo_root: Path
) -> None:
    from cluster.local import free_port
    from orchestrator.cli import main

    res = CliRunner().invoke(
        main, ["submit", "examples/quickstart.yaml", "--address",
               f"http://alice:s3cr3t@127.0.0.1:{free_port()}", "--working-dir", str(repo_root)],
    )
    assert res.exit_code == 1, res.output
    assert "s3cr3t" not in res.output and "alice" not in res.output
    assert "127.0.0.1" in res.output
