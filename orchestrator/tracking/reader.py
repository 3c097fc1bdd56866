"""Read a recorded sweep back from MLflow as plain data (:class:`~orchestrator.sweepdata.SweepRecord`).

What it reads (the layout written by :class:`~orchestrator.tracking.mlflow_tracker.MlflowTracker`):

* the parent run: tag ``sweepcast.kind=sweep``, run name = sweep name, tag ``sweepcast.sweep``;
  the artifact ``sweep_config.yaml`` (metric, mode, max_epochs, pruning.scheduler); the ranking
  table ``scoring/ranking.md`` when the scorer logged one; its summary metrics;
* the trial runs: tag ``mlflow.parentRunId`` = the parent, ``sweepcast.trial_id``,
  ``sweepcast.status`` (``running``/``completed``/``pruned``/``failed``),
  ``sweepcast.stop_reason`` and ``sweepcast.stopped_at_step``; the history of the sweep metric
  (step = epoch), of the verdict metrics ``p_beat``, ``forecast.q05``/``q50``/``q95`` (one point
  per decision), and the trial's last ``score``.

A decision is rebuilt at every step where a verdict metric was logged; the one at
``sweepcast.stopped_at_step`` of a pruned trial is the ``stop`` with its reason (the reasons of
``continue`` decisions are not recorded per step, so they read as empty).
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.sweepdata import STATUSES, Decision, SweepRecord, TrialRecord
from orchestrator.tracking.base import mask_uri

__all__ = ["CONFIG_ARTIFACT", "RANKING_ARTIFACT", "SweepNotFoundError", "read_sweep"]

CONFIG_ARTIFACT = "sweep_config.yaml"
RANKING_ARTIFACT = "scoring/ranking.md"
VERDICT_METRICS = ("p_beat", "forecast.q05", "forecast.q50", "forecast.q95")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_STATUS_ALIASES = {"finished": "completed", "stopped": "pruned", "killed": "pruned",
                   "error": "failed"}
_MLFLOW_RUN_STATUS = {"FINISHED": "completed", "KILLED": "pruned", "FAILED": "failed",
                      "RUNNING": "running", "SCHEDULED": "running"}


class SweepNotFoundError(LookupError):
    """No sweep matched the name or run id (the message says where it looked)."""


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "\\'")


def _find_parent(client: Any, sweep: str, experiment: str | None) -> Any:
    if _RUN_ID.match(sweep):
        try:
            run = client.get_run(sweep)
        except Exception:  # noqa: BLE001 - not a run id after all: try it as a name
            run = None
        if run is not None:
            if run.data.tags.get("sweepcast.kind") not in (None, "sweep"):
                raise SweepNotFoundError(
                    f"run {sweep} is a {run.data.tags['sweepcast.kind']!r} run, not a sweep's "
                    f"parent run")
            return run
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None and experiment.isdigit():
            exp = client.get_experiment(experiment)
        if exp is None:
            raise SweepNotFoundError(f"no MLflow experiment named {experiment!r}")
        exp_ids = [exp.experiment_id]
    else:
        exp_ids = [e.experiment_id for e in client.search_experiments()]
    if not exp_ids:
        raise SweepNotFoundError("the tracking server has no experiments")
    q = _quote(sweep)
    flt = f"tags.`sweepcast.kind` = 'sweep' and tags.`sweepcast.sweep` = '{q}'"
    runs = client.search_runs(exp_ids, filter_string=flt, order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:  # an experiment named like the sweep: its latest sweep
        exp = client.get_experiment_by_name(sweep)
        if exp is not None:
            runs = client.search_runs([exp.experiment_id],
                                      filter_string="tags.`sweepcast.kind` = 'sweep'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        where = f"experiment {experiment!r}" if experiment else f"{len(exp_ids)} experiment(s)"
        raise SweepNotFoundError(
            f"no sweep named {sweep!r} (and no parent run with that id) in {where}")
    return runs[0]


def _download_text(client: Any, run_id: str, path: str, tmp: str) -> str | None:
    try:
        local = client.download_artifacts(run_id, path, tmp)
    except Exception:  # noqa: BLE001 - absent artifact
        return None
    p = Path(local)
    return p.read_text(encoding="utf-8") if p.is_file() else None


def _value(v: float) -> float:
    """MLflow's SQL stores keep +-inf as +-sys.float_info.max: read those back as infinities
    (a diverged trial), so they are drawn as gaps instead of flattening the plot's scale."""
    v = float(v)
    return math.copysign(math.inf, v) if abs(v) >= sys.float_info.max else v


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    pts = client.get_metric_history(run_id, key)
    # Replays can log the same point twice; keep the latest per step, ordered by step.
    by_step: dict[int, tuple[int, float]] = {}
    for m in pts:
        prev = by_step.get(m.step)
        if prev is None or m.timestamp >= prev[0]:
            by_step[m.step] = (m.timestamp, _value(m.value))
    return [(s, v) for s, (_, v) in sorted(by_step.items())]


