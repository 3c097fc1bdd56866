"""A local multi-node Ray cluster on one machine: a head and N workers as separate processes.

Each node is one ``ray start --block`` process (the leader of its own session) with its own
ports, temp dir, resources and node name (``sweepcast-head``, ``sweepcast-worker-0``, ...).
Every process ``up`` spawns carries the environment marker ``SWEEPCAST_CLUSTER_ID=<id>``, which
Ray passes down to the raylet, its agents and the worker processes. ``down`` stops exactly
those: it SIGTERMs each node's ``ray start`` (which shuts its node down gracefully), then
SIGKILLs any process still carrying this cluster's marker. It never calls ``ray stop``, which
would kill every Ray on the machine.

State lives in ``<run_dir>/cluster.json`` (see :class:`ClusterState`); ``down`` reads it, so it
works from another process or shell than ``up``.

Network exposure. The dashboard (Ray Jobs API) binds ``host`` (127.0.0.1 by default) and the
nodes are told ``--node-ip-address=host``. Ray 2.60 nevertheless replaces a loopback node
address by the machine's routable IP (``ray._private.services.resolve_ip_for_localhost``) and
its gRPC servers (GCS, raylets, agents) listen on all interfaces; no ``ray start`` flag changes
that. That is why ``up`` turns on Ray's token authentication by default (``auth="token"``):
nothing on those ports answers without the token. On a shared network, firewall them as well.

Example::

    state = up(Path(".sweepcast/cluster"), workers=2)
    # ray.init(address=state.gcs_address); JobSubmissionClient(state.dashboard_url)
    down(Path(".sweepcast/cluster"))
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MARKER_ENV = "SWEEPCAST_CLUSTER_ID"
STATE_FILE = "cluster.json"
HEAD_NAME = "sweepcast-head"
DEFAULT_RUN_DIR_ENV = "SWEEPCAST_CLUSTER_DIR"


class ClusterError(RuntimeError):
    """A local cluster could not be started, found or stopped; the message says which and why."""


@dataclass
class NodeState:
    """One node of a local cluster.

    Attributes:
        name: The Ray node name (``sweepcast-head`` or ``sweepcast-worker-<i>``).
        role: ``"head"`` or ``"worker"``.
        pid: PID of the node's ``ray start --block`` process (its session leader).
        node_id: Ray's hex node id, read back from the GCS after start ("" if not resolved).
        resources: Resources the node was started with (``CPU``, ``GPU``, custom ones).
        log: Path of the file receiving the ``ray start`` output.
        temp_dir: The node's Ray temp dir (sessions, logs, sockets).
    """

    name: str
    role: str
    pid: int
    node_id: str
    resources: dict[str, float]
    log: str
    temp_dir: str


@dataclass
class ClusterState:
    """What ``up`` started, persisted as JSON so ``down`` can stop exactly that.

    Attributes:
        cluster_id: Random id; the value of ``SWEEPCAST_CLUSTER_ID`` in every spawned process.
        run_dir: Folder holding ``cluster.json`` and the node logs.
        host: The interface the dashboard binds to (127.0.0.1 unless asked otherwise).
        gcs_address: ``host:port`` to pass as ``ray.init(address=...)`` / ``RAY_ADDRESS``.
        auth: ``"token"`` (Ray token authentication, the default) or ``"none"``.
        dashboard_url: ``http://host:port`` of the dashboard (Ray Jobs API), "" if disabled.
        nodes: The head first, then the workers.
        started_at: Unix time ``up`` finished.
    """

    cluster_id: str
    run_dir: str
    host: str
    gcs_address: str
    dashboard_url: str
    nodes: list[NodeState] = field(default_factory=list)
    started_at: float = 0.0
    auth: str = "none"

    def client_env(self) -> dict[str, str]:
        """Environment a driver needs to join this cluster (``RAY_ADDRESS``, ``RAY_AUTH_MODE``).

        With token auth the driver finds the token where Ray looks for it
        (``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``).
        """
        return {"RAY_ADDRESS": self.gcs_address,
                "RAY_AUTH_MODE": "token" if self.auth == "token" else "disabled"}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        raw = json.loads(text)
        nodes = [NodeState(**n) for n in raw.pop("nodes", [])]
        return cls(nodes=nodes, **raw)

    def node(self, name: str) -> NodeState:
        """The node called ``name``; raises ``KeyError`` naming the known nodes otherwise."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in this cluster; nodes: {[n.name for n in self.nodes]}")

    @property
    def workers(self) -> list[NodeState]:
        return [n for n in self.nodes if n.role == "worker"]


