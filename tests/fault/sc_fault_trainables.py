"""Tiny trainables for the fault tests: a few epochs of sleep, a checkpoint every epoch.

``train`` reports ``quality`` (higher is better; not ``score``, which sweepcast records
itself), a deterministic function of ``x`` and the epoch, so the curve a trial reports does
not depend on restarts. Every point it reports is also appended, as one JSON line, to
``$SC_FAULT_LOG/<experiment name>/<trial id>.jsonl`` together with the PID and Ray node id that reported it:
the ground truth the tests compare MLflow with (what the trials reported) and from which they
count retries (a trial reporting from a new process).

Hyperparameters: ``x`` in [0, 1] (the config), ``sleep`` (seconds per epoch), ``fail_above``
(raise ``ValueError`` at epoch 2 when ``x > fail_above``; negative: never).

The module name is unique (not ``tests.*``) so it imports the same way on every Ray worker:
the fault tests put ``tests/fault`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from trials.api import load_checkpoint, report


def score(x: float, epoch: int) -> float:
    """The curve: rises towards ``1 - (x - 0.7)**2`` with epochs (best near x = 0.7)."""
    return (1.0 - (x - 0.7) ** 2) * (1.0 - math.exp(-epoch / 3.0))


def _trial_identity() -> tuple[str, str, str]:
    """(experiment name, trial id, node id); placeholders outside Ray Tune."""
    try:
        import ray
        from ray import tune

        ctx = tune.get_context()
        return (ctx.get_experiment_name() or "local", ctx.get_trial_id() or "local",
                ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - outside Ray
        return "local", "local", ""


def train(config: dict) -> None:
    """See the module docstring."""
    unknown = set(config) - {"x", "sleep", "fail_above", "max_epochs"}
    if unknown:
        raise ValueError(f"unknown hyperparameters: {sorted(unknown)}")
    x = float(config["x"])
    sleep = float(config.get("sleep", 0.5))
    fail_above = float(config.get("fail_above", -1.0))
    max_epochs = int(config["max_epochs"])
    state = load_checkpoint()
    start = int(state["epoch"]) if state else 0
    experiment, trial_id, node_id = _trial_identity()
    # The variable reaches the trial through the cluster's environment (set at `cluster up`):
    # a driver's own environment does not travel to workers of an existing cluster.
    log_dir = os.environ.get("SC_FAULT_LOG")
    log = Path(log_dir) / experiment / f"{trial_id}.jsonl" if log_dir else None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(start + 1, max_epochs + 1):
        time.sleep(sleep)
        if 0 <= fail_above < x and epoch == 2:
            raise ValueError(f"injected failure: x={x} > fail_above={fail_above} at epoch 2")
        value = score(x, epoch)
        if log is not None:
            with open(log, "a") as f:
                f.write(json.dumps({"epoch": epoch, "quality": value, "pid": os.getpid(),
                                    "node_id": node_id, "resumed_from": start}) + "\n")
        report(epoch, checkpoint={"epoch": epoch}, quality=value)


train.hyperparameters = frozenset({"x", "sleep", "fail_above"})  # type: ignore[attr-defined]
