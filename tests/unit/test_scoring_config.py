"""The ``scoring:`` and ``pipeline:`` blocks of the sweep config: strict, SCORING.md defaults."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from orchestrator.config import load_config
from orchestrator.config_errors import ConfigError
from orchestrator.config_scoring import PipelineConfig, ScoringConfig
from search.scoring import ScoringParams


def test_defaults_are_scoring_md():
    cfg = ScoringConfig()
    assert cfg.to_params("max") == ScoringParams(mode="max")
    p = cfg.to_params("min")
    assert (p.target, p.value, p.cost_per_hour, p.tolerance) == (None, None, 1.0, 0.02)
    assert (p.prior_failures, p.prior_hours) == (1.0, 100.0)
    assert (p.w_cohesion, p.w_coupling, p.w_observability, p.w_hygiene) == (0.5,) * 4
    assert (p.hygiene_non_finite, p.hygiene_unlogged, p.hygiene_mismatch) == (0.4, 0.4, 0.2)
    assert p.hygiene_non_finite_scale == 10.0
    assert (p.staleness_grace, p.staleness_span) == (1.0, 2.0)
    assert cfg.objective == "metric" and cfg.stop_on_reward is False


@pytest.mark.parametrize("data, loc, shown", [
    ({"tolerance": 1.5}, ("tolerance",), "1.5"),
    ({"cost_per_hour": -2}, ("cost_per_hour",), "-2"),
    ({"value": 0}, ("value",), "0"),
    ({"target": float("inf")}, ("target",), "inf"),
    ({"objective": "reward"}, ("objective",), "reward"),
    ({"report_every": 0}, ("report_every",), "0"),
    ({"failure_prior_hours": -1.0}, ("failure_prior_hours",), "-1.0"),
    ({"weights": {"observability": 0.9}}, ("weights",), "observability=0.9"),
    ({"weights": {"cohesion": 2}}, ("weights", "cohesion"), "2"),
    ({"hygiene": {"mismatch": 0.3}}, ("hygiene",), "mismatch=0.3"),
    ({"staleness": {"span": 0}}, ("staleness", "span"), "0"),
    ({"penalty": 1}, ("penalty",), "1"),
    ({"stop_on_reward": "yes"}, ("stop_on_reward",), "yes"),
])
def test_bad_scoring_values_name_field_and_value(data, loc, shown):
    with pytest.raises(ValidationError) as ei:
        ScoringConfig.model_validate(data)
    errs = ei.value.errors()
    assert any(e["loc"] == loc for e in errs), errs
    assert shown in str(ei.value)


def test_config_is_frozen():
    cfg = ScoringConfig()
    with pytest.raises(ValidationError):
        cfg.tolerance = 0.5  # type: ignore[misc]


PIPE = {"steps": [
    {"name": "load", "responsibilities": ["read"], "inputs": ["dataset"]},
    {"name": "train", "responsibilities": ["fit", "checkpoint"], "inputs": ["load"]},
]}


def test_pipeline_to_core():
    pipe = PipelineConfig.model_validate(PIPE).to_pipeline()
    assert [s.name for s in pipe.steps] == ["load", "train"]
    assert pipe.steps[1].responsibilities == ("fit", "checkpoint")
    assert pipe.steps[1].inputs == ("load",)


@pytest.mark.parametrize("steps, match", [
    ([], "at least 1"),
    ([{"name": "a", "responsibilities": []}], "at least 1"),
    ([{"name": "a", "responsibilities": ["x", "x"]}], "'x' more than once"),
    ([{"name": "a", "responsibilities": ["x"]}, {"name": "a", "responsibilities": ["y"]}],
     "'a' more than once"),
    ([{"name": "a", "responsibilities": ["x"], "inputs": ["a"]}], "itself"),
    ([{"name": "a", "responsibilities": ["x"], "inputs": ["b"]},
      {"name": "b", "responsibilities": ["y"]}], "'b', which runs later"),
    ([{"name": "a", "responsibilities": ["x"], "outputs": ["m"]}], "outputs"),
])
def test_bad_pipeline(steps, match):
    with pytest.raises(ValidationError, match=match):
        PipelineConfig.model_validate({"steps": steps})


def _sweep(tmp_path, extra: str):
    f = tmp_path / "sweep.yaml"
    f.write_text(textwrap.dedent("""\
        name: s
        trainable: trials.examples.mlp:train
        metric: val_accuracy
        mode: max
        max_epochs: 5
        search:
          algorithm: random
          space:
            lr: {type: loguniform, low: 0.001, high: 0.1}
        """) + textwrap.dedent(extra))
    return f


def test_sweep_file_with_scoring_and_pipeline(tmp_path):
    cfg = load_config(_sweep(tmp_path, """\
        scoring:
          target: 0.9
          objective: score
          weights: {cohesion: 0.25, coupling: 0.75}
        pipeline:
          steps:
            - {name: load, responsibilities: [read], inputs: [dataset]}
            - {name: train, responsibilities: [fit], inputs: [load]}
        """), check_import=False)
    assert cfg.scoring.objective == "score" and cfg.scoring.target == 0.9
    assert cfg.scoring.to_params(cfg.mode).w_coupling == 0.75
    assert len(cfg.pipeline.to_pipeline().steps) == 2


def test_sweep_file_error_names_field_value_and_line(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(_sweep(tmp_path, """\
            scoring:
              cost_per_hour: 1.0
              tolerance: 3
            """), check_import=False)
    text = str(ei.value)
    assert "scoring.tolerance" in text and "3" in text
    assert any(p.path == "scoring.tolerance" and p.line == 12 for p in ei.value.problems), text
