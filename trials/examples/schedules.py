"""Per-epoch learning-rate schedules for the built-in trainables.

A schedule is a pure function ``f(epoch, max_epochs, base_lr, **params) -> float`` giving the
learning rate used throughout epoch ``epoch`` (1-based, ``1 <= epoch <= max_epochs``). Being
pure and known in advance, the same function tells a forecaster the whole schedule of a trial
before it runs (``lr_at`` for every epoch up to ``max_epochs``; ``lr_curve`` does that).

Register a new schedule with ``@register("name")``; its keyword parameters (with defaults)
become tunable hyperparameters ``schedule_<param>`` of the built-in MLP.

Built-in: ``constant``; ``cosine`` (``min_factor``); ``step`` (``step_size``, ``gamma``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

Schedule = Callable[..., float]

SCHEDULES: dict[str, Schedule] = {}


def register(name: str) -> Callable[[Schedule], Schedule]:
    """Decorator: register ``fn(epoch, max_epochs, base_lr, **params)`` under ``name``."""

    def deco(fn: Schedule) -> Schedule:
        if name in SCHEDULES:
            raise ValueError(f"schedule {name!r} is already registered")
        SCHEDULES[name] = fn
        return fn

    return deco


def schedule_params(name: str) -> dict[str, Any]:
    """The keyword parameters of schedule ``name`` with their defaults."""
    fn = _get(name)
    sig = inspect.signature(fn)
    return {
        p.name: p.default
        for p in list(sig.parameters.values())[3:]
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def all_params() -> set[str]:
    """Every parameter name any registered schedule takes."""
    return {p for n in SCHEDULES for p in schedule_params(n)}


def lr_at(epoch: int, max_epochs: int, base_lr: float, name: str, **params: Any) -> float:
    """The learning rate of epoch ``epoch`` (1-based) under schedule ``name``.

    Raises:
        ValueError: unknown schedule, a parameter the schedule does not take, an epoch outside
            ``1..max_epochs``, or a non-positive ``base_lr``.
    """
    fn = _get(name)
    if not (isinstance(max_epochs, int) and max_epochs >= 1):
        raise ValueError(f"max_epochs must be an integer >= 1, got {max_epochs!r}")
    if not 1 <= epoch <= max_epochs:
        raise ValueError(f"epoch must be in 1..{max_epochs}, got {epoch!r}")
    if not (base_lr > 0 and math.isfinite(base_lr)):
        raise ValueError(f"base_lr must be a finite number > 0, got {base_lr!r}")
    known = schedule_params(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"schedule {name!r} does not take parameter(s) {', '.join(unknown)} "
            f"(it takes: {', '.join(known) or 'none'})"
        )
    return float(fn(epoch, max_epochs, base_lr, **params))


def lr_curve(max_epochs: int, base_lr: float, name: str, **params: Any) -> list[float]:
    """``[lr_at(e, ...) for e in 1..max_epochs]``: the whole schedule of a trial."""
    return [lr_at(e, max_epochs, base_lr, name, **params) for e in range(1, max_epochs + 1)]


def _get(name: str) -> Schedule:
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(
            f"unknown lr schedule {name!r} (known: {', '.join(sorted(SCHEDULES))})"
        ) from None


@register("constant")
def constant(epoch: int, max_epochs: int, base_lr: float) -> float:
    """The base rate throughout."""
    return base_lr


@register("cosine")
def cosine(epoch: int, max_epochs: int, base_lr: float, *, min_factor: float = 0.0) -> float:
    """Cosine annealing from ``base_lr`` (epoch 1) towards ``min_factor * base_lr``."""
    if not 0 <= min_factor < 1:
        raise ValueError(f"min_factor must be in [0, 1), got {min_factor!r}")
    t = (epoch - 1) / max_epochs
    return base_lr * (min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t)))


@register("step")
def step(
    epoch: int, max_epochs: int, base_lr: float, *, step_size: int = 0, gamma: float = 0.1
) -> float:
    """Multiply by ``gamma`` every ``step_size`` epochs (0: a third of ``max_epochs``)."""
    if not (isinstance(step_size, int) and step_size >= 0):
        raise ValueError(f"step_size must be an integer >= 0, got {step_size!r}")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    size = step_size or max(1, max_epochs // 3)
    return base_lr * gamma ** ((epoch - 1) // size)


# Added for schedule-aware forecasting (issue 8). Each matches ``search.schedules`` epoch for
# epoch (tests/unit/test_schedules_trainable.py); ``trials`` imports nothing of ours, so the
# arithmetic is repeated here rather than shared.


def _check_int(name: str, v: Any, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")


def _check_factor(name: str, v: Any, high_open: bool = False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
    if not ok or (high_open and v == 1):
        raise ValueError(f"{name} must be in [0, {'1)' if high_open else '1]'}, got {v!r}")


@register("warmup")
def warmup(epoch: int, max_epochs: int, base_lr: float, *, warmup_epochs: int = 0) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_epochs`` (0: a tenth of ``max_epochs``, at
    least 1), epoch ``e <= w`` using ``base_lr * e / w``; then constant."""
    _check_int("warmup_epochs", warmup_epochs, 0)
    w = warmup_epochs or max(1, max_epochs // 10)
    return base_lr * min(1.0, epoch / w)


@register("linear")
def linear(epoch: int, max_epochs: int, base_lr: float, *, end_factor: float = 0.0) -> float:
    """Linear decay from ``base_lr`` (epoch 1) towards ``end_factor * base_lr`` (PyTorch
    ``LinearLR`` over ``max_epochs``)."""
    _check_factor("end_factor", end_factor)
    return base_lr * (1.0 + (end_factor - 1.0) * (epoch - 1) / max_epochs)


@register("exponential")
def exponential(epoch: int, max_epochs: int, base_lr: float, *, gamma: float = 0.9) -> float:
    """``base_lr * gamma ** (epoch - 1)``."""
    if not (isinstance(gamma, (int, float)) and 0 < gamma <= 1):
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return base_lr * gamma ** (epoch - 1)


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


@register("onecycle")
def onecycle(
    epoch: int, max_epochs: int, base_lr: float, *, pct_start: float = 0.3,
    div_factor: float = 25.0, final_div_factor: float = 1e4,
) -> float:
    """PyTorch ``OneCycleLR`` (cosine, two phases) with one step per epoch: from
    ``base_lr / div_factor`` up to ``base_lr`` (the peak) over ``pct_start`` of the epochs, then
    down to ``base_lr / div_factor / final_div_factor``."""
    if not (isinstance(pct_start, (int, float)) and 0 < pct_start < 1):
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start!r}")
    for name, v in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
        if not (isinstance(v, (int, float)) and v >= 1):
            raise ValueError(f"{name} must be a number >= 1, got {v!r}")
    initial = base_lr / div_factor
    final = initial / final_div_factor
    step = epoch - 1
    end1 = pct_start * max_epochs - 1.0
    end2 = max_epochs - 1.0
    if step <= end1:
        return _anneal_cos(initial, base_lr, step / end1) if end1 > 0 else base_lr
    return _anneal_cos(base_lr, final, min(1.0, (step - end1) / max(end2 - end1, 1e-12)))


