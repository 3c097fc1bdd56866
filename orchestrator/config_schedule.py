"""The optional ``schedule:`` block: the learning-rate schedule a sweep's trials follow.

Minimal first version (issue 2); the schedule-aware forecasting work (issue 8) owns this module
and extends it. It declares where each trial's schedule comes from so the forecaster can be
told, for every epoch up to ``max_epochs``, the learning rate the trial will use (see
``trials.examples.schedules.lr_at``).

Either a fixed schedule for every trial (``name`` + ``params``), or read from each trial's
hyperparameters (``name_key``, default ``lr_schedule``; base rate from ``lr_key``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ScheduleParam = bool | int | float | str


class ScheduleConfig(BaseModel):
    """Where a trial's learning-rate schedule comes from.

    Attributes:
        name: a fixed schedule name for every trial (e.g. ``cosine``); None: read it from the
            trial's config key ``name_key``.
        name_key: trial config key holding the schedule name.
        lr_key: trial config key holding the base learning rate.
        params: fixed schedule parameters (e.g. ``{warmup_epochs: 2}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    name_key: str = Field("lr_schedule", min_length=1)
    lr_key: str = Field("lr", min_length=1)
    params: dict[str, ScheduleParam] = {}
