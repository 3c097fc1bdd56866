"""The sweep config model: every kind of bad input names the field, the value and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, SweepConfig, load_config
from orchestrator.config_pruning import AshaPruning, CurvePruning, FifoPruning

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
name: t
trainable: trials.examples.mlp:train
metric: val_accuracy
mode: max
max_epochs: 5
search:
  algorithm: random
  space:
    lr: {type: loguniform, low: 1.0e-3, high: 1.0e-1}
"""
# line numbers of BASE:  name 1, trainable 2, metric 3, mode 4, max_epochs 5, search 6,
# algorithm 7, space 8, lr 9; appended text starts at line 10.


def make(replace: dict[str, str] | None = None, append: str = "") -> str:
    text = BASE
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text + append


def problems_of(tmp_path: Path, text: str, check_import: bool = False) -> list:
    f = tmp_path / "sweep.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_config(f, check_import=check_import)
    return ei.value.problems


LR = "lr: {type: loguniform, low: 1.0e-3, high: 1.0e-1}"

# (id, yaml text, path, message fragment, value shown (repr) or None, line)
CASES = [
    ("mode", make({"mode: max": "mode: maximize"}), "mode", "'min' or 'max'", "'maximize'", 4),
    ("mode-bool", make({"mode: max": "mode: true"}), "mode", "'min' or 'max'", "True", 4),
    (
        "max_epochs-zero",
        make({"max_epochs: 5": "max_epochs: 0"}),
        "max_epochs",
        "greater than or equal to 1",
        "0",
        5,
    ),
    (
        "max_epochs-str",
        make({"max_epochs: 5": 'max_epochs: "5"'}),
        "max_epochs",
        "must be an integer",
        "'5'",
        5,
    ),
    (
        "max_epochs-float",
        make({"max_epochs: 5": "max_epochs: 2.5"}),
        "max_epochs",
        "must be an integer",
        "2.5",
        5,
    ),
    (
        "num_samples",
        make(append="num_samples: -1\n"),
        "num_samples",
        "greater than or equal to 1",
        "-1",
        10,
    ),
    (
        "max_concurrent",
        make(append="max_concurrent: 0\n"),
        "max_concurrent",
        "greater than or equal to 1",
        "0",
        10,
    ),
    ("unknown-top", make(append="colour: red\n"), "colour", "unknown key 'colour'", "'red'", 10),
    (
        "resources-cpu",
        make(append="resources: {cpu: -1}\n"),
        "resources.cpu",
        "greater than or equal to 0",
        "-1",
        10,
    ),
    (
        "resources-gpu",
        make(append="resources:\n  cpu: 1\n  gpu: -0.5\n"),
        "resources.gpu",
        "greater than or equal to 0",
        "-0.5",
        12,
    ),
    (
        "resources-unknown",
        make(append="resources: {tpu: 1}\n"),
        "resources.tpu",
        "unknown key 'tpu' (allowed: cpu, gpu)",
        "1",
        10,
    ),
    (
        "resources-not-mapping",
        make(append="resources: 4\n"),
        "resources",
        "must be a mapping",
        "4",
        10,
    ),
    (
        "algorithm",
        make({"algorithm: random": "algorithm: bayes"}),
        "search.algorithm",
        "'optuna-tpe'",
        "'bayes'",
        7,
    ),
    (
        "search-unknown",
        make({"algorithm: random": "sampler: tpe"}),
        "search.sampler",
        "unknown key 'sampler'",
        "'tpe'",
        7,
    ),
    (
        "loguniform-low0",
        make({LR: "lr: {type: loguniform, low: 0, high: 1}"}),
        "search.space.lr.low",
        "> 0",
        "0",
        9,
    ),
    (
        "loguniform-order",
        make({LR: "lr: {type: loguniform, low: 0.1, high: 0.01}"}),
        "search.space.lr.high",
        "greater than low (0.1)",
        "0.01",
        9,
    ),
    (
        "uniform-equal",
        make({LR: "lr: {type: uniform, low: 1, high: 1}"}),
        "search.space.lr.high",
        "greater than low",
        "1",
        9,
    ),
    (
        "uniform-str",
        make({LR: "lr: {type: uniform, low: a, high: 1}"}),
        "search.space.lr.low",
        "must be a number",
        "'a'",
        9,
    ),
    (
        "randint-float",
        make({LR: "lr: {type: randint, low: 1, high: 3.5}"}),
        "search.space.lr.high",
        "must be an integer",
        "3.5",
        9,
    ),
    (
        "choice-empty",
        make({LR: "lr: {type: choice, values: []}"}),
        "search.space.lr.values",
        "non-empty",
        "[]",
        9,
    ),
    (
        "choice-not-list",
        make({LR: "lr: {type: choice, values: 3}"}),
        "search.space.lr.values",
        "must be a list",
        "3",
        9,
    ),
    (
        "choice-repeat",
        make({LR: "lr: {type: choice, values: [1, 2, 1]}"}),
        "search.space.lr.values",
        "must not repeat",
        "1",
        9,
    ),
    (
        "choice-nested",
        make({LR: "lr: {type: choice, values: [{a: 1}]}"}),
        "search.space.lr.values[0]",
        "must be one of",
        "{'a': 1}",
        9,
    ),
    (
        "space-type",
        make({LR: "lr: {type: normal, mean: 0}"}),
        "search.space.lr.type",
        "unknown search-space type 'normal'",
        "'normal'",
        9,
    ),
    (
        "space-no-type",
        make({LR: "lr: {low: 0, high: 1}"}),
        "search.space.lr.type",
        "is required (one of: uniform",
        None,
        9,
    ),
    (
        "space-option",
        make({LR: "lr: {type: uniform, low: 0, high: 1, q: 0.1}"}),
        "search.space.lr.q",
        "type 'uniform' does not accept option 'q' (it accepts: low, high)",
        "0.1",
        9,
    ),
    (
        "grid-needs-grid-algo",
        make({LR: "lr: {type: grid, values: [0.1, 0.01]}"}),
        "search.space",
        "grid entries need search.algorithm: grid",
        None,
        8,
    ),
    (
        "grid-algo-no-grid",
        make({"algorithm: random": "algorithm: grid"}),
        "search.space",
        "needs at least one entry of type: grid",
        None,
        8,
    ),
    (
        "space-empty",
        make({LR: ""}).replace("  space:\n", "  space: {}\n"),
        "search.space",
        "at least 1 item",
        None,
        8,
    ),
    (
        "space-reserved",
        make(append="    max_epochs: {type: randint, low: 1, high: 3}\n"),
        "search.space",
        "set by the top-level key 'max_epochs'",
        None,
        8,
    ),
    (
        "scheduler-unknown",
        make(append="pruning: {scheduler: bogus}\n"),
        "pruning.scheduler",
        "unknown scheduler 'bogus'; expected one of: fifo, asha",
        "'bogus'",
        10,
    ),
    (
        "scheduler-missing",
        make(append="pruning: {grace_period: 1}\n"),
        "pruning.scheduler",
        "is required (one of: fifo",
        None,
        10,
    ),
    (
        "asha-option",
        make(append="pruning:\n  scheduler: asha\n  min_samples_required: 3\n"),
        "pruning.min_samples_required",
        (
            "scheduler 'asha' does not accept option 'min_samples_required' "
            "(it accepts: grace_period, reduction_factor, brackets)"
        ),
        "3",
        12,
    ),
    (
        "fifo-option",
        make(append="pruning: {scheduler: fifo, grace_period: 1}\n"),
        "pruning.grace_period",
        "scheduler 'fifo' does not accept option 'grace_period' (it accepts: none)",
        "1",
        10,
    ),
    (
        "asha-reduction",
        make(append="pruning: {scheduler: asha, reduction_factor: 1}\n"),
        "pruning.reduction_factor",
        "greater than 1",
        "1",
        10,
    ),
    (
        "median-min-samples",
        make(append="pruning: {scheduler: median, min_samples_required: 0}\n"),
        "pruning.min_samples_required",
        "greater than or equal to 1",
        "0",
        10,
    ),
    (
        "hyperband-stop-last",
        make(append="pruning: {scheduler: hyperband, stop_last_trials: 1}\n"),
        "pruning.stop_last_trials",
        "true or false",
        "1",
        10,
    ),
    (
        "curve-threshold",
        make(append="pruning: {scheduler: curve, threshold: 1.5}\n"),
        "pruning.threshold",
        "less than 1",
        "1.5",
        10,
    ),
    (
        "curve-grace",
        make(append="pruning: {scheduler: curve, grace_epochs: 0}\n"),
        "pruning.grace_epochs",
        "greater than or equal to 1",
        "0",
        10,
    ),
    (
        "curve-model",
        make(append="pruning: {scheduler: curve, model: lstm}\n"),
        "pruning.model",
        "'pfn'",
        "'lstm'",
        10,
    ),
    (
        "curve-option",
        make(append="pruning: {scheduler: curve, brackets: 2}\n"),
        "pruning.brackets",
        "scheduler 'curve' does not accept option 'brackets'",
        "2",
        10,
    ),
    (
        "grace-vs-max-epochs",
        make(append="pruning: {scheduler: asha, grace_period: 5}\n"),
        "pruning",
        "grace period 5 must be below max_epochs (5)",
        None,
        10,
    ),
    (
        "failure",
        make(append="failure: {max_failures: -1}\n"),
        "failure.max_failures",
        "greater than or equal to 0",
        "-1",
        10,
    ),
    (
        "failure-unknown",
        make(append="failure: {retries: 2}\n"),
        "failure.retries",
        "unknown key 'retries' (allowed: max_failures)",
        "2",
        10,
    ),
    (
        "tracking-empty",
        make(append="tracking: {experiment: ''}\n"),
        "tracking.experiment",
        "at least 1 character",
        "''",
        10,
    ),
    (
        "tracking-uri",
        make(append="tracking: {uri: 'http://x'}\n"),
        "tracking.uri",
        "unknown key 'uri'",
        "'http://x'",
        10,
    ),
    ("storage_path", make(append="storage_path: 3\n"), "storage_path", "must be a string", "3", 10),
    (
        "storage_path-scheme",
        make(append="storage_path: ftp://bucket/sweeps\n"),
        "storage_path",
        "unknown storage scheme 'ftp://'",
        "'ftp://bucket/sweeps'",
        10,
    ),
    (
        "storage_path-credentials",
        make(append="storage_path: s3://AKIAFAKE:wJalrFAKE@bucket/sweeps\n"),
        "storage_path",
        "must not carry credentials",
        "'s3://***@bucket/sweeps'",
        10,
    ),
    (
        "trainable-format",
        make({"trainable: trials.examples.mlp:train": "trainable: trials.examples.mlp"}),
        "trainable",
        "import path 'package.module:function'",
        "'trials.examples.mlp'",
        2,
    ),
    ("name", make({"name: t": "name: my sweep"}), "name", "letters, digits", "'my sweep'", 1),
    (
        "metric-empty",
        make({"metric: val_accuracy": "metric: ''"}),
        "metric",
        "at least 1 character",
        "''",
        3,
    ),
    (
        "scoring-objective",
        make(append="scoring: {objective: loss}\n"),
        "scoring.objective",
        "'metric' or 'score'",
        "'loss'",
        10,
    ),
    (
        "scoring-unknown",
        make(append="scoring: {reward: 3}\n"),
        "scoring.reward",
        "unknown key 'reward'",
        "3",
        10,
    ),
    (
        "pipeline-empty",
        make(append="pipeline: {steps: []}\n"),
        "pipeline.steps",
        "at least 1 item",
        None,
        10,
    ),
    (
        "schedule-unknown",
        make(append="schedule: {kind: cosine}\n"),
        "schedule.kind",
        "unknown key 'kind'",
        "'cosine'",
        10,
    ),
]