@register("wsd")
def wsd(
    epoch: int, max_epochs: int, base_lr: float, *, warmup_epochs: int = 0,
    decay_fraction: float = 0.2, min_factor: float = 0.0, decay: str = "linear",
) -> float:
    """Warmup-stable-decay: linear warm-up over ``warmup_epochs`` (0: none), constant, then the
    last ``round(decay_fraction * max_epochs)`` epochs (at least 1) decay (``linear``,
    ``cosine`` or ``sqrt``) to ``min_factor * base_lr``, reached at the last epoch."""
    _check_int("warmup_epochs", warmup_epochs, 0)
    if not (isinstance(decay_fraction, (int, float)) and 0 < decay_fraction <= 1):
        raise ValueError(f"decay_fraction must be in (0, 1], got {decay_fraction!r}")
    _check_factor("min_factor", min_factor)
    if decay not in ("linear", "cosine", "sqrt"):
        raise ValueError(f"decay must be 'linear', 'cosine' or 'sqrt', got {decay!r}")
    if warmup_epochs and epoch <= warmup_epochs:
        return base_lr * epoch / warmup_epochs
    d = min(max(1, round(decay_fraction * max_epochs)), max(max_epochs - warmup_epochs, 1))
    prog = min(1.0, max(0.0, (epoch - (max_epochs - d)) / d))
    if decay == "linear":
        shape = 1.0 - prog
    elif decay == "cosine":
        shape = (1.0 + math.cos(math.pi * prog)) / 2.0
    else:
        shape = 1.0 - math.sqrt(prog)
    return base_lr * (min_factor + (1.0 - min_factor) * shape)