def default_run_dir() -> Path:
    """``$SWEEPCAST_CLUSTER_DIR`` if set, else ``.sweepcast/cluster`` in the working directory."""
    env = os.environ.get(DEFAULT_RUN_DIR_ENV)
    return Path(env) if env else Path.cwd() / ".sweepcast" / "cluster"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ray_executable() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "ray.scripts.scripts"]


def _short_temp_dir() -> str:
    # Ray puts unix sockets under the temp dir; AF_UNIX paths are limited to 107 bytes, so the
    # temp dir must be short whatever the run dir is (pytest's tmp paths are long).
    return tempfile.mkdtemp(prefix="sc-", dir="/tmp")


def load_state(run_dir: Path) -> ClusterState:
    """Read ``<run_dir>/cluster.json``; raises :class:`ClusterError` if there is none."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise ClusterError(f"no local cluster recorded in {run_dir} (missing {path.name})")
    return ClusterState.from_json(path.read_text())


def _write_state(state: ClusterState) -> None:
    path = Path(state.run_dir) / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def _node_cmd(
    *,
    head: bool,
    name: str,
    host: str,
    gcs_address: str | None,
    gcs_port: int | None,
    dashboard_port: int | None,
    num_cpus: float,
    num_gpus: float,
    resources: dict[str, float],
    object_store_bytes: int,
    temp_dir: str,
    system_config: dict[str, Any] | None,
) -> list[str]:
    cmd = [
        *_ray_executable(),
        "start",
        "--block",
        "--disable-usage-stats",
        f"--node-ip-address={host}",
        f"--node-name={name}",
        f"--num-cpus={int(num_cpus)}",
        f"--num-gpus={int(num_gpus)}",
        f"--object-store-memory={object_store_bytes}",
        f"--temp-dir={temp_dir}",
        f"--node-manager-port={free_port(host)}",
        f"--object-manager-port={free_port(host)}",
        f"--metrics-export-port={free_port(host)}",
        f"--dashboard-agent-listen-port={free_port(host)}",
        f"--dashboard-agent-grpc-port={free_port(host)}",
        f"--runtime-env-agent-port={free_port(host)}",
        # 0/0: each worker process binds a port the OS picks, so nodes on one host never clash.
        "--min-worker-port=0",
        "--max-worker-port=0",
        f"--labels=sweepcast-node={name}",
    ]
    if resources:
        cmd.append(f"--resources={json.dumps(resources)}")
    if head:
        cmd += [
            "--head",
            f"--port={gcs_port}",
            f"--ray-client-server-port={free_port(host)}",
        ]
        if dashboard_port:
            cmd += [
                "--include-dashboard=true",
                f"--dashboard-host={host}",
                f"--dashboard-port={dashboard_port}",
            ]
        else:
            cmd.append("--include-dashboard=false")
        if system_config:
            cmd.append(f"--system-config={json.dumps(system_config)}")
    else:
        cmd.append(f"--address={gcs_address}")
    return cmd


def _spawn(cmd: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def _wait_port(host: str, port: int, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(
                f"ray start exited with code {proc.returncode} before {host}:{port} was up; "
                f"log tail:\n{_tail(log)}"
            )
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.25)
    raise ClusterError(f"{host}:{port} not reachable after {timeout_s}s; log tail:\n{_tail(log)}")


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


_ALIVE_PROBE = """
import json, sys
from ray._raylet import GcsClient
infos = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=float(sys.argv[2]))
print(json.dumps({i.node_name: i.node_id.hex() for i in infos.values() if i.state == 0}))
"""


def alive_nodes(gcs_address: str, auth: str = "none", timeout_s: float = 10.0) -> dict[str, str]:
    """Map node name -> hex node id of the ALIVE nodes the GCS at ``gcs_address`` knows.

    Runs Ray's own GCS client in a subprocess, so the caller's process never switches its Ray
    authentication mode (a process-wide setting in Ray).
    """
    env = dict(os.environ, RAY_AUTH_MODE="token" if auth == "token" else "disabled")
    out = subprocess.run(
        [sys.executable, "-c", _ALIVE_PROBE, gcs_address, str(timeout_s)],
        check=False, capture_output=True, text=True, env=env, timeout=timeout_s + 60,
    )
    if out.returncode != 0:
        raise ClusterError(f"cannot list nodes of {gcs_address}: {out.stderr.strip()[-800:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ray_token() -> str | None:
    """The Ray auth token where Ray looks for it: ``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH``,
    ``~/.ray/auth_token``; ``None`` if there is none."""
    tok = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if tok:
        return tok
    for p in (os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")):
        if p and Path(p).is_file():
            tok = Path(p).read_text().strip()
            if tok:
                return tok
    return None


def _ensure_token() -> None:
    if ray_token() is None:
        from ray._private.authentication.authentication_token_setup import (
            generate_and_save_token,
        )

        generate_and_save_token()  # ~/.ray/auth_token, as a local ray.init() would


def _wait_nodes(
    gcs_address: str, names: Iterable[str], procs: dict[str, subprocess.Popen],
    logs: dict[str, Path], timeout_s: float, auth: str,
) -> dict[str, str]:
    wanted = set(names)
    deadline = time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ClusterError(
                    f"node {name} exited with code {proc.returncode} while starting; "
                    f"log tail:\n{_tail(logs[name])}"
                )
        try:
            seen = alive_nodes(gcs_address, auth)
            last_err = None
        except Exception as e:  # noqa: BLE001 - GCS busy right after start: retry
            last_err = e
        if wanted <= set(seen):
            return {n: seen[n] for n in wanted}
        time.sleep(0.5)
    raise ClusterError(
        f"nodes {sorted(wanted - set(seen))} did not register with the GCS at {gcs_address} "
        f"within {timeout_s}s (last error: {last_err})"
    )


def up(
    run_dir: Path | None = None,
    *,
    workers: int = 2,
    head_cpus: float = 0,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    worker_resources: dict[str, float] | None = None,
    host: str = "127.0.0.1",
    dashboard: bool = True,
    object_store_mb: int = 128,
    system_config: dict[str, Any] | None = None,
    auth: str = "token",
    env: dict[str, str] | None = None,
    timeout_s: float = 180.0,
) -> ClusterState:
    """Start a head and ``workers`` worker nodes, each as its own ``ray start --block``.

    Args:
        run_dir: Where state and logs go (default :func:`default_run_dir`). Must not hold a
            running cluster already.
        workers: Number of worker nodes (>= 0).
        head_cpus: CPUs the head offers to tasks (default 0: trials run on workers only, so
            losing a worker really loses its trials).
        cpus_per_worker: CPUs per worker node (> 0).
        gpus_per_worker: GPUs per worker node (>= 0; logical, not checked against hardware).
        worker_resources: Extra custom resources per worker. Every worker also gets
            ``{"<node name>": 1}`` so a task can be pinned to it.
        host: Interface the dashboard binds to and the nodes' address; 127.0.0.1 unless the
            user asks otherwise (see the module docstring for what Ray binds regardless).
        dashboard: Start the dashboard (needed for the Ray Jobs API / ``sweepcast submit``).
        object_store_mb: Object store size per node in MiB (Ray's minimum is ~75).
        system_config: Ray system config for the head (e.g. faster health checks in tests).
        auth: ``"token"``: Ray token authentication (every client needs
            ``RAY_AUTH_MODE=token`` and the token, see :meth:`ClusterState.client_env`; a token
            is generated in ``~/.ray/auth_token`` if Ray finds none), or ``"none"``. Set
            explicitly either way: Ray 2.60 would otherwise switch it on whenever some earlier
            ``ray.init()`` left a token file behind.
        env: Extra environment variables for every node's processes (raylet, workers), e.g.
            ``PYTHONPATH`` so trials import modules the cluster's image lacks.
        timeout_s: How long to wait for every node to register.

    Returns:
        The :class:`ClusterState`, also written to ``<run_dir>/cluster.json``.

    Raises:
        ValueError: a bad argument (the message names it and the value).
        ClusterError: a cluster is already recorded in ``run_dir`` and alive, or a node failed
            to start (everything started so far is stopped again).
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers!r}")
    if cpus_per_worker <= 0:
        raise ValueError(f"cpus_per_worker must be > 0, got {cpus_per_worker!r}")
    for label, v in (("head_cpus", head_cpus), ("gpus_per_worker", gpus_per_worker)):
        if v < 0:
            raise ValueError(f"{label} must be >= 0, got {v!r}")
    if auth not in ("token", "none"):
        raise ValueError(f"auth must be 'token' or 'none', got {auth!r}")
    if object_store_mb < 76:
        raise ValueError(f"object_store_mb must be >= 76 (Ray's minimum), got {object_store_mb!r}")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / STATE_FILE).exists():
        old = load_state(run_dir)
        if any(_pid_alive(n.pid) for n in old.nodes):
            raise ClusterError(
                f"a local cluster is already running from {run_dir} "
                f"(GCS {old.gcs_address}); run `sweepcast cluster down` first"
            )
        (run_dir / STATE_FILE).unlink()

    cluster_id = uuid.uuid4().hex[:12]
    extra_env = dict(env or {})
    env = dict(os.environ)
    env.update(extra_env)
    env[MARKER_ENV] = cluster_id
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.pop("RAY_ADDRESS", None)
    if auth == "token":
        _ensure_token()
    env["RAY_AUTH_MODE"] = "token" if auth == "token" else "disabled"
    # Job entrypoints (`sweepcast run ...`) run in a shell on the head: put this interpreter's
    # bin dir (the venv's) first so they find the same `sweepcast` and `python`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    gcs_port = free_port(host)
    dash_port = free_port(host) if dashboard else None
    gcs_address = f"{host}:{gcs_port}"
    state = ClusterState(
        cluster_id=cluster_id,
        run_dir=str(run_dir),
        host=host,
        gcs_address=gcs_address,
        dashboard_url=f"http://{host}:{dash_port}" if dash_port else "",
        auth=auth,
    )
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    specs: list[tuple[str, str, dict[str, float]]] = [
        (HEAD_NAME, "head", {"CPU": float(head_cpus)})
    ]
    for i in range(workers):
        name = f"sweepcast-worker-{i}"
        res = {"CPU": float(cpus_per_worker), name: 1.0, **(worker_resources or {})}
        if gpus_per_worker:
            res["GPU"] = float(gpus_per_worker)
        specs.append((name, "worker", res))
    try:
        for name, role, res in specs:
            # One node at a time, each retried once: Ray gives a starting raylet a fixed 30 s
            # to register, which a loaded machine can miss when several start at once.
            for attempt in (1, 2):
                temp_dir = _short_temp_dir()
                custom = {k: v for k, v in res.items() if k not in ("CPU", "GPU")}
                cmd = _node_cmd(
                    head=role == "head",
                    name=name,
                    host=host,
                    gcs_address=gcs_address,
                    gcs_port=gcs_port,
                    dashboard_port=dash_port,
                    num_cpus=res.get("CPU", 0),
                    num_gpus=res.get("GPU", 0),
                    resources=custom,
                    object_store_bytes=object_store_mb * 1024 * 1024,
                    temp_dir=temp_dir,
                    system_config=system_config,
                )
                logs[name] = run_dir / f"{name}.log"
                proc = _spawn(cmd, logs[name], env)
                procs[name] = proc
                state.nodes = [n for n in state.nodes if n.name != name]
                state.nodes.append(
                    NodeState(name=name, role=role, pid=proc.pid, node_id="", resources=res,
                              log=str(logs[name]), temp_dir=temp_dir)
                )
                _write_state(state)  # so `down` can clean up even if we die half-way
                try:
                    if role == "head":
                        _wait_port(host, gcs_port, proc, logs[name], timeout_s)
                    ids = _wait_nodes(gcs_address, [name], {name: proc}, logs, timeout_s, auth)
                    state.nodes[-1].node_id = ids[name]
                    break
                except ClusterError:
                    if attempt == 2 or proc.poll() is None:
                        raise
                    _reap(proc.pid)  # it exited while starting: try once more
        if dash_port:
            _wait_port(host, dash_port, procs[HEAD_NAME], logs[HEAD_NAME], timeout_s)
    except BaseException:
        down(run_dir)
        raise
    state.started_at = time.time()
    _write_state(state)
    return state


