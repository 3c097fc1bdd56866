"""``sweepcast report SWEEP [--html OUT]``: a recorded sweep's summary, read back from MLflow.

SWEEP is the sweep's name (its latest run), its parent run id, or an experiment name (that
experiment's latest sweep). The tracking URI is ``--tracking-uri``, else
``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory (as for
``sweepcast run``).

Without ``--html`` it prints the summary table to the terminal; with ``--html OUT`` it writes a
single self-contained HTML file (plots embedded as PNG) and says where.

Exit status: 0 done; 1 the sweep or the tracking store could not be read (message says which).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("sweep")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report (plots embedded) to this file.")
@click.option("--experiment", "-e", help="Only look in this MLflow experiment (name or id).")
@click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or "
                                     "sqlite:///mlflow.db).")
@click.option("--metric", help="The sweep metric, when the sweep did not record its config.")
@click.option("--mode", type=click.Choice(["min", "max"]), help="The metric's direction (idem).")
@click.option("--max-epochs", type=click.IntRange(min=1), help="The trials' horizon (idem).")
@click.option("--max-trial-plots", type=click.IntRange(min=0), default=50, show_default=True,
              help="Per-trial plots in the HTML report (best trials first).")
def command(sweep: str, html_out: Path | None, experiment: str | None,
            tracking_uri: str | None, metric: str | None, mode: str | None,
            max_epochs: int | None, max_trial_plots: int) -> None:
    """Summarise the recorded sweep SWEEP (name, parent run id or experiment)."""
    from orchestrator.report import format_text, render_html
    from orchestrator.tracking.base import mask_uri
    from orchestrator.tracking.reader import SweepNotFoundError, read_sweep

    try:
        record = read_sweep(sweep, tracking_uri=tracking_uri, experiment=experiment,
                            metric=metric, mode=mode, max_epochs=max_epochs)
    except (SweepNotFoundError, ValueError) as e:
        msg = e.args[0] if e.args else str(e)
        click.echo(f"sweepcast report: {mask_uri(str(msg))}", err=True)
        raise SystemExit(1) from None
    except Exception as e:  # noqa: BLE001 - unreachable server, bad store: say so plainly
        click.echo(f"sweepcast report: cannot read MLflow: {mask_uri(str(e))[:300]}", err=True)
        raise SystemExit(1) from None
    if html_out is None:
        click.echo(format_text(record), nl=False)
        return
    page = render_html(record, max_trial_plots=max_trial_plots)
    try:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(page, encoding="utf-8")
    except OSError as e:
        click.echo(f"sweepcast report: cannot write {html_out}: {e.strerror or e}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{html_out}: HTML report of sweep {record.name!r} "
               f"({len(record.trials)} trials, {len(page) // 1024} KiB)")
