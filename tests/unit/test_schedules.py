"""search.schedules: schedule specs -> per-step learning rate, Tissue et al. features, TaskSet."""

from __future__ import annotations

import numpy as np
import pytest

from search.schedules import (
    SCHEDULE_NAMES,
    TASKSET_TEMPLATE,
    annealing_area,
    features_at,
    forward_area,
    lr_per_step,
    parse_schedule,
    resolve_schedule,
    schedule_features,
    schedule_for_config,
    taskset_lr,
)


def _torch_lrs(make, n):
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sch = make(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return np.array(out)


@pytest.mark.parametrize(
    "spec, make",
    [
        ({"name": "cosine", "lr": 0.5}, lambda s, o: s.CosineAnnealingLR(o, T_max=17)),
        ({"name": "cosine", "lr": 0.5, "min_factor": 0.1},
         lambda s, o: s.CosineAnnealingLR(o, T_max=17, eta_min=0.05)),
        ({"name": "step", "lr": 0.5, "step_size": 4, "gamma": 0.3},
         lambda s, o: s.StepLR(o, 4, 0.3)),
        ({"name": "step", "lr": 0.5, "milestones": [3, 10], "gamma": 0.2},
         lambda s, o: s.MultiStepLR(o, [3, 10], 0.2)),
        ({"name": "linear", "lr": 0.5, "end_factor": 0.1},
         lambda s, o: s.LinearLR(o, 1.0, 0.1, total_iters=17)),
        ({"name": "exponential", "lr": 0.5, "gamma": 0.8}, lambda s, o: s.ExponentialLR(o, 0.8)),
        ({"name": "onecycle", "lr": 0.5, "pct_start": 0.25},
         lambda s, o: s.OneCycleLR(o, max_lr=0.5, total_steps=17, pct_start=0.25)),
    ],
)
def test_matches_pytorch_schedulers_stepped_per_epoch(spec, make):
    np.testing.assert_allclose(lr_per_step(spec, 17), _torch_lrs(make, 17), rtol=1e-9, atol=1e-12)


def test_warmup_is_linear_then_the_main_schedule_starts_from_epoch_zero():
    lr = lr_per_step({"name": "cosine", "lr": 2.0, "warmup_epochs": 4}, 12)
    np.testing.assert_allclose(lr[:4], [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(lr[4:], lr_per_step({"name": "cosine", "lr": 2.0}, 8))
    np.testing.assert_allclose(lr_per_step({"name": "warmup", "warmup_epochs": 2}, 4),
                               [0.5, 1, 1, 1])
    step = lr_per_step({"name": "step", "warmup_epochs": 2, "step_size": 2, "gamma": 0.5}, 6)
    np.testing.assert_allclose(step, [0.5, 1, 1, 1, 0.5, 0.5])


def test_wsd_is_stable_then_decays_to_the_floor_at_the_last_epoch():
    lr = lr_per_step({"name": "wsd", "decay_fraction": 0.3, "min_factor": 0.1}, 10)
    np.testing.assert_allclose(lr[:7], 1.0)
    assert lr[-1] == pytest.approx(0.1)
    assert np.all(np.diff(lr[6:]) < 0)
    for decay in ("cosine", "sqrt"):
        v = lr_per_step({"name": "wsd", "decay": decay}, 20)
        assert v[15] == 1.0 and v[-1] == pytest.approx(0.0) and np.all(np.diff(v[15:]) < 0)


def test_total_epochs_ends_the_decay_early_and_holds_the_floor():
    lr = lr_per_step({"name": "cosine", "total_epochs": 5, "min_factor": 0.2}, 9)
    np.testing.assert_allclose(lr[5:], 0.2)


def test_values_are_used_as_given_and_must_cover_the_horizon():
    np.testing.assert_allclose(lr_per_step({"name": "values", "values": [3, 2, 1, 0.5]}, 3),
                               [3, 2, 1])
    with pytest.raises(ValueError, match="has 2 rates but the horizon is 3"):
        lr_per_step({"name": "values", "values": [1, 2]}, 3)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "poly"}, "schedule.name must be one of"),
        ({"lr": 1.0}, "schedule.name must be one of"),
        ({"name": "cosine", "gamma": 0.5}, r"unknown parameter\(s\) \['gamma'\] for schedule 'cosine'"),
        ({"name": "step", "gamma": 0.5}, "exactly one of step_size or milestones"),
        ({"name": "step", "step_size": 2, "milestones": [3]}, "exactly one of step_size"),
        ({"name": "step", "milestones": [5, 3]}, "milestones must strictly increase"),
        ({"name": "step", "step_size": 2.5}, r"schedule.step_size must be an integer, got 2.5"),
        ({"name": "step", "step_size": 2, "gamma": 1.5}, r"schedule.gamma must be <= 1, got 1.5"),
        ({"name": "exponential"}, "schedule.gamma is required"),
        ({"name": "constant", "lr": -1}, r"schedule.lr must be > 0, got -1"),
        ({"name": "constant", "lr": True}, "schedule.lr must be a number, got True"),
        ({"name": "constant", "lr": float("nan")}, "schedule.lr must be finite"),
        ({"name": "warmup"}, "warmup_epochs is required"),
        ({"name": "cosine", "warmup_epochs": 5, "total_epochs": 5}, "must exceed warmup_epochs"),
        ({"name": "wsd", "decay": "cubic"}, "schedule.decay must be"),
        ({"name": "onecycle", "pct_start": 1.0}, "schedule.pct_start must be < 1"),
        ({"name": "values", "values": []}, "non-empty list"),
        ({"name": "values", "values": [0, 0]}, "all zeros"),
        ({"name": "values", "values": [1, -1]}, r"schedule.values\[1\] must be >= 0"),
        ("cosine", "must be a mapping"),
    ],
)
def test_bad_specs_name_the_field_and_the_value(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_schedule(spec)


def test_every_name_gives_finite_non_negative_rates_and_round_trips():
    specs = {
        "constant": {}, "warmup": {"warmup_epochs": 3}, "step": {"step_size": 3},
        "cosine": {"warmup_epochs": 2}, "linear": {}, "exponential": {"gamma": 0.9},
        "onecycle": {}, "wsd": {}, "values": {"values": list(range(1, 31))},
        "taskset": {"linear_decay": 1e-5, "exponential_decay": 1e-4},
    }
    assert set(specs) == set(SCHEDULE_NAMES)
    for name, params in specs.items():
        s = parse_schedule({"name": name, **params})
        lr = s.lr(30)
        assert lr.shape == (30,) and np.all(np.isfinite(lr)) and np.all(lr >= 0) and lr.max() > 0
        assert parse_schedule(s.to_dict()) == s


def test_taskset_mapping_matches_the_adam8p_formula_step_by_step():
    lr0, lin, ex = 3e-3, 5e-5, 2e-4
    got = taskset_lr(lr0, lin, ex, horizon=50)
    g = np.arange(10000)
    per_step = lr0 * np.exp(-ex * g) * np.maximum(1 - lin * g, 0)
    np.testing.assert_allclose(got, per_step.reshape(50, 200).mean(axis=1))
    # linear_decay 1e-4 reaches zero at step 10000; the last epoch averages the final 200 steps
    assert taskset_lr(1.0, 1e-4, 0.0, 50)[-1] == pytest.approx(np.mean(1 - 1e-4 * g[-200:]))
    # training_steps rescales the step counter (10000 / training_steps)
    np.testing.assert_allclose(taskset_lr(1.0, 0.0, 1e-3, 10, training_steps=5000),
                               taskset_lr(1.0, 0.0, 2e-3, 10))


def test_schedule_for_config_maps_taskset_configs_and_templates():
    cfg = {"learning_rate": 0.01, "linear_decay": 1e-6, "exponential_decay": 3e-5, "beta1": 0.9}
    s = schedule_for_config(cfg)
    assert s == parse_schedule({"name": "taskset", "lr": 0.01, "linear_decay": 1e-6,
                                "exponential_decay": 3e-5})
    assert schedule_for_config({"lr": 0.1}) is None
    t = {"name": "$sched", "lr": "$lr", "warmup_epochs": 2}
    assert schedule_for_config({"sched": "cosine", "lr": 0.1}, t) == parse_schedule(
        {"name": "cosine", "lr": 0.1, "warmup_epochs": 2})
    with pytest.raises(ValueError, match=r"schedule.lr refers to hyperparameter 'lr'"):
        resolve_schedule(t, {"sched": "cosine"})
    assert set(TASKSET_TEMPLATE) == {"name", "lr", "linear_decay", "exponential_decay"}


def test_forward_and_annealing_area_by_hand():
    lr = np.array([1.0, 1.0, 0.5, 0.5, 0.25])
    np.testing.assert_allclose(forward_area(lr), [1, 2, 2.5, 3, 3.25])
    # lam = 0: m_i = lr_{i-1} - lr_i, S2 = lr_1 - lr_s
    np.testing.assert_allclose(annealing_area(lr, 0.0), [0, 0, 0.5, 0.5, 0.75])
    # lam = 0.5: m = [0, 0, .5, .25, .375]
    np.testing.assert_allclose(annealing_area(lr, 0.5), [0, 0, 0.5, 0.75, 1.125])
    warm = np.array([0.5, 1.0, 0.5])
    np.testing.assert_allclose(annealing_area(warm, 0.0), [0, -0.5, 0.0])
    np.testing.assert_allclose(annealing_area(warm, 0.0, from_peak=True), [0, 0, 0.5])
    with pytest.raises(ValueError, match="lam must be in"):
        annealing_area(lr, 1.0)


def test_features_of_a_constant_schedule_and_their_invariances():
    f = schedule_features(np.full(40, 0.3))
    assert f.shape == (40, 3)
    np.testing.assert_allclose(f[:, 0], 1.0)
    np.testing.assert_allclose(f[:, 1], np.arange(1, 41) / 40)
    np.testing.assert_allclose(f[:, 2], 0.0)
    cos = lr_per_step({"name": "cosine"}, 100)
    np.testing.assert_allclose(schedule_features(cos), schedule_features(7.0 * cos))
    # a schedule stretched to twice the epochs has about the same features at the same fraction
    a = schedule_features(lr_per_step({"name": "cosine"}, 50))
    b = schedule_features(lr_per_step({"name": "cosine"}, 100))
    np.testing.assert_allclose(a[9::10], b[19::20], atol=0.03)
    # annealing grows as the cosine decays and ends close to the full drop
    assert np.all(np.diff(b[:, 2]) >= -1e-12) and 0.8 < b[-1, 2] <= 1.0
    # during an initial warm-up nothing is annealed
    w = schedule_features(lr_per_step({"name": "cosine", "warmup_epochs": 10}, 100))
    np.testing.assert_allclose(w[:10, 2], 0.0)
    with pytest.raises(ValueError, match="all zeros"):
        schedule_features(np.zeros(5))


def test_features_at_interpolates_reported_steps_and_checks_them():
    spec = parse_schedule({"name": "step", "step_size": 5, "gamma": 0.5})
    full = schedule_features(lr_per_step(spec, 20))
    got = features_at(spec, 20, np.array([1.0, 4.0, 12.0, 20.0]))
    np.testing.assert_allclose(got, full[[0, 3, 11, 19]])
    mid = features_at(spec, 20, np.array([2.5]))
    np.testing.assert_allclose(mid[0], (full[1] + full[2]) / 2)
    with pytest.raises(ValueError, match=r"steps must lie in \[1, horizon=20\]"):
        features_at(spec, 20, np.array([0.0, 21.0]))
