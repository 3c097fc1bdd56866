"""Learning-rate schedules as data: a spec in, the learning rate of every step up to a horizon out.

Pure numpy (no torch, Ray, Optuna or MLflow). A trial knows its schedule in advance from its
config, so the forecaster can be told, for every step up to the horizon, which learning rate the
trial will use (issue 8). This module turns a schedule spec into that per-step learning rate and
into the per-step features the schedule-aware forecaster takes.

Steps are the trial's reporting steps (epochs), counted from 1: ``lr[t - 1]`` is the rate used
while training epoch ``t``, i.e. the rate that produced the value reported at step ``t``. Inside
the main phase (after warm-up) ``e = t - 1 - warmup_epochs`` counts epochs from 0, exactly as a
PyTorch ``LRScheduler`` stepped once per epoch does, so these curves match the built-in trainable
(``trials.examples.schedules``; a unit test compares them value by value).

Spec (a mapping; ``name`` picks the schedule, every other key is one of its parameters; unknown
keys and bad values raise ``ValueError`` naming the field and the value):

=============  =================================================================================
name           parameters (defaults)
=============  =================================================================================
constant       lr (1.0), warmup_epochs (0)
warmup         lr, warmup_epochs (required, >= 1): linear warm-up, then constant
step           lr, warmup_epochs, gamma (0.1), and step_size (int) or milestones (list of int):
               ``lr * gamma ** floor(e / step_size)`` or ``gamma ** (#milestones <= e)``
cosine         lr, warmup_epochs, min_factor (0.0), total_epochs (horizon):
               ``lr * (f + (1 - f) * (1 + cos(pi * e / E)) / 2)``, E = total_epochs - warmup
linear         lr, warmup_epochs, end_factor (0.0), total_epochs (horizon):
               ``lr * (1 + (end_factor - 1) * min(e, E) / E)`` (PyTorch ``LinearLR``)
exponential    lr, warmup_epochs, gamma (required, in (0, 1]): ``lr * gamma ** e``
onecycle       lr (the peak), pct_start (0.3), div_factor (25), final_div_factor (1e4),
               total_epochs (horizon): PyTorch ``OneCycleLR`` (cosine, two phases), one step
               per epoch
wsd            lr, warmup_epochs, decay_fraction (0.2), min_factor (0.0), decay ("linear",
               "cosine" or "sqrt"), total_epochs (horizon): warm-up, stable, then the last
               ``round(decay_fraction * total)`` epochs decay to ``min_factor * lr``, reaching it
               at the last epoch
values         values (list of per-epoch rates, at least ``horizon`` long; longer is cut)
taskset        lr, linear_decay, exponential_decay, steps_per_epoch (200), training_steps
               (10000): TaskSet's ``adam8p`` optimizer, see :func:`taskset_lr`
=============  =================================================================================

Warm-up (``warmup_epochs = w``) is linear: epoch ``t <= w`` uses ``lr * t / w``.

Features (Tissue et al. 2024, "Scaling Law with Learning Rate Annealing"): with
``eta_i`` the rate of step i, the forward area ``S1(s) = sum_{i<=s} eta_i`` and the annealing area
``S2(s) = sum_{i<=s} m_i`` with ``m_i = lam * m_{i-1} + (eta_{i-1} - eta_i)`` (``eta_0 = eta_1``);
the paper's law is ``loss(s) = L0 + A * S1(s) ** -alpha - C * S2(s)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEDULE_NAMES = (
    "constant", "warmup", "step", "cosine", "linear", "exponential", "onecycle", "wsd",
    "values", "taskset",
)

# Parameters each schedule accepts (besides ``name``); anything else is an error.
_PARAMS: dict[str, tuple[str, ...]] = {
    "constant": ("lr", "warmup_epochs"),
    "warmup": ("lr", "warmup_epochs"),
    "step": ("lr", "warmup_epochs", "gamma", "step_size", "milestones"),
    "cosine": ("lr", "warmup_epochs", "min_factor", "total_epochs"),
    "linear": ("lr", "warmup_epochs", "end_factor", "total_epochs"),
    "exponential": ("lr", "warmup_epochs", "gamma"),
    "onecycle": ("lr", "pct_start", "div_factor", "final_div_factor", "total_epochs"),
    "wsd": ("lr", "warmup_epochs", "decay_fraction", "min_factor", "decay", "total_epochs"),
    "values": ("values",),
    "taskset": ("lr", "linear_decay", "exponential_decay", "steps_per_epoch", "training_steps"),
}

#: Lag of the annealing feature as a fraction of the horizon (see :func:`schedule_features`).
DEFAULT_LAG = 0.02
#: Number of per-step features :func:`schedule_features` returns.
N_FEATURES = 3


@dataclass(frozen=True)
class Schedule:
    """A validated learning-rate schedule.

    Attributes:
        name: one of :data:`SCHEDULE_NAMES`.
        params: the schedule's parameters, with defaults filled in.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def lr(self, horizon: int) -> np.ndarray:
        """The learning rate of steps 1..horizon, shape (horizon,), float64, finite, >= 0."""
        return lr_per_step(self, horizon)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (``parse_schedule(s.to_dict()) == s``)."""
        return {"name": self.name, **{k: _plain(v) for k, v in self.params.items()}}


def _plain(v: Any) -> Any:
    if isinstance(v, (tuple, list, np.ndarray)):
        return [float(x) if not isinstance(x, (int, np.integer)) else int(x) for x in v]
    return v


def _num(where: str, v: Any, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where} must be a number, got {v!r}")  # noqa: TRY004 (contract: ValueError)
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"{where} must be finite, got {v!r}")
    if integer and x != int(x):
        raise ValueError(f"{where} must be an integer, got {v!r}")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ValueError(f"{where} must be {'>' if lo_open else '>='} {lo:g}, got {v!r}")
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise ValueError(f"{where} must be {'<' if hi_open else '<='} {hi:g}, got {v!r}")
    return int(x) if integer else x


def parse_schedule(spec: Schedule | Mapping[str, Any], where: str = "schedule") -> Schedule:
    """Validate a spec and fill in defaults.

    Args:
        spec: a :class:`Schedule` (returned as is) or a mapping with ``name`` and parameters.
        where: the field path used in error messages.

    Raises:
        ValueError: naming the field and the value, for an unknown name or parameter, a missing
            required parameter or a value out of range.
    """
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} must be a mapping with a 'name', got {spec!r}")  # noqa: TRY004
    name = spec.get("name")
    if name not in _PARAMS:
        raise ValueError(f"{where}.name must be one of {', '.join(SCHEDULE_NAMES)}; got {name!r}")
    unknown = sorted(set(spec) - {"name"} - set(_PARAMS[name]))
    if unknown:
        raise ValueError(
            f"{where}: unknown parameter(s) {unknown} for schedule {name!r}; "
            f"it takes {', '.join(_PARAMS[name])}"
        )
    p: dict[str, Any] = {}
    w = f"{where}."
    if "lr" in _PARAMS[name]:
        p["lr"] = _num(w + "lr", spec.get("lr", 1.0), lo=0.0, lo_open=True)
    if "warmup_epochs" in _PARAMS[name]:
        p["warmup_epochs"] = _num(w + "warmup_epochs", spec.get("warmup_epochs", 0), lo=0,
                                  integer=True)
    if "total_epochs" in _PARAMS[name] and spec.get("total_epochs") is not None:
        p["total_epochs"] = _num(w + "total_epochs", spec["total_epochs"], lo=1, integer=True)
        if p["total_epochs"] <= p.get("warmup_epochs", 0):
            raise ValueError(f"{w}total_epochs must exceed warmup_epochs "
                             f"({p.get('warmup_epochs', 0)}), got {spec['total_epochs']!r}")
    if name == "warmup":
        if "warmup_epochs" not in spec:
            raise ValueError(f"{w}warmup_epochs is required for schedule 'warmup'")
        if p["warmup_epochs"] < 1:
            raise ValueError(f"{w}warmup_epochs must be >= 1, got {spec['warmup_epochs']!r}")
    elif name == "step":
        p["gamma"] = _num(w + "gamma", spec.get("gamma", 0.1), lo=0.0, hi=1.0, lo_open=True)
        has_size, has_ms = spec.get("step_size") is not None, spec.get("milestones") is not None
        if has_size == has_ms:
            raise ValueError(f"{where}: schedule 'step' needs exactly one of step_size or "
                             f"milestones, got step_size={spec.get('step_size')!r}, "
                             f"milestones={spec.get('milestones')!r}")
        if has_size:
            p["step_size"] = _num(w + "step_size", spec["step_size"], lo=1, integer=True)
        else:
            ms = spec["milestones"]
            if isinstance(ms, (str, bytes)) or not isinstance(ms, Sequence) or not ms:
                raise ValueError(f"{w}milestones must be a non-empty list of epochs, got {ms!r}")
            vals = [_num(f"{w}milestones[{i}]", m, lo=1, integer=True) for i, m in enumerate(ms)]
            if any(b <= a for a, b in itertools.pairwise(vals)):
                raise ValueError(f"{w}milestones must strictly increase, got {list(ms)!r}")
            p["milestones"] = tuple(vals)
    elif name == "cosine":
        p["min_factor"] = _num(w + "min_factor", spec.get("min_factor", 0.0), lo=0.0, hi=1.0)
    elif name == "linear":
        p["end_factor"] = _num(w + "end_factor", spec.get("end_factor", 0.0), lo=0.0, hi=1.0)
    elif name == "exponential":
        if "gamma" not in spec:
            raise ValueError(f"{w}gamma is required for schedule 'exponential'")
        p["gamma"] = _num(w + "gamma", spec["gamma"], lo=0.0, hi=1.0, lo_open=True)
    elif name == "onecycle":
        p["pct_start"] = _num(w + "pct_start", spec.get("pct_start", 0.3), lo=0.0, hi=1.0,
                              lo_open=True, hi_open=True)
        p["div_factor"] = _num(w + "div_factor", spec.get("div_factor", 25.0), lo=1.0)
        p["final_div_factor"] = _num(w + "final_div_factor", spec.get("final_div_factor", 1e4),
                                     lo=1.0)
    elif name == "wsd":
        p["decay_fraction"] = _num(w + "decay_fraction", spec.get("decay_fraction", 0.2),
                                   lo=0.0, hi=1.0, lo_open=True)
        p["min_factor"] = _num(w + "min_factor", spec.get("min_factor", 0.0), lo=0.0, hi=1.0)
        decay = spec.get("decay", "linear")
        if decay not in ("linear", "cosine", "sqrt"):
            raise ValueError(f"{w}decay must be 'linear', 'cosine' or 'sqrt', got {decay!r}")
        p["decay"] = decay
    elif name == "values":
        vals = spec.get("values")
        if isinstance(vals, (str, bytes)) or not isinstance(vals, (Sequence, np.ndarray)) \
                or len(vals) == 0:
            raise ValueError(f"{w}values must be a non-empty list of per-epoch rates, got {vals!r}")
        p["values"] = tuple(_num(f"{w}values[{i}]", v, lo=0.0) for i, v in enumerate(vals))
        if max(p["values"]) <= 0:
            raise ValueError(f"{w}values must contain a rate > 0, got all zeros")
    elif name == "taskset":
        for k in ("linear_decay", "exponential_decay"):
            p[k] = _num(w + k, spec.get(k, 0.0), lo=0.0)
        p["steps_per_epoch"] = _num(w + "steps_per_epoch", spec.get("steps_per_epoch", 200),
                                    lo=1, integer=True)
        p["training_steps"] = _num(w + "training_steps", spec.get("training_steps", 10000),
                                   lo=1, integer=True)
    return Schedule(name, p)


def _anneal_cos(start: np.ndarray | float, end: float, pct: np.ndarray) -> np.ndarray:
    return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1.0)


def taskset_lr(lr: float, linear_decay: float, exponential_decay: float, horizon: int,
               steps_per_epoch: int = 200, training_steps: int = 10000) -> np.ndarray:
    """Per-epoch learning rate of TaskSet's ``adam8p`` optimizer (Metz et al. 2020).

    TaskSet's source (``task_set/optimizers/adam8p.py``) applies, at optimizer step ``g``
    (0-based), ``lr * exp(-exponential_decay * g') * max(1 - linear_decay * g', 0)`` with
    ``g' = g * 10000 / training_steps`` (its ``adam8p_wide_grid`` getter leaves
    ``training_steps`` at 10000, so ``g' = g``). TaskSet trains 10,000 steps and evaluates every
    200, which gives the 51 points of ``../shared/data/curves/taskset`` (index 0 = before training).
    Reported step ``t >= 1`` is the evaluation after ``t * steps_per_epoch`` optimizer steps, so
    its rate is the **mean** rate over steps ``[(t - 1) * spe, t * spe)``.
    """
    g = np.arange(horizon * steps_per_epoch, dtype=np.float64) * (10000.0 / training_steps)
    per = lr * np.exp(-exponential_decay * g) * np.maximum(1.0 - linear_decay * g, 0.0)
    return per.reshape(horizon, steps_per_epoch).mean(axis=1)


def lr_per_step(spec: Schedule | Mapping[str, Any], horizon: int) -> np.ndarray:
    """The learning rate of steps 1..horizon for a schedule spec (see the module docstring).

    Args:
        spec: a :class:`Schedule` or a spec mapping.
        horizon: the number of steps (epochs) the trial trains, >= 1.

    Returns:
        shape (horizon,), float64, finite and >= 0.
    """
    horizon = _num("horizon", horizon, lo=1, integer=True)
    return rates_of(parse_schedule(spec), horizon)


def rates_of(s: Schedule, horizon: int) -> np.ndarray:
    """:func:`lr_per_step` for an already validated :class:`Schedule` (no checks: the fast path
    for samplers that build many schedules with every parameter given)."""
    p = s.params
    t = np.arange(1, horizon + 1, dtype=np.float64)
    if s.name == "values":
        v = np.asarray(p["values"], dtype=np.float64)
        if v.size < horizon:
            raise ValueError(f"schedule.values has {v.size} rates but the horizon is {horizon} "
                             f"epochs; give one rate per epoch")
        return v[:horizon].copy()
    lr = p["lr"]
    if s.name == "taskset":
        return taskset_lr(lr, p["linear_decay"], p["exponential_decay"], horizon,
                          p["steps_per_epoch"], p["training_steps"])
    total = p.get("total_epochs", horizon)
    if s.name == "onecycle":
        n = total
        initial = lr / p["div_factor"]
        final = initial / p["final_div_factor"]
        step = np.minimum(t - 1.0, n - 1.0)
        end1 = float(p["pct_start"] * n) - 1.0
        end2 = float(n - 1)
        out = np.empty(horizon)
        first = step <= end1
        if end1 > 0:
            out[first] = _anneal_cos(initial, lr, step[first] / end1)
        else:
            out[first] = lr
        span = max(end2 - end1, 1e-12)
        out[~first] = _anneal_cos(lr, final, np.clip((step[~first] - end1) / span, 0.0, 1.0))
        return out
    w = p.get("warmup_epochs", 0)
    e = t - 1.0 - w  # main-phase epoch index, 0-based
    main_len = max(total - w, 1)
    if s.name in ("constant", "warmup"):
        f = np.ones(horizon)
    elif s.name == "step":
        if "step_size" in p:
            f = p["gamma"] ** np.floor(np.maximum(e, 0) / p["step_size"])
        else:
            ms = np.asarray(p["milestones"], dtype=np.float64)
            f = p["gamma"] ** np.searchsorted(ms, np.maximum(e, 0), side="right")
    elif s.name == "cosine":
        m = p["min_factor"]
        f = _anneal_cos(1.0, m, np.clip(e / main_len, 0.0, 1.0))
    elif s.name == "linear":
        f = 1.0 + (p["end_factor"] - 1.0) * np.clip(e, 0, main_len) / main_len
    elif s.name == "exponential":
        f = p["gamma"] ** np.maximum(e, 0)
    elif s.name == "wsd":
        d = max(1, round(p["decay_fraction"] * total))
        d = min(d, main_len)
        start = total - d  # first decay epoch, 1-based, is start + 1
        prog = np.clip((t - start) / d, 0.0, 1.0)
        m = p["min_factor"]
        if p["decay"] == "linear":
            shape = 1.0 - prog
        elif p["decay"] == "cosine":
            shape = (1.0 + np.cos(np.pi * prog)) / 2.0
        else:
            shape = 1.0 - np.sqrt(prog)
        f = m + (1.0 - m) * shape
    else:  # pragma: no cover - parse_schedule rejects unknown names
        raise ValueError(f"unknown schedule {s.name!r}")
    if w > 0:
        f = np.where(t <= w, t / w, f)
    return lr * f


def forward_area(lr: np.ndarray) -> np.ndarray:
    """S1: cumulative learning rate, ``S1(s) = sum_{i<=s} lr_i``; same shape as ``lr``."""
    return np.cumsum(np.asarray(lr, dtype=np.float64), axis=-1)


def annealing_area(lr: np.ndarray, lam: float | np.ndarray, from_peak: bool = False) -> np.ndarray:
    """S2 of Tissue et al. (2024): ``sum_{i<=s} m_i``, ``m_i = lam m_{i-1} + (lr_{i-1} - lr_i)``.

    ``lr_0`` is taken as ``lr_1`` (no annealing before the first step). Rising rates give negative
    terms (a warm restart undoes annealing). With ``from_peak`` the changes before the schedule
    first reaches its maximum (an initial warm-up or one-cycle ramp) are ignored, as the paper
    measures annealing from the peak rate. Works on the last axis of ``lr`` (shape (..., m));
    ``lam`` in [0, 1) is a scalar or broadcasts against ``lr[..., 0]``.
    """
    lr = np.asarray(lr, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    if np.any((lam < 0) | (lam >= 1)):
        raise ValueError(f"lam must be in [0, 1), got {lam!r}")
    delta = np.diff(lr, axis=-1, prepend=lr[..., :1]) * -1.0
    if from_peak:
        first_peak = np.argmax(lr, axis=-1)[..., None]
        delta = np.where(np.arange(lr.shape[-1]) <= first_peak, 0.0, delta)
    m = np.empty_like(lr)
    acc = np.zeros(lr.shape[:-1])
    for i in range(lr.shape[-1]):
        acc = lam * acc + delta[..., i]
        m[..., i] = acc
    return np.cumsum(m, axis=-1)


def lag_to_lambda(lag: float | np.ndarray, horizon: int) -> np.ndarray:
    """The per-step decay ``lam = exp(-1 / (lag * horizon))`` of a lag given as a horizon fraction."""
    return np.exp(-1.0 / (np.asarray(lag, dtype=np.float64) * horizon))


def schedule_features(lr: np.ndarray, lag: float = DEFAULT_LAG) -> np.ndarray:
    """Per-step features of a schedule for the schedule-aware forecaster, shape (..., m, 3).

    ``lr`` has shape (..., m): the rate of steps 1..m where m is the horizon. The features are
    invariant to the rate's absolute scale and to the horizon's length in steps (a schedule
    stretched to twice the epochs gives the same features at the same fraction of training):

    0. ``r_t = lr_t / max(lr)``: the relative rate, in [0, 1].
    1. ``S1(t) / m`` of ``r``: the forward area as a fraction of a constant-rate run's, in [0, 1]
       (``t / m`` for a constant schedule).
    2. ``(1 - lam) * S2(t)`` of ``r`` with ``lam = exp(-1 / (lag * m))``, counted from the first
       peak (``from_peak``): the annealing done so far, a lagged version of ``1 - r_t`` after the
       peak, in [-1, 1] (0 for a constant schedule and during an initial warm-up; a warm
       restart lowers it).

    Raises:
        ValueError: for an empty, negative, non-finite or all-zero rate.
    """
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim < 1 or lr.shape[-1] == 0:
        raise ValueError(f"lr must have at least one step, got shape {lr.shape}")
    if not np.all(np.isfinite(lr)) or np.any(lr < 0):
        raise ValueError("lr must be finite and >= 0 at every step")
    peak = lr.max(axis=-1, keepdims=True)
    if np.any(peak <= 0):
        raise ValueError("lr must be > 0 at some step (got a schedule of all zeros)")
    r = lr / peak
    m = lr.shape[-1]
    lam = lag_to_lambda(lag, m)
    s1 = forward_area(r) / m
    s2 = (1.0 - lam) * annealing_area(r, lam, from_peak=True)
    return np.stack([r, s1, s2], axis=-1)


def features_at(spec: Schedule | Mapping[str, Any], horizon: int, steps: np.ndarray,
                lag: float = DEFAULT_LAG) -> np.ndarray:
    """Schedule features at (possibly fractional) ``steps`` in [1, horizon], shape (len, 3).

    Features are computed on the integer steps 1..horizon and linearly interpolated, so irregular
    reporting (every k epochs, missed reports) gets the features of the steps it reported.
    """
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 1:
        raise ValueError(f"steps must be 1-D, got shape {steps.shape}")
    if np.any(~np.isfinite(steps)) or np.any(steps < 1) or np.any(steps > horizon):
        raise ValueError(f"steps must lie in [1, horizon={horizon}], got {steps.tolist()!r}")
    feats = schedule_features(lr_per_step(spec, horizon), lag)
    grid = np.arange(1, horizon + 1, dtype=np.float64)
    return np.stack([np.interp(steps, grid, feats[:, j]) for j in range(feats.shape[1])], axis=1)


def resolve_schedule(template: Schedule | Mapping[str, Any], trial_config: Mapping[str, Any],
                     where: str = "schedule") -> Schedule:
    """Fill a sweep-level schedule template from one trial's hyperparameters, then validate.

    Any string value ``"$key"`` in the template (``name`` included) is replaced by
    ``trial_config[key]``, so one template serves a sweep whose trials sample their own rate or
    schedule, e.g. ``{"name": "$schedule", "lr": "$lr", "warmup_epochs": 2}``.

    Raises:
        ValueError: naming the field when a referenced key is missing from the trial's config,
            or when the filled-in spec is invalid.
    """
    if isinstance(template, Schedule):
        return template
    if not isinstance(template, Mapping):
        raise ValueError(f"{where} must be a mapping with a 'name', got {template!r}")  # noqa: TRY004
    filled: dict[str, Any] = {}
    for k, v in template.items():
        if isinstance(v, str) and v.startswith("$"):
            key = v[1:]
            if key not in trial_config:
                raise ValueError(f"{where}.{k} refers to hyperparameter {key!r}, which the trial's "
                                 f"config does not have (keys: {sorted(trial_config)})")
            v = trial_config[key]
        filled[k] = v
    return parse_schedule(filled, where)


#: The template that maps a TaskSet ``adam8p`` config to its schedule (see :func:`taskset_lr`).
TASKSET_TEMPLATE = {"name": "taskset", "lr": "$learning_rate", "linear_decay": "$linear_decay",
                    "exponential_decay": "$exponential_decay"}


def declared_schedule(decl: Mapping[str, Any], trial_config: Mapping[str, Any],
                      horizon: int, where: str = "schedule") -> Schedule:
    """A trial's schedule from a sweep's ``schedule:`` declaration (pure; see
    ``orchestrator.config_schedule.ScheduleConfig`` for the fields and their defaults).

    ``decl`` keys: ``name`` (fixed name, or None: read ``trial_config[name_key]``), ``name_key``
    (``lr_schedule``), ``lr_key`` (``lr``), ``param_prefix`` (``schedule_``) and ``params``
    (fixed parameters, ``"$key"`` = ``trial_config[key]``). The built-in MLP's conventions apply
    (``step``'s ``step_size: 0`` is a third of the horizon, ``warmup``'s ``warmup_epochs: 0`` a
    tenth, ``exponential``'s ``gamma`` defaults to 0.9; its other defaults equal this module's):
    ``search`` may not import ``trials``, so they are repeated here; a unit test holds the two
    equal, epoch by epoch.

    Raises:
        ValueError: naming the field, for a missing name or referenced key, or a bad value.
    """
    name = decl.get("name")
    name_key = decl.get("name_key", "lr_schedule")
    if name is None:
        if name_key not in trial_config:
            raise ValueError(f"schedule.name_key: the trial's config has no key {name_key!r} "
                             f"naming its schedule (keys: {sorted(trial_config)}); set "
                             f"schedule.name")
        name = trial_config[name_key]
    prefix = decl.get("param_prefix", "schedule_")
    spec: dict[str, Any] = {k[len(prefix):]: v for k, v in trial_config.items()
                            if k.startswith(prefix)}
    for k, v in (decl.get("params") or {}).items():
        if isinstance(v, str) and v.startswith("$"):
            if v[1:] not in trial_config:
                raise ValueError(f"schedule.params.{k} refers to hyperparameter {v[1:]!r}, which "
                                 f"the trial's config does not have (keys: {sorted(trial_config)})")
            v = trial_config[v[1:]]
        spec[k] = v
    lr_key = decl.get("lr_key", "lr")
    if name != "values" and "lr" not in spec and lr_key in trial_config:
        spec["lr"] = trial_config[lr_key]
    if name == "step" and "milestones" not in spec and spec.get("step_size", 0) == 0:
        spec["step_size"] = max(1, horizon // 3)
    if name == "warmup" and spec.get("warmup_epochs", 0) == 0:
        spec["warmup_epochs"] = max(1, horizon // 10)
    if name == "exponential":
        spec.setdefault("gamma", 0.9)
    return parse_schedule({"name": name, **spec}, where)


def mlp_schedule(trial_config: Mapping[str, Any], horizon: int) -> Schedule:
    """The schedule of a config of the built-in MLP (``trials.examples.mlp``): ``lr_schedule``
    names it (default constant), ``lr`` is the base rate, ``schedule_<p>`` its parameters."""
    cfg = dict(trial_config)
    cfg.setdefault("lr_schedule", "constant")
    return declared_schedule({}, cfg, horizon)


def schedule_for_config(trial_config: Mapping[str, Any],
                        template: Schedule | Mapping[str, Any] | None = None,
                        horizon: int | None = None) -> Schedule | None:
    """The schedule of a recorded or running trial, or ``None`` when it declares none.

    With a ``template`` (the sweep's ``schedule:`` block) it is resolved against the trial's
    config. Without one, a config that carries TaskSet's decay hyperparameters
    (``learning_rate``, ``linear_decay``, ``exponential_decay``) maps through
    :data:`TASKSET_TEMPLATE`, one with the built-in MLP's ``lr_schedule`` through
    :func:`mlp_schedule` (horizon: ``horizon``, else the config's ``max_epochs``); anything else
    declares no schedule.
    """
    if template is not None:
        return resolve_schedule(template, trial_config)
    if all(k in trial_config for k in ("learning_rate", "linear_decay", "exponential_decay")):
        return resolve_schedule(TASKSET_TEMPLATE, trial_config)
    if "lr_schedule" in trial_config:
        h = horizon if horizon is not None else trial_config.get("max_epochs")
        if h is None:
            raise ValueError("an MLP config's schedule needs the horizon: pass horizon or give "
                             "max_epochs in the config")
        return mlp_schedule(trial_config, int(h))
    return None
