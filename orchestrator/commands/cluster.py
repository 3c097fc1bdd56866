"""``sweepcast cluster up|down|status``: a local multi-node Ray cluster on this machine.

``up`` starts a head and N worker nodes as separate ``ray start`` processes (dashboard on
127.0.0.1, Ray token authentication on by default: Ray's own gRPC ports listen on every
interface whatever the flags, see ``cluster.local``) and records them in ``--run-dir`` (default ``$SWEEPCAST_CLUSTER_DIR`` or
``./.sweepcast/cluster``); ``down`` stops exactly what ``up`` recorded there.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

_run_dir_option = click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the cluster's state and logs "
    "(default: $SWEEPCAST_CLUSTER_DIR or ./.sweepcast/cluster).",
)


def _resources(ctx: click.Context, param: click.Parameter, value: str | None) -> dict | None:
    if not value:
        return None
    try:
        res = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"must be a JSON object, got {value!r} ({e.msg})") from None
    if not isinstance(res, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and v >= 0 for k, v in res.items()
    ):
        raise click.BadParameter(
            f"must map resource names to non-negative numbers, got {value!r}"
        )
    return {k: float(v) for k, v in res.items()}


@click.group("cluster")
def command() -> None:
    """Start and stop a local multi-node Ray cluster (head + workers on 127.0.0.1)."""


@command.command("up")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Number of worker nodes.")
@click.option("--cpus-per-worker", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--gpus-per-worker", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--head-cpus", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPUs the head offers to trials (0: trials run on workers only).")
@click.option("--worker-resources", callback=_resources, default=None,
              help='Extra custom resources per worker as JSON, e.g. \'{"ssd": 1}\'.')
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface for the dashboard and the nodes' address. Change only on a "
                   "trusted network.")
@click.option("--auth", type=click.Choice(["token", "none"]), default="token", show_default=True,
              help="Ray token authentication for the cluster (clients need RAY_AUTH_MODE=token "
                   "and the token in ~/.ray/auth_token or $RAY_AUTH_TOKEN).")
@click.option("--no-dashboard", is_flag=True, help="Skip the dashboard (disables `submit`).")
@click.option("--object-store-mb", type=click.IntRange(min=76), default=128, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=180,
              show_default=True, help="Seconds to wait for every node to register.")
@_run_dir_option
def up_cmd(workers: int, cpus_per_worker: int, gpus_per_worker: int, head_cpus: int,
           worker_resources: dict | None, host: str, auth: str, no_dashboard: bool,
           object_store_mb: int,
           timeout_s: float, run_dir: Path | None) -> None:
    """Start a head and WORKERS worker nodes as separate `ray start` processes."""
    from cluster.local import ClusterError, up

    try:
        state = up(
            run_dir,
            workers=workers,
            head_cpus=head_cpus,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            worker_resources=worker_resources,
            host=host,
            dashboard=not no_dashboard,
            object_store_mb=object_store_mb,
            auth=auth,
            timeout_s=timeout_s,
        )
    except (ClusterError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    _print_state(state)
    click.echo("")
    click.echo("export " + " ".join(f"{k}={v}" for k, v in state.client_env().items()))
    if state.dashboard_url:
        click.echo(f"sweepcast submit FILE --address {state.dashboard_url}")
    click.echo(f"stop with: sweepcast cluster down --run-dir {state.run_dir}")


@command.command("down")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=30,
              show_default=True, help="Seconds of graceful shutdown before SIGKILL.")
@_run_dir_option
def down_cmd(timeout_s: float, run_dir: Path | None) -> None:
    """Stop exactly the processes `cluster up` started (never `ray stop`)."""
    from cluster.local import ClusterError, down

    try:
        pids = down(run_dir, timeout_s=timeout_s)
    except ClusterError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"stopped local cluster ({len(pids)} processes signalled)")


@command.command("status")
@_run_dir_option
def status_cmd(run_dir: Path | None) -> None:
    """Show the nodes `cluster up` started and whether each is alive."""
    from cluster.local import ClusterError, load_state

    try:
        state = load_state(run_dir if run_dir is not None else _default())
    except ClusterError as e:
        raise click.ClickException(str(e)) from None
    _print_state(state)


def _default() -> Path:
    from cluster.local import default_run_dir

    return default_run_dir()


def _print_state(state) -> None:  # type: ignore[no-untyped-def]
    from cluster.local import _pid_alive

    click.echo(f"cluster {state.cluster_id}  GCS {state.gcs_address}  "
               f"dashboard {state.dashboard_url or '(off)'}  auth {state.auth}")
    for n in state.nodes:
        res = ", ".join(f"{k}={v:g}" for k, v in sorted(n.resources.items()))
        alive = "alive" if _pid_alive(n.pid) else "DEAD"
        click.echo(f"  {n.name:<20} {n.role:<6} pid {n.pid:<7} {alive:<5} "
                   f"node {n.node_id[:12] or '?'}  {res}")


@command.command("check")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_cmd(files: tuple[Path, ...]) -> None:
    """Validate cluster manifests offline: Ray cluster-launcher YAML (Ray's own schema and
    checks) and KubeRay RayCluster / RayJob documents. Exit 0 if all are valid, 2 if not."""
    from cluster.validate import ManifestError, check_kuberay, check_launcher, load_docs

    bad = 0
    for f in files:
        try:
            docs = load_docs(f)
        except Exception as e:  # noqa: BLE001 - YAML errors: report and go on
            click.echo(f"{f}: cannot parse: {e}", err=True)
            bad += 1
            continue
        for i, doc in enumerate(docs):
            where = f"{f}" if len(docs) == 1 else f"{f}[{i}]"
            kind = doc.get("kind") if isinstance(doc, dict) else None
            try:
                if isinstance(doc, dict) and "provider" in doc and "cluster_name" in doc:
                    check_launcher(doc, where)
                    click.echo(f"{where}: valid Ray cluster-launcher config")
                elif kind in ("RayCluster", "RayJob"):
                    check_kuberay(doc, where)
                    click.echo(f"{where}: valid {kind}")
                else:
                    click.echo(f"{where}: {kind or 'document'} not checked")
            except ManifestError as e:
                bad += 1
                for p in e.problems:
                    click.echo(f"{where}: {p}", err=True)
    if bad:
        raise SystemExit(2)
