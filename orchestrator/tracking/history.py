"""Read a past sweep's learning curves back from MLflow (for ``sweepcast replay --from-mlflow``).

One trial = one run of the experiment; sweepcast's own sweeps tag trial runs
``sweepcast.kind=trial`` (parent sweep runs are skipped), other experiments' runs are all taken.
A run's curve is its metric history (step = epoch). Only runs whose curve reaches the horizon
(the longest step seen, or ``horizon``) can be replayed as if they had never been stopped; the
others (trials a pruner already stopped) are left out and counted in the returned task's name.
"""

from __future__ import annotations

import logging

import numpy as np

from search.replay.sim import Task

log = logging.getLogger(__name__)


def load_sweep_curves(experiment: str, *, metric: str, mode: str, tracking_uri: str | None = None,
                      horizon: int | None = None) -> Task:
    """The full-length curves of an MLflow experiment's runs as a replay ``Task``.

    Args:
        experiment: experiment name or id.
        metric: the metric whose history is the curve.
        mode: ``"min"`` or ``"max"``.
        tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI``, else
            ``sqlite:///mlflow.db`` in the working directory, as for ``sweepcast run``).
        horizon: the final epoch; default: the largest step recorded.

    Raises:
        ValueError: unknown experiment, or no run with a full-length curve.
    """
    from mlflow.tracking import MlflowClient

    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    from orchestrator.tracking.mlflow_tracker import default_tracking_uri, fail_fast_on_http

    uri = tracking_uri or default_tracking_uri()
    fail_fast_on_http(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        try:
            exp = client.get_experiment(experiment)
        except Exception:  # noqa: BLE001  (mlflow raises its own error types)
            exp = None
    if exp is None:
        raise ValueError(f"MLflow experiment {experiment!r} not found")
    runs = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    curves: dict[str, dict[int, float]] = {}
    for run in runs:
        if run.data.tags.get("sweepcast.kind") == "sweep":
            continue
        hist = client.get_metric_history(run.info.run_id, metric)
        if not hist:
            continue
        name = run.data.tags.get("sweepcast.trial_id") or run.info.run_id
        curves[name] = {int(m.step): float(m.value) for m in hist if m.step > 0}
    if not curves:
        raise ValueError(f"experiment {experiment!r} has no run with metric {metric!r}")
    E = horizon or max(max(c) for c in curves.values() if c)
    full = {k: c for k, c in curves.items() if c and max(c) >= E}
    if not full:
        raise ValueError(f"experiment {experiment!r}: no run's {metric!r} reaches step {E}")
    if len(full) < len(curves):
        log.warning("%d of %d runs stop before step %d and cannot be replayed; left out",
                    len(curves) - len(full), len(curves), E)
    ids = sorted(full)
    vals = np.full((len(ids), E), np.nan)
    for i, k in enumerate(ids):
        for s, v in full[k].items():
            if 1 <= s <= E:
                vals[i, s - 1] = v
    return Task("mlflow", exp.name, metric, mode, tuple(ids), vals)  # type: ignore[arg-type]