def _psutil():  # type: ignore[no-untyped-def]
    """psutil, as vendored by Ray (``import ray`` puts ``ray/thirdparty_files`` on the path)."""
    import importlib

    import ray  # noqa: F401

    return importlib.import_module("psutil")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); treat it as gone.
    try:
        psutil = _psutil()
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or racing: assume alive
        return True


def marked_processes(cluster_id: str) -> list[int]:
    """PIDs of live processes whose environment carries ``SWEEPCAST_CLUSTER_ID=cluster_id``."""
    psutil = _psutil()

    me = os.getpid()
    out = []
    for p in psutil.process_iter(["pid"]):
        if p.info["pid"] == me:
            continue
        try:
            if p.environ().get(MARKER_ENV) == cluster_id and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return out


def raylet_pid(state: ClusterState, node_name: str) -> int:
    """PID of the raylet of node ``node_name`` (a descendant of its ``ray start``).

    Raises:
        ClusterError: the node has no live raylet.
    """
    psutil = _psutil()

    node = state.node(node_name)
    try:
        children = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess as e:
        raise ClusterError(f"node {node_name} (pid {node.pid}) is not running") from e
    for c in children:
        try:
            if c.name() == "raylet" or Path(c.exe()).name == "raylet":
                return c.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    raise ClusterError(f"no raylet process found under node {node_name} (pid {node.pid})")


