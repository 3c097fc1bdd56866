"""Every stopping-policy knob (``search.policy.PolicyConfig``) reaches every entry point: the Ray
scheduler, the Optuna pruner, the sweep config's ``pruning: {scheduler: curve}`` block and
``sweepcast replay``. A knob added to the policy and forgotten in one of them fails here."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from search.policy import PolicyConfig

DEFAULTS = {f.name: f.default for f in dataclasses.fields(PolicyConfig)}
# the Optuna pruner decides at every report, alone: no forecast reuse, no batching, no pausing
NOT_IN_OPTUNA = {"max_forecast_age", "batch_wait", "pause_ahead"}


def _kwargs(cls) -> dict:
    return {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY or p.default is not inspect.Parameter.empty}


def test_the_ray_scheduler_takes_every_knob_with_the_policys_default():
    from search.adapters.ray_tune import CurveScheduler

    kw = _kwargs(CurveScheduler)
    assert {k: kw.get(k, "missing") for k in DEFAULTS} == DEFAULTS


def test_the_optuna_pruner_takes_every_knob_it_can_use_with_the_policys_default():
    from search.adapters.optuna import CurvePruner

    kw = _kwargs(CurvePruner)
    want = {k: v for k, v in DEFAULTS.items() if k not in NOT_IN_OPTUNA}
    assert {k: kw.get(k, "missing") for k in want} == want
    assert not NOT_IN_OPTUNA & set(kw)


def test_the_sweep_configs_curve_block_has_every_knob_and_builds_a_policy():
    from orchestrator.config_pruning import CurvePruning

    assert set(CurvePruning.model_fields) - {"scheduler", "model"} == set(DEFAULTS)
    # its defaults (the measured policy, BENCHMARKS.md issue 4) are a valid policy
    PolicyConfig(**CurvePruning(scheduler="curve").model_dump(exclude={"scheduler", "model"}))


def test_replay_has_an_option_for_every_knob():
    from orchestrator.commands.replay import command

    assert set(DEFAULTS) <= {p.name for p in command.params}


@pytest.mark.parametrize("field", sorted(DEFAULTS))
def test_every_knob_has_a_description_in_the_sweep_config_or_the_policy(field):
    """The config docs (``sweepcast validate``, the README's option table) come from these."""
    from orchestrator.config_pruning import CurvePruning

    desc = CurvePruning.model_fields[field].description or ""
    assert desc or field in (PolicyConfig.__doc__ or ""), field
