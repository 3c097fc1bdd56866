"""``sweepcast submit FILE --address http://HOST:8265``: run a sweep as a Ray job.

The config is validated here first (exit 2 and nothing submitted if invalid, like
``sweepcast validate``). The working dir (default: the current directory) is uploaded through
the Ray Jobs API as the job's ``working_dir`` and must contain FILE; the job's entrypoint is
``sweepcast run <FILE relative to the working dir>``. ``MLFLOW_TRACKING_URI`` (credentials
stripped) and ``SWEEPCAST_STORAGE_PATH`` are forwarded when set; secrets never are.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

EXIT_INVALID = 2


@click.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--address", default=None, metavar="URL",
              help="Ray dashboard, e.g. http://127.0.0.1:8265 (default: $RAY_API_SERVER_ADDRESS, "
                   "$RAY_ADDRESS if http(s), or the local `sweepcast cluster up`).")
@click.option("--working-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Folder shipped with the job.")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE",
              help="Environment variable for the job (repeatable). Secrets are refused.")
@click.option("--exclude", multiple=True, help="Extra glob to leave out of the upload.")
@click.option("--submission-id", default=None, help="Job id to use (default: Ray picks one).")
@click.option("--follow/--no-follow", default=False, show_default=True,
              help="Stream the job's logs and exit with its outcome (0 only if SUCCEEDED).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Local cluster run dir used when no address is given.")
def command(file: Path, address: str | None, working_dir: Path, env_pairs: tuple[str, ...],
            exclude: tuple[str, ...], submission_id: str | None, follow: bool,
            run_dir: Path | None) -> None:
    """Submit the sweep config FILE to a Ray cluster through the Ray Jobs API."""
    from cluster.jobs import JobsError, build_runtime_env, client, parse_env_pairs, redact
    from orchestrator.config import ConfigError, load_config

    try:
        cfg = load_config(file, check_import=False)
    except ConfigError as e:
        for line in e.lines():
            click.echo(line, err=True)
        click.echo(f"{file}: invalid, nothing submitted", err=True)
        raise SystemExit(EXIT_INVALID) from None
    wd = working_dir.resolve()
    cfg_path = file.resolve()
    try:
        rel = cfg_path.relative_to(wd)
    except ValueError:
        click.echo(f"{file}: the config must be inside the working dir {wd} that is shipped "
                   "with the job (pass --working-dir)", err=True)
        raise SystemExit(EXIT_INVALID) from None
    try:
        from cluster.jobs import resolve_address

        env = parse_env_pairs(env_pairs)
        runtime_env, notes = build_runtime_env(wd, env=env, excludes=list(exclude))
        c = client(resolve_address(address, run_dir), run_dir)
        for n in notes:
            click.echo(f"note: {n}", err=True)
        entrypoint = f"sweepcast run {shlex.quote(rel.as_posix())}"
        job_id = c.submit_job(
            entrypoint=entrypoint,
            runtime_env=runtime_env,
            submission_id=submission_id,
            metadata={"sweepcast.sweep": cfg.name, "sweepcast.config": rel.as_posix()},
        )
    except JobsError as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # noqa: BLE001 - Jobs API errors: redact the address
        raise click.ClickException(f"submission failed: {redact(e)}") from None
    click.echo(f"submitted sweep {cfg.name!r} as job {job_id}")
    click.echo(f"  entrypoint: {entrypoint}")
    click.echo(f"  follow with: sweepcast logs {job_id} --follow")
    if follow:
        from orchestrator.commands.jobs import follow_job

        raise SystemExit(follow_job(c, job_id))
