"""``sweepcast status|logs|stop``: watch and control sweeps submitted as Ray jobs.

All three take ``--address`` (default as for ``sweepcast submit``). Exit codes: ``status JOB``
exits 0 when the job SUCCEEDED or is still PENDING/RUNNING, 1 when it FAILED or was STOPPED;
``logs --follow`` and ``stop --wait`` exit with the job's outcome the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

_address = click.option("--address", default=None, metavar="URL",
                        help="Ray dashboard URL (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS "
                             "if http(s), or the local `sweepcast cluster up`).")
_run_dir = click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help="Local cluster run dir used when no address is given.")


def _client(address: str | None, run_dir: Path | None) -> Any:
    from cluster.jobs import JobsError, client, resolve_address

    try:
        return client(resolve_address(address, run_dir), run_dir)
    except JobsError as e:
        raise click.ClickException(str(e)) from None


def _call(fn, *args):  # type: ignore[no-untyped-def]
    from cluster.jobs import redact

    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - Jobs API errors (e.g. unknown job id)
        raise click.ClickException(redact(e)) from None


def _outcome(status: str) -> int:
    return 1 if status in ("FAILED", "STOPPED") else 0


def follow_job(c: Any, job_id: str) -> int:
    """Stream ``job_id``'s logs until it ends; return 0 if it SUCCEEDED, else 1."""
    import asyncio

    from cluster.jobs import TERMINAL, status_name

    async def _tail() -> None:
        async for chunk in c.tail_job_logs(job_id):
            click.echo(chunk, nl=False)

    try:
        asyncio.run(_tail())
    except Exception as e:  # noqa: BLE001 - the stream can drop; status is authoritative
        click.echo(f"(log stream ended: {type(e).__name__})", err=True)
    while True:
        status = status_name(_call(c.get_job_status, job_id))
        if status in TERMINAL:
            break
        time.sleep(1)
    click.echo(f"job {job_id}: {status}", err=True)
    return _outcome(status)


@click.command("status")
@click.argument("job_id", required=False)
@_address
@_run_dir
def status(job_id: str | None, address: str | None, run_dir: Path | None) -> None:
    """Show JOB_ID's status, or list all jobs when JOB_ID is left out."""
    from cluster.jobs import status_name

    c = _client(address, run_dir)
    if job_id:
        info = _call(c.get_job_info, job_id)
        st = status_name(info.status)
        click.echo(f"{job_id}: {st}")
        if info.message:
            click.echo(f"  {info.message}")
        click.echo(f"  entrypoint: {info.entrypoint}")
        raise SystemExit(_outcome(st))
    jobs = _call(c.list_jobs)
    if not jobs:
        click.echo("no jobs")
        return
    click.echo(f"{'job':<32} {'status':<10} {'sweep':<20} entrypoint")
    for j in sorted(jobs, key=lambda j: j.start_time or 0):
        jid = j.submission_id or j.job_id or "?"
        sweep = (j.metadata or {}).get("sweepcast.sweep", "")
        click.echo(f"{jid:<32} {status_name(j.status):<10} {sweep:<20} {j.entrypoint}")


@click.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Stream until the job ends.")
@_address
@_run_dir
def logs(job_id: str, follow: bool, address: str | None, run_dir: Path | None) -> None:
    """Print JOB_ID's driver logs (the sweep's progress and final table)."""
    c = _client(address, run_dir)
    if follow:
        raise SystemExit(follow_job(c, job_id))
    click.echo(_call(c.get_job_logs, job_id), nl=False)


@click.command("stop")
@click.argument("job_id")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the job has stopped.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=60,
              show_default=True)
@_address
@_run_dir
def stop(job_id: str, wait: bool, timeout_s: float, address: str | None,
         run_dir: Path | None) -> None:
    """Stop JOB_ID (its sweep's driver gets SIGTERM, then SIGKILL)."""
    from cluster.jobs import TERMINAL, status_name

    c = _client(address, run_dir)
    stopped = _call(c.stop_job, job_id)
    st = status_name(_call(c.get_job_status, job_id))
    if not stopped and st in TERMINAL:
        click.echo(f"job {job_id} had already ended: {st}")
        return
    if wait:
        deadline = time.monotonic() + timeout_s
        while st not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            st = status_name(_call(c.get_job_status, job_id))
    click.echo(f"job {job_id}: {st}")
    if wait and st not in TERMINAL:
        raise click.ClickException(f"job {job_id} still {st} after {timeout_s:g}s")


commands = [status, logs, stop]
