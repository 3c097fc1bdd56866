"""The sweep's ``schedule:`` block resolves to exactly the rates the built-in MLP uses.

``trials.examples.schedules`` (what the trainable applies, epoch by epoch) and
``search.schedules`` (what the forecaster is told) are separate code because ``trials`` imports
nothing of ours; these tests hold them equal.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from orchestrator.config_schedule import ScheduleConfig
from search.schedules import lr_per_step, schedule_for_config
from trials.examples import schedules as builtin

CASES = [
    ("constant", {}),
    ("cosine", {}),
    ("cosine", {"min_factor": 0.1}),
    ("step", {}),
    ("step", {"step_size": 4, "gamma": 0.5}),
    ("warmup", {}),
    ("warmup", {"warmup_epochs": 3}),
    ("linear", {}),
    ("linear", {"end_factor": 0.2}),
    ("exponential", {}),
    ("exponential", {"gamma": 0.7}),
    ("onecycle", {}),
    ("onecycle", {"pct_start": 0.2, "div_factor": 10.0, "final_div_factor": 100.0}),
    ("wsd", {}),
    ("wsd", {"warmup_epochs": 2, "decay_fraction": 0.3, "min_factor": 0.05, "decay": "cosine"}),
    ("wsd", {"decay": "sqrt"}),
]


def test_every_builtin_schedule_is_covered():
    assert {name for name, _ in CASES} == set(builtin.SCHEDULES)


@pytest.mark.parametrize("name, params", CASES)
@pytest.mark.parametrize("max_epochs", [7, 30])
def test_resolved_schedule_equals_the_trainables_rates(name, params, max_epochs):
    trial = {"lr": 0.03, "lr_schedule": name, **{f"schedule_{k}": v for k, v in params.items()}}
    sched = ScheduleConfig().resolve(trial, max_epochs)
    want = builtin.lr_curve(max_epochs, 0.03, name, **params)
    np.testing.assert_allclose(sched.lr(max_epochs), want, rtol=1e-12, atol=1e-15)
    # the pure path the replay uses (search may not import trials) gives the same rates
    pure = schedule_for_config({**trial, "max_epochs": max_epochs})
    np.testing.assert_allclose(pure.lr(max_epochs), want, rtol=1e-12, atol=1e-15)


def test_fixed_name_params_and_references():
    cfg = ScheduleConfig.model_validate({"name": "cosine", "params": {"warmup_epochs": 2}})
    s = cfg.resolve({"lr": 0.1, "width": 8}, 10)
    np.testing.assert_allclose(s.lr(10), lr_per_step({"name": "cosine", "lr": 0.1,
                                                      "warmup_epochs": 2}, 10))
    ts = ScheduleConfig.model_validate({
        "name": "taskset", "lr_key": "learning_rate",
        "params": {"linear_decay": "$linear_decay", "exponential_decay": "$exponential_decay"},
    })
    s = ts.resolve({"learning_rate": 0.01, "linear_decay": 1e-5, "exponential_decay": 1e-4}, 50)
    assert s.name == "taskset" and s.params["lr"] == 0.01 and s.params["linear_decay"] == 1e-5
    with pytest.raises(ValueError, match=r"schedule.params.linear_decay refers to hyperparameter"):
        ts.resolve({"learning_rate": 0.01, "exponential_decay": 1e-4}, 50)
    v = ScheduleConfig.model_validate({"name": "values", "params": {"values": [1.0, 0.5, 0.25]}})
    np.testing.assert_allclose(v.resolve({}, 3).lr(3), [1.0, 0.5, 0.25])


def test_bad_schedule_blocks_are_rejected_naming_the_field():
    with pytest.raises(ValidationError, match="schedule.name must be one of"):
        ScheduleConfig.model_validate({"name": "poly"})
    with pytest.raises(ValidationError, match=r"unknown parameter\(s\) \['gamma'\]"):
        ScheduleConfig.model_validate({"name": "cosine", "params": {"gamma": 0.5}})
    with pytest.raises(ValidationError, match=r"schedule.params.min_factor must be <= 1"):
        ScheduleConfig.model_validate({"name": "cosine", "params": {"min_factor": 2.0}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        ScheduleConfig.model_validate({"name": "cosine", "warmup": 2})
    with pytest.raises(ValueError, match="no key 'lr_schedule'"):
        ScheduleConfig().resolve({"lr": 0.1}, 10)
    with pytest.raises(ValueError, match="schedule.name must be one of"):
        ScheduleConfig().resolve({"lr_schedule": "poly"}, 10)


def test_sweep_config_accepts_a_schedule_block():
    from orchestrator.config import SweepConfig

    cfg = SweepConfig.model_validate({
        "name": "s", "trainable": "trials.examples.mlp:train", "metric": "val_loss",
        "mode": "min", "max_epochs": 12,
        "search": {"algorithm": "random", "space": {"lr": {"type": "loguniform", "low": 1e-3,
                                                           "high": 1e-1}}},
        "schedule": {"name": "onecycle", "params": {"pct_start": 0.25}},
    })
    s = cfg.schedule.resolve({"lr": 0.05}, cfg.max_epochs)
    np.testing.assert_allclose(s.lr(12), builtin.lr_curve(12, 0.05, "onecycle", pct_start=0.25))


def test_generated_curves_record_the_rates_their_configs_declare(repo_root):
    """benchmarks/data/schedule_curves: the lr column is what schedule_for_config recovers."""
    import csv
    import gzip
    import json

    base = repo_root / "benchmarks" / "data" / "schedule_curves" / "narrow"
    configs = json.loads((base / "configs.json").read_text())
    rates: dict[tuple[str, str], dict[int, float]] = {}
    with gzip.open(base / "curves.csv.gz", "rt") as f:
        for row in csv.DictReader(f):
            rates.setdefault((row["task"], row["config_id"]), {})[int(row["epoch"])] = float(
                row["lr"])
    assert len(rates) == sum(len(c) for c in configs.values()) > 0
    for (task, cid), by_epoch in list(rates.items())[:20]:
        cfg = configs[task][cid]
        want = schedule_for_config(cfg).lr(cfg["max_epochs"])
        got = np.array([by_epoch[e] for e in range(1, cfg["max_epochs"] + 1)])
        np.testing.assert_allclose(got, want, rtol=1e-5)
