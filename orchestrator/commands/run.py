"""``sweepcast run FILE``: validate the config, then run the sweep and record it in MLflow.

Exit status: 0 every trial completed or was pruned; 3 the sweep ran but some trial failed;
2 invalid config (nothing started); 1 the sweep could not start (MLflow unreachable: the
message names the URI without credentials; Ray unavailable) or Tune failed as a whole.
"""

from __future__ import annotations

import click


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--quiet", "-q", is_flag=True, help="Only print the final table.")
def command(file: str, quiet: bool) -> None:
    """Run the sweep described by the YAML config FILE."""
    import logging
    import sys

    from orchestrator.config import ConfigError, load_config

    try:
        cfg = load_config(file)
    except ConfigError as e:
        for line in e.lines():
            click.echo(line, err=True)
        n = len(e.problems)
        click.echo(f"{file}: invalid ({n} problem{'s' if n != 1 else ''}); nothing started",
                   err=True)
        raise SystemExit(2) from None

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from orchestrator.sweep import EXIT_ERROR, SweepError, run_sweep

    started_ray = False
    try:
        import ray

        started_ray = not ray.is_initialized()
        result = run_sweep(cfg, out=None if quiet else sys.stdout)
        if quiet:
            from orchestrator.sweep import print_table

            print_table(result, sys.stdout)
    except SweepError as e:
        click.echo(f"sweepcast run: {e}", err=True)
        raise SystemExit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        click.echo("sweepcast run: interrupted; the sweep is recorded as interrupted", err=True)
        raise SystemExit(130) from None
    finally:
        if started_ray:
            import ray

            if ray.is_initialized():
                ray.shutdown()
    click.echo(
        f"MLflow: parent run {result.parent_run_id}; browse with `mlflow ui` "
        "(see README for the --backend-store-uri)"
    )
    raise SystemExit(result.exit_code)