@pytest.mark.parametrize(
    "text,path,fragment,value,line", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_config_names_field_value_and_line(tmp_path, text, path, fragment, value, line):
    problems = problems_of(tmp_path, text)
    match = [p for p in problems if p.path == path]
    assert match, f"no problem at {path!r}; got {[(p.path, p.message) for p in problems]}"
    p = match[0]
    assert fragment in p.message
    assert p.line == line
    formatted = p.format("sweep.yaml")
    assert formatted.startswith(f"sweep.yaml:{line}: {path}: ")
    if value is not None:
        assert value in formatted, formatted


def test_missing_required_fields_are_listed(tmp_path):
    problems = problems_of(tmp_path, "name: t\nmode: max\n")
    paths = {p.path for p in problems}
    assert {"trainable", "metric", "max_epochs", "search"} <= paths
    assert all(p.message == "is required" for p in problems)


def test_several_problems_each_on_its_line(tmp_path):
    text = make(
        {"mode: max": "mode: up", "algorithm: random": "algorithm: sobol"},
        append="num_samples: 0\npruning:\n  scheduler: median\n  reduction_factor: 2\n",
    )
    problems = problems_of(tmp_path, text)
    got = {(p.path, p.line) for p in problems}
    assert got == {
        ("mode", 4),
        ("search.algorithm", 7),
        ("num_samples", 10),
        ("pruning.reduction_factor", 13),
    }
    assert [p.line for p in problems] == sorted(p.line for p in problems)


@pytest.mark.parametrize(
    "text,fragment,line",
    [
        ("", "the file is empty", 1),
        ("# only a comment\n\n", "the file is empty", 1),
        ("name: a\n  bad: [1, 2\n", "YAML syntax error", 2),
        ("name: a\nsearch: {space: [1, 2}\n", "YAML syntax error", 2),
        ("- a\n- b\n", "must be a mapping", 1),
        ("just a string\n", "must be a mapping", 1),
        ("name: a\nmode: max\nname: b\n", "duplicate key (first given on line 1)", 3),
        ("a: 1\n---\nb: 2\n", "one YAML document, found a second one", 2),
        ("name: a\n1: b\n", "keys must be strings", 2),
    ],
)
def test_file_level_problems(tmp_path, text, fragment, line):
    problems = problems_of(tmp_path, text)
    assert any(fragment in p.message and p.line == line for p in problems), problems


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml")
    assert "no such file" in str(ei.value) and "nope.yaml" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert "directory" in str(ei.value)


def test_exponent_without_dot_is_a_float(tmp_path):
    # YAML 1.1 reads 1e-4 as a string; a sweep config must not.
    f = tmp_path / "s.yaml"
    f.write_text(make({LR: "lr: {type: loguniform, low: 1e-4, high: 5E-1}"}))
    cfg = load_config(f, check_import=False)
    assert cfg.search.space["lr"].low == pytest.approx(1e-4)
    assert cfg.search.space["lr"].high == pytest.approx(0.5)


def test_defaults_and_frozen(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(BASE)
    cfg = load_config(f, check_import=False)
    assert isinstance(cfg.pruning, FifoPruning)
    assert cfg.num_samples == 10 and cfg.max_concurrent is None
    assert cfg.resources.cpu == 1.0 and cfg.resources.gpu == 0.0
    assert cfg.failure.max_failures == 0
    assert cfg.experiment_name == "t"
    assert cfg.scoring.objective == "metric" and cfg.pipeline is None and cfg.schedule is None
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        cfg.max_epochs = 3  # type: ignore[misc]


def test_merge_keys_and_anchors(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(
        make(
            {
                LR: "lr: &b {type: uniform, low: 0.1, high: 0.2}\n    wd:\n      <<: *b\n      high: 0.3"
            }
        )
    )
    cfg = load_config(f, check_import=False)
    assert cfg.search.space["wd"].low == 0.1 and cfg.search.space["wd"].high == 0.3


def test_pruning_variants_parse():
    base = {
        "name": "t",
        "trainable": "m:f",
        "metric": "m",
        "mode": "min",
        "max_epochs": 10,
        "search": {"space": {"x": {"type": "uniform", "low": 0, "high": 1}}},
    }
    a = SweepConfig.model_validate({**base, "pruning": {"scheduler": "asha", "grace_period": 2}})
    assert isinstance(a.pruning, AshaPruning) and a.pruning.reduction_factor == 4.0
    c = SweepConfig.model_validate({**base, "pruning": {"scheduler": "curve"}})
    assert isinstance(c.pruning, CurvePruning)
    # the defaults are the policy measured best in BENCHMARKS.md (issue 4)
    assert (c.pruning.threshold, c.pruning.grace_epochs, c.pruning.model) == (0.01, 1, "pfn")
    assert (c.pruning.rank_gate, c.pruning.veto_threshold, c.pruning.max_forecast_age,
            c.pruning.pause_ahead) == ("median_or", 0.1, 2, True)


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_are_valid(example):
    cfg = load_config(example)  # imports the trainable too
    assert cfg.max_epochs >= 1


# ------------------------------------------------------------------ the trainable check


def test_trainable_module_missing(tmp_path):
    problems = problems_of(
        tmp_path, make({"trials.examples.mlp:train": "nosuch_pkg.mod:train"}), check_import=True
    )
    (p,) = problems
    assert p.path == "trainable" and p.line == 2
    assert "cannot import module 'nosuch_pkg.mod'" in p.message
    assert "'nosuch_pkg.mod:train'" in p.format("f")


def test_trainable_attribute_missing_and_not_callable(tmp_path):
    (p,) = problems_of(
        tmp_path, make({"trials.examples.mlp:train": "trials.examples.mlp:nope"}), True
    )
    assert "has no attribute 'nope'" in p.message
    (p,) = problems_of(
        tmp_path, make({"trials.examples.mlp:train": "trials.examples.mlp:DEFAULTS"}), True
    )
    assert "is not callable (it is a dict)" in p.message


def test_trainable_import_error_is_reported(tmp_path, monkeypatch):
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "broken_trainable_h2.py").write_text("import nosuch_dependency_h2\ndef train(c): pass\n")
    monkeypatch.syspath_prepend(str(pkg))
    (p,) = problems_of(
        tmp_path, make({"trials.examples.mlp:train": "broken_trainable_h2:train"}), True
    )
    assert "importing module 'broken_trainable_h2' failed" in p.message
    assert "nosuch_dependency_h2" in p.message


def test_trainable_declared_hyperparameters_checked(tmp_path):
    problems = problems_of(
        tmp_path, make(append="    momentum: {type: uniform, low: 0.5, high: 0.99}\n"), True
    )
    (p,) = problems
    assert p.path == "search.space.momentum" and p.line == 10
    assert "does not take hyperparameter 'momentum'" in p.message and "lr" in p.message


def test_trainable_in_the_working_directory_imports(tmp_path, monkeypatch):
    import sys

    (tmp_path / "local_trainable_h2.py").write_text("def train(config):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "s.yaml"
    f.write_text(make({"trials.examples.mlp:train": "local_trainable_h2:train"}))
    before = list(sys.path)
    cfg = load_config(f)
    assert cfg.trainable == "local_trainable_h2:train"
    assert sys.path == before  # the working directory was only added for the import


def test_pause_ahead_gets_a_pending_pool_only_where_resources_bound_concurrency():
    from orchestrator.sweep import searcher_limit

    base = {"name": "t", "trainable": "m:f", "metric": "m", "mode": "min", "max_epochs": 10,
            "search": {"space": {"x": {"type": "uniform", "low": 0, "high": 1}}}}
    cfg = SweepConfig.model_validate({**base, "pruning": {"scheduler": "curve"}})
    assert searcher_limit(cfg, 4) == 8  # pause_ahead by default: as many again may wait
    cfg = SweepConfig.model_validate({**base, "max_concurrent": 4,
                                      "pruning": {"scheduler": "curve"}})
    assert searcher_limit(cfg, 4) == 4  # the limit is the user's max_concurrent
    cfg = SweepConfig.model_validate({**base, "pruning": {"scheduler": "curve",
                                                          "pause_ahead": False}})
    assert searcher_limit(cfg, 4) == 4
    cfg = SweepConfig.model_validate({**base, "pruning": {"scheduler": "asha"}})
    assert searcher_limit(cfg, 4) == 4
