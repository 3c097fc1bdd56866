"""Search-space translation to Ray Tune domains and Optuna distributions."""

from __future__ import annotations

import random

import pytest

from orchestrator.config import SearchConfig, grid_size, to_optuna_distributions, to_tune_space

SPACE = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
    "depth": {"type": "randint", "low": 1, "high": 3},
    "opt": {"type": "choice", "values": ["adam", "sgd"]},
}


def search(space, algorithm="random"):
    return SearchConfig.model_validate({"algorithm": algorithm, "space": space}).space


@pytest.mark.slow  # first import of Ray
def test_tune_space_types_and_bounds():
    import ray  # noqa: F401
    from ray.tune.search import sample

    out = to_tune_space(search(SPACE))
    assert isinstance(out["lr"], sample.Float) and isinstance(out["lr"].sampler, sample.LogUniform)
    assert (out["lr"].lower, out["lr"].upper) == (1e-4, 1e-1)
    assert isinstance(out["dropout"], sample.Float)
    assert isinstance(out["dropout"].sampler, sample.Uniform)
    assert isinstance(out["depth"], sample.Integer)
    # our randint is inclusive, Ray's upper bound is exclusive
    assert (out["depth"].lower, out["depth"].upper) == (1, 4)
    assert isinstance(out["opt"], sample.Categorical) and out["opt"].categories == ["adam", "sgd"]
    random.seed(0)
    depths = {out["depth"].sample() for _ in range(200)}
    assert depths == {1, 2, 3}
    lrs = [out["lr"].sample() for _ in range(200)]
    assert all(1e-4 <= x <= 1e-1 for x in lrs)


def test_tune_grid():
    import ray  # noqa: F401
    space = search({**SPACE, "g": {"type": "grid", "values": ["a", "b", "c"]}}, "grid")
    out = to_tune_space(space)
    assert out["g"] == {"grid_search": ["a", "b", "c"]}
    assert grid_size(space) == 3


def test_optuna_distributions():
    import optuna  # noqa: F401
    from optuna import distributions as od

    out = to_optuna_distributions(search(SPACE))
    assert out["lr"] == od.FloatDistribution(1e-4, 1e-1, log=True)
    assert out["dropout"] == od.FloatDistribution(0.0, 0.5)
    assert out["depth"] == od.IntDistribution(1, 3)
    assert out["opt"] == od.CategoricalDistribution(["adam", "sgd"])


def test_optuna_rejects_grid():
    import optuna  # noqa: F401
    space = search({"g": {"type": "grid", "values": [1, 2]}}, "grid")
    with pytest.raises(ValueError, match="search.space.g: a grid entry has no Optuna"):
        to_optuna_distributions(space)


def test_grid_size_product():
    space = search(
        {"a": {"type": "grid", "values": [1, 2]}, "b": {"type": "grid", "values": [1, 2, 3]}},
        "grid",
    )
    assert grid_size(space) == 6


def test_tune_param_space_adds_max_epochs():
    import ray  # noqa: F401

    from orchestrator.config import SweepConfig

    cfg = SweepConfig.model_validate(
        {
            "name": "t",
            "trainable": "m:f",
            "metric": "m",
            "mode": "max",
            "max_epochs": 7,
            "search": {"space": SPACE},
        }
    )
    ps = cfg.tune_param_space()
    assert ps["max_epochs"] == 7 and set(ps) == set(SPACE) | {"max_epochs"}
