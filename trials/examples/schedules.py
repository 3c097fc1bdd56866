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
from typing import Any, Callable

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
