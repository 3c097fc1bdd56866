"""``sweepcast resume NAME_OR_PATH``: finish an interrupted sweep.

NAME_OR_PATH is the experiment folder (``<storage_path>/<name>[_<stamp>]``), its object-store
URI (``s3://bucket/prefix/<name>``), or the sweep name, looked up under ``--storage-path`` (a
folder or a URI; default ``$SWEEPCAST_STORAGE_PATH``, else ``./sweepcast_results``). The same MLflow parent
run and trial runs are continued (no duplicates); trials that ended before the interruption
keep their outcome; unfinished ones resume from their last checkpoint.

Exit status as for ``sweepcast run``: 0 all trials completed or pruned, 3 some trial failed,
1 the sweep could not be resumed (the message says why), including while another driver
still holds it (``sweepcast_driver.lock`` in the folder: a running `sweepcast run` or
`resume`; a dead driver's lock on this host is taken over, ``--force`` takes over any).
"""

from __future__ import annotations

import click


@click.command("resume")
@click.argument("name_or_path")
@click.option("--storage-path", default=None,
              help="Where to look a sweep NAME up: a folder or an object-store URI "
                   "(default $SWEEPCAST_STORAGE_PATH, else ./sweepcast_results).")
@click.option("--quiet", "-q", is_flag=True, help="Only print the final table.")
@click.option("--force", is_flag=True,
              help="Take the sweep over from a driver that holds its lock but is gone "
                   "(one on another host cannot be checked from here).")
def command(name_or_path: str, storage_path: str | None, quiet: bool, force: bool) -> None:
    """Resume the sweep NAME_OR_PATH from its experiment folder."""
    import logging
    import sys

    from orchestrator.resume import ResumeError, find_experiment, resume_sweep
    from orchestrator.sweep import EXIT_ERROR, SweepError, print_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        exp_dir = find_experiment(name_or_path, storage_path)
        result = resume_sweep(exp_dir, out=None if quiet else sys.stdout, force=force)
    except (ResumeError, SweepError) as e:
        click.echo(f"sweepcast resume: {e}", err=True)
        raise SystemExit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        click.echo("sweepcast resume: interrupted; resume again to finish", err=True)
        raise SystemExit(130) from None
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    if quiet:
        print_table(result, sys.stdout)
    click.echo(f"MLflow: parent run {result.parent_run_id} (continued)")
    raise SystemExit(result.exit_code)
