"""``sweepcast replay``: what would a pruner have saved and lost on recorded curves?

Examples::

    sweepcast replay --curves ../shared/data/curves --schedulers curve,asha,median,hyperband,fifo \\
        --workers 8 --seeds 3 --max-configs 200 --json replay.json
    sweepcast replay --from-mlflow my-sweep --metric val_loss --mode min --schedulers curve,asha
    sweepcast replay --config sweep.yaml --from-mlflow my-sweep --threshold 0.02
    sweepcast replay --config sweep.yaml      # that sweep's own MLflow experiment

The curve scheduler replays the policy a sweep config's ``pruning: {scheduler: curve}`` block
gets by default (``orchestrator.config_pruning.CurvePruning``), or that block of ``--config``;
each policy option given on the command line overrides it. ``--config`` also supplies the metric
and its direction for ``--from-mlflow``, and without ``--curves`` or ``--from-mlflow`` the sweep's
own experiment (``tracking.experiment`` or its name) in the MLflow store ``sweepcast run`` uses
(``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` here).

Prints a per-task table and a summary; ``--json`` writes ``{"results": [...], "summary":
[...], "settings": {...}}`` (fields in ``search.replay.sim``). Ray / Optuna / torch are
imported only when a scheduler or model needs them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

KNOWN = ("curve", "curve-tune", "asha", "median", "hyperband", "fifo", "optuna-median",
         "optuna-sh", "optuna-hyperband")


def _split(ctx, param, value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    bad = [n for n in names if n not in KNOWN]
    if bad or not names:
        raise click.BadParameter(f"unknown scheduler(s) {bad or value!r}; known: {', '.join(KNOWN)}")
    return names


@click.command("replay")
@click.option("--curves", "curves", type=click.Path(exists=True, path_type=Path),
              help="A benchmark folder with curves.csv.gz, or a folder of them.")
@click.option("--from-mlflow", "experiment", default=None,
              help="Replay a past sweep: an MLflow experiment name or id.")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI (with --from-mlflow; default: MLFLOW_TRACKING_URI, else "
                   "sqlite:///mlflow.db, as for sweepcast run).")
@click.option("--metric", default=None, help="Metric name (with --from-mlflow).")
@click.option("--mode", type=click.Choice(["min", "max"]), default=None,
              help="Metric direction (with --from-mlflow).")
@click.option("--tasks", default=None, help="Comma-separated task names to keep.")
@click.option("--schedulers", default="curve,asha,median,hyperband,fifo", callback=_split,
              show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--max-configs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A sweep config: its curve pruning block is the policy replayed "
                                 "(options below override it), its metric and mode are the defaults.")
@click.option("--model", default=None,
              help="Forecaster for the curve scheduler (pfn, parametric, last-value, pfn-schedule); "
                   "default: the config's, else pfn.")
@click.option("--threshold", type=float, default=None, help="Curve scheduler threshold.")
@click.option("--grace-epochs", type=int, default=None)
@click.option("--decision-interval", type=int, default=None)
@click.option("--compute-exponent", type=float, default=None)
@click.option("--rank-gate", type=click.Choice(["none", "median", "median_or"]), default=None,
              help="Curve scheduler: combine with the others' median (see README).")
@click.option("--veto-threshold", type=float, default=None,
              help="Curve scheduler, --rank-gate median_or: P(beat) that keeps a trial.")
@click.option("--incumbent", type=click.Choice(["completed", "best_seen", "top_fraction"]),
              default=None, help="Curve scheduler: the value a trial must beat.")
@click.option("--top-fraction", type=float, default=None,
              help="Curve scheduler, --incumbent top_fraction: the share of the sweep to keep.")
@click.option("--bar-confidence", type=float, default=None,
              help="Curve scheduler, --incumbent top_fraction: the probability with which the "
                   "other trials' forecasts must reach the values the bar is built from.")
@click.option("--pause-ahead/--no-pause-ahead", default=None,
              help="Curve scheduler: pause a trial ahead of its peers while others wait.")
@click.option("--before-completion", type=click.Choice(["same_step", "none"]), default=None,
              help="Curve scheduler: before any trial completes, compare with the best value at "
                   "the same epoch, or stop nothing.")
@click.option("--max-forecast-age", type=int, default=None,
              help="Curve scheduler: reuse a trial's forecast made at most this many epochs ago.")
@click.option("--min-samples", type=int, default=None,
              help="Curve scheduler: trials needed at an epoch for the median gate.")
@click.option("--batch-wait", type=int, default=None,
              help="Curve scheduler: epochs a trial may wait for the next batched forecast.")
@click.option("--clock", type=click.Choice(["cpu", "wall"]), default="cpu", show_default=True,
              help="Time decisions by the driver thread's CPU time or by wall time.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Write results as JSON here.")
def command(curves, experiment, tracking_uri, metric, mode, tasks, schedulers, workers, seeds,
            max_configs, config_file, model, threshold, grace_epochs, decision_interval,
            compute_exponent, rank_gate, veto_threshold, incumbent, top_fraction, bar_confidence,
            pause_ahead, before_completion, max_forecast_age, min_samples, batch_wait, clock,
            json_out) -> None:
    """Replay recorded learning curves through pruning schedulers and compare them."""
    from orchestrator.config_pruning import CurvePruning
    from search.policy import PolicyConfig
    from search.replay.run import format_table, run_all, summarize

    if curves is not None and experiment is not None:
        raise click.UsageError("give one of --curves DIR or --from-mlflow EXPERIMENT, not both")
    base = CurvePruning(scheduler="curve")
    if config_file is not None:
        from orchestrator.config import ConfigError, load_config

        try:
            sweep = load_config(config_file, check_import=False)
        except ConfigError as e:
            for line in e.lines():
                click.echo(line, err=True)
            raise click.BadParameter(f"{config_file} is not a valid sweep config",
                                     param_hint="--config") from None
        metric, mode = metric or sweep.metric, mode or sweep.mode
        if curves is None and experiment is None:  # replay the sweep's own MLflow experiment
            experiment = sweep.experiment_name
        if isinstance(sweep.pruning, CurvePruning):
            base = sweep.pruning
        else:
            click.echo(f"--config: its pruning scheduler is {sweep.pruning.scheduler!r}, not 'curve': "
                       "the curve scheduler replays the default curve policy", err=True)
    if curves is None and experiment is None:
        raise click.UsageError("give --curves DIR, --from-mlflow EXPERIMENT, or a --config whose "
                               "sweep's MLflow experiment is replayed")
    model = model or base.model
    given = {"threshold": threshold, "grace_epochs": grace_epochs,
             "decision_interval": decision_interval, "compute_exponent": compute_exponent,
             "rank_gate": rank_gate, "veto_threshold": veto_threshold, "incumbent": incumbent,
             "top_fraction": top_fraction, "bar_confidence": bar_confidence,
             "pause_ahead": pause_ahead, "before_completion": before_completion,
             "max_forecast_age": max_forecast_age, "min_samples": min_samples,
             "batch_wait": batch_wait}
    try:
        cfg = PolicyConfig(**(base.model_dump(exclude={"scheduler", "model"})
                              | {k: v for k, v in given.items() if v is not None}))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    keep = None if tasks is None else {t.strip() for t in tasks.split(",") if t.strip()}
    if curves is not None:
        from search.replay.data import load_curves

        try:
            loaded = load_curves(curves, keep)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--curves") from None
    else:
        if not metric or not mode:
            raise click.UsageError("--from-mlflow needs --metric and --mode (or a --config that has them)")
        from orchestrator.tracking.base import mask_uri
        from orchestrator.tracking.history import load_sweep_curves
        from orchestrator.tracking.mlflow_tracker import default_tracking_uri

        uri = tracking_uri or default_tracking_uri()
        try:
            loaded = [load_sweep_curves(experiment, metric=metric, mode=mode, tracking_uri=uri)]
        except ValueError as e:
            raise click.BadParameter(f"{mask_uri(str(e))} (MLflow store {mask_uri(uri)})",
                                     param_hint="--from-mlflow") from None
        except Exception as e:  # noqa: BLE001  (an unreachable or broken store: mlflow's own errors)
            raise click.ClickException(
                f"--from-mlflow: cannot read {experiment!r} from {mask_uri(uri)}: "
                f"{type(e).__name__}: {mask_uri(str(e).splitlines()[0][:300]) if str(e) else ''}") from None
    if not loaded:
        raise click.BadParameter(f"no tasks matched {tasks!r}", param_hint="--tasks")
    fc = None
    if any(s.startswith("curve") for s in schedulers):
        click.echo(f"curve policy: {json.dumps(cfg.to_dict())}, model {model}", err=True)
        import torch

        torch.set_num_threads(1)
        from search.stopper import resolve_model

        try:
            fc = resolve_model(model)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--model") from None
    results = run_all(loaded, schedulers, model=fc, config=cfg, workers=workers, seeds=seeds,
                      max_configs=max_configs, progress=lambda m: click.echo(m, err=True),
                      clock=time.thread_time_ns if clock == "cpu" else time.perf_counter_ns)
    click.echo(format_table(results))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({
            "results": results,
            "summary": summarize(results),
            "settings": {"workers": workers, "seeds": seeds, "max_configs": max_configs,
                         "model": model, "policy": cfg.to_dict(), "clock": clock,
                         "source": str(curves) if curves else f"mlflow:{experiment}"},
        }, indent=1))
        click.echo(f"wrote {json_out}", err=True)