def _status(run: Any) -> str:
    tag = (run.data.tags.get("sweepcast.status") or "").strip().lower()
    tag = _STATUS_ALIASES.get(tag, tag)
    if tag in STATUSES:
        return tag
    return _MLFLOW_RUN_STATUS.get(run.info.status, "running")


def _list_children(client: Any, experiment_id: str, parent_id: str) -> list[Any]:
    flt = f"tags.`mlflow.parentRunId` = '{parent_id}'"
    out: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=flt, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _trial(client: Any, run: Any, metric: str) -> TrialRecord:
    tags = run.data.tags
    have = run.data.metrics
    curve = _history(client, run.info.run_id, metric) if metric in have else []
    status = _status(run)
    verdicts = {k: dict(_history(client, run.info.run_id, k)) for k in VERDICT_METRICS
                if k in have}
    stop_reason = tags.get("sweepcast.stop_reason") or None
    try:
        stop_step = int(tags["sweepcast.stopped_at_step"])
    except (KeyError, ValueError):
        stop_step = None
    steps = sorted({s for h in verdicts.values() for s in h})
    if status == "pruned" and stop_step is not None and stop_step not in steps:
        steps.append(stop_step)
    decisions = []
    for s in steps:
        stop = status == "pruned" and s == stop_step
        decisions.append(Decision(
            step=s,
            action="stop" if stop else "continue",
            reason=(stop_reason or "") if stop else "",
            p_beat=verdicts.get("p_beat", {}).get(s),
            q05=verdicts.get("forecast.q05", {}).get(s),
            q50=verdicts.get("forecast.q50", {}).get(s),
            q95=verdicts.get("forecast.q95", {}).get(s),
        ))
    return TrialRecord(
        trial_id=tags.get("sweepcast.trial_id") or run.info.run_name or run.info.run_id,
        steps=[s for s, _ in curve],
        values=[v for _, v in curve],
        status=status,
        stop_reason=stop_reason if status == "pruned" else None,
        decisions=decisions,
        params=dict(run.data.params),
        run_id=run.info.run_id,
        score=_value(have["score"]) if "score" in have else None,
    )


def read_sweep(
    sweep: str,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    max_epochs: int | None = None,
) -> SweepRecord:
    """Read one sweep from MLflow.

    Args:
        sweep: the sweep's name (the latest parent run of that name wins), or its parent run id,
            or the name of an experiment (its latest sweep).
        tracking_uri: the MLflow tracking URI (default: ``MLFLOW_TRACKING_URI``, else
            ``sqlite:///mlflow.db``, as for ``sweepcast run``).
        experiment: only look in this experiment (name or id).
        metric, mode, max_epochs: override what the recorded ``sweep_config.yaml`` says (needed
            only when it is missing).

    Raises:
        SweepNotFoundError: nothing matched.
        ValueError: the metric, mode or horizon is neither recorded nor given.
    """
    import os

    import yaml

    # mlflow draws a progress bar per downloaded artifact; a report has no use for them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    from orchestrator.tracking.mlflow_tracker import default_tracking_uri, fail_fast_on_http

    uri = tracking_uri or default_tracking_uri()
    fail_fast_on_http(uri)
    client = MlflowClient(tracking_uri=uri)
    parent = _find_parent(client, sweep, experiment)
    pid = parent.info.run_id
    with tempfile.TemporaryDirectory(prefix="sweepcast-report-") as tmp:
        cfg_text = _download_text(client, pid, CONFIG_ARTIFACT, tmp)
        ranking = _download_text(client, pid, RANKING_ARTIFACT, tmp)
    cfg: dict[str, Any] = {}
    if cfg_text:
        loaded = yaml.safe_load(cfg_text)
        cfg = loaded if isinstance(loaded, dict) else {}
    params = parent.data.params
    metric = metric or cfg.get("metric") or params.get("metric")
    mode = mode or cfg.get("mode") or params.get("mode")
    horizon = max_epochs or cfg.get("max_epochs") or params.get("max_epochs")
    missing = [n for n, v in (("metric", metric), ("mode", mode), ("max_epochs", horizon))
               if v in (None, "")]
    if missing:
        raise ValueError(
            f"sweep {sweep!r} (run {pid}) records no {', '.join(missing)}: pass them explicitly (--metric, --mode, --max-epochs)")
    pruning = cfg.get("pruning")
    scheduler = pruning.get("scheduler") if isinstance(pruning, dict) else params.get(
        "pruning.scheduler")
    exp = client.get_experiment(parent.info.experiment_id)
    trials = [_trial(client, r, str(metric))
              for r in _list_children(client, parent.info.experiment_id, pid)]
    return SweepRecord(
        name=parent.data.tags.get("sweepcast.sweep") or parent.info.run_name or pid,
        metric=str(metric),
        mode=str(mode),
        max_epochs=int(horizon),
        trials=trials,
        scheduler=scheduler,
        parent_run_id=pid,
        experiment_id=parent.info.experiment_id,
        experiment_name=exp.name if exp is not None else None,
        tracking_uri=mask_uri(uri),
        status=parent.info.status,
        ranking_markdown=ranking,
        summary=dict(parent.data.metrics),
    )
