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
    from orchestrator.sweep import EXIT_ERROR, EXIT_INVALID, SweepConfigError, SweepError, run_sweep

    started_ray = False
    try:
        import ray

        started_ray = not ray.is_initialized()
        result = run_sweep(cfg, out=None if quiet else sys.stdout)
        if quiet:
            from orchestrator.sweep import print_table

            print_table(result, sys.stdout)
    except SweepConfigError as e:
        click.echo(f"{file}: {e}; nothing started", err=True)
        raise SystemExit(EXIT_INVALID) from None
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
    click.echo(browse_hint(result.parent_run_id))
    raise SystemExit(result.exit_code)


def browse_hint(parent_run_id: str | None) -> str:
    """How to look at the sweep in MLflow (the URI's credentials masked)."""
    from orchestrator.tracking import default_tracking_uri, mask_uri

    uri = default_tracking_uri()
    where = f"MLflow parent run {parent_run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{where}: open {mask_uri(uri)} in a browser"
    return (f"{where}; browse it with:\n  mlflow ui --backend-store-uri {mask_uri(uri)} "
            "--host 127.0.0.1 --port 5000   (then open http://127.0.0.1:5000)")
