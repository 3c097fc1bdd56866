"""The built-in MLP trainable, run outside Ray through trials.api.local_session."""

from __future__ import annotations

import itertools

import pytest

from trials import api
from trials.examples import mlp, schedules


def run(config, resume_from=None):
    with api.local_session(resume_from=resume_from) as s:
        mlp.train(config)
    return s


@pytest.mark.slow
def test_trains_and_improves():
    s = run({"lr": 0.01, "max_epochs": 4, "width": 32, "depth": 1})
    assert [r["epoch"] for r in s.results] == [1, 2, 3, 4]
    for r in s.results:
        assert {"train_loss", "val_loss", "val_accuracy", "epoch", "lr"} <= set(r)
    acc = [r["val_accuracy"] for r in s.results]
    assert acc[-1] > acc[0] and acc[-1] > 0.85
    assert s.results[-1]["train_loss"] < s.results[0]["train_loss"]
    assert [e for e, _ in s.checkpoints] == [1, 2, 3, 4]
    last = s.last_checkpoint
    assert last["epoch"] == 4 and "model" in last and "optimizer" in last


@pytest.mark.slow
def test_resume_continues_exactly():
    cfg = {
        "lr": 0.05,
        "max_epochs": 4,
        "width": 16,
        "depth": 1,
        "optimizer": "sgd",
        "lr_schedule": "cosine",
        "dropout": 0.1,
        "seed": 3,
    }
    full = run(cfg)
    resumed = run(cfg, resume_from=full.checkpoints[1][1])  # after epoch 2
    assert [r["epoch"] for r in resumed.results] == [3, 4]
    for a, b in zip(full.results[2:], resumed.results):
        assert a == pytest.approx(b, rel=1e-6)


@pytest.mark.slow
def test_schedule_drives_the_learning_rate():
    s = run(
        {
            "lr": 0.1,
            "max_epochs": 6,
            "width": 8,
            "depth": 1,
            "optimizer": "sgd",
            "lr_schedule": "step",
            "schedule_step_size": 2,
            "schedule_gamma": 0.5,
        }
    )
    assert [r["lr"] for r in s.results] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_unknown_hyperparameter_is_an_error():
    with pytest.raises(ValueError, match="does not take hyperparameter\\(s\\) momentum, nesterov"):
        run({"lr": 0.01, "momentum": 0.9, "nesterov": True})


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("lr", -0.1, "lr must be a number > 0, got -0.1"),
        ("lr", "fast", "lr must be a number > 0"),
        ("width", 0, "width must be an integer >= 1, got 0"),
        ("width", 32.5, "width must be an integer"),
        ("depth", -1, "depth must be an integer >= 0"),
        ("dropout", 1.0, "dropout must be a number in \\[0, 1\\)"),
        ("weight_decay", -1e-4, "weight_decay must be a number >= 0"),
        ("batch_size", True, "batch_size must be an integer"),
        ("optimizer", "rmsprop", "optimizer must be one of adam, sgd, adamw, got 'rmsprop'"),
        ("lr_schedule", "cyclic", "lr_schedule must be one of"),
        ("max_epochs", 0, "max_epochs must be an integer >= 1"),
    ],
)
def test_bad_values_name_the_hyperparameter(key, value, match):
    with pytest.raises(ValueError, match=match):
        mlp.parse_config({key: value})


def test_bad_schedule_parameter():
    with pytest.raises(ValueError, match="gamma must be in \\(0, 1\\], got 2.0"):
        mlp.parse_config({"lr_schedule": "step", "schedule_gamma": 2.0})


def test_schedule_parameter_of_another_schedule_is_an_error():
    with pytest.raises(ValueError, match="schedule 'cosine' does not take parameter\\(s\\) gamma"):
        mlp.parse_config({"lr_schedule": "cosine", "schedule_gamma": 0.5})


def test_numpy_scalars_accepted():
    import numpy as np
    hp = mlp.parse_config({"width": np.int64(8), "lr": np.float64(0.01)})
    assert hp["width"] == 8 and type(hp["width"]) is int


def test_declares_hyperparameters_for_validate():
    names = mlp.train.hyperparameters
    assert {
        "lr",
        "width",
        "depth",
        "dropout",
        "weight_decay",
        "batch_size",
        "optimizer",
        "lr_schedule",
        "max_epochs",
        "seed",
        "schedule_gamma",
        "schedule_min_factor",
    } <= names


def test_schedules():
    assert schedules.lr_curve(4, 1.0, "constant") == [1.0] * 4
    cos = schedules.lr_curve(4, 1.0, "cosine")
    assert cos[0] == 1.0 and all(a > b for a, b in itertools.pairwise(cos)) and cos[-1] > 0
    assert schedules.lr_curve(6, 1.0, "step") == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="unknown lr schedule 'warp'"):
        schedules.lr_at(1, 3, 0.1, "warp")
    with pytest.raises(ValueError, match="epoch must be in 1..3, got 4"):
        schedules.lr_at(4, 3, 0.1, "constant")


@pytest.mark.slow  # imports scikit-learn to compare
def test_data_is_sklearn_digits_with_a_fixed_stratified_split():
    import numpy as np
    import sklearn.datasets as sk
    x, y = mlp._digits_arrays()
    x_ref, y_ref = sk.load_digits(return_X_y=True)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)
    tr, va = mlp.split_indices(y, 0.2, 0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(y) == 1797
    assert np.array_equal(va, mlp.split_indices(y, 0.2, 0)[1])
    assert not np.array_equal(va, mlp.split_indices(y, 0.2, 1)[1])
    share = np.bincount(y[va], minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.02)