def down(run_dir: Path | None = None, *, timeout_s: float = 30.0) -> list[int]:
    """Stop exactly the processes ``up`` started from ``run_dir``; see :func:`stop`.

    ``cluster.json`` is renamed to ``cluster.json.stopped`` afterwards.

    Raises:
        ClusterError: nothing is recorded in ``run_dir``.
    """
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
    state = load_state(run_dir)
    signalled = stop(state, timeout_s=timeout_s)
    path = Path(run_dir) / STATE_FILE
    if path.exists():
        os.replace(path, path.with_name(STATE_FILE + ".stopped"))
    return signalled


def stop(state: ClusterState, *, timeout_s: float = 30.0) -> list[int]:
    """Stop the processes of ``state``'s cluster; idempotent.

    Workers are stopped before the head. Each node's ``ray start --block`` gets SIGTERM (it
    then shuts its raylet, agents and workers down); after ``timeout_s`` survivors and any
    other process carrying this cluster's marker get SIGKILL. The nodes' temp dirs are removed.

    Returns:
        The PIDs that were signalled.
    """
    import shutil

    signalled: list[int] = []
    ordered = [n for n in state.nodes if n.role == "worker"] + [
        n for n in state.nodes if n.role == "head"
    ]
    for n in ordered:
        if _pid_alive(n.pid):
            _signal(n.pid, signal.SIGTERM)
            signalled.append(n.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(_pid_alive(n.pid) for n in ordered) and not marked_processes(state.cluster_id):
            break
        time.sleep(0.5)
    for n in ordered:
        if _pid_alive(n.pid):
            _signal_group(n.pid, signal.SIGKILL)
            signalled.append(n.pid)
    for pid in marked_processes(state.cluster_id):
        _signal(pid, signal.SIGKILL)
        signalled.append(pid)
    for n in ordered:
        _reap(n.pid)
        if n.temp_dir.startswith("/tmp/sc-"):
            shutil.rmtree(n.temp_dir, ignore_errors=True)
    return signalled


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the ray start process leads its own session/group
    except (ProcessLookupError, PermissionError):
        _signal(pid, sig)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
