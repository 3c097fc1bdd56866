"""The optional ``schedule:`` block: the learning-rate schedule a sweep's trials follow.

It declares where each trial's schedule comes from, so the schedule-aware forecaster can be told,
for every epoch up to ``max_epochs``, the learning rate the trial will use (issue 8). Schedules
and their parameters are those of :mod:`search.schedules` (constant, warmup, step, cosine,
linear, exponential, onecycle, wsd, values, taskset); the built-in MLP's
(``trials.examples.schedules``) have the same names and parameters.

Examples::

    schedule: {}                                   # the built-in MLP's own hyperparameters:
                                                   # lr_schedule, lr, schedule_<param>
    schedule: {name: cosine, params: {warmup_epochs: 2}}          # every trial, base rate = lr
    schedule: {name: values, params: {values: [0.1, 0.1, 0.05, 0.01]}}
    schedule:                                      # TaskSet's adam8p configs
      name: taskset
      lr_key: learning_rate
      params: {linear_decay: $linear_decay, exponential_decay: $exponential_decay}

Resolution for one trial (:meth:`ScheduleConfig.resolve`): the name is ``name``, or else the
trial's ``config[name_key]``; the base rate is ``config[lr_key]`` (1.0 when the trial has no such
key: the forecaster only uses the schedule's shape); parameters are the trial's
``<param_prefix><p>`` keys, overridden by ``params``, where a string ``"$key"`` stands for the
trial's ``config[key]``. The built-in MLP's defaults apply (``step_size: 0`` means a third of
``max_epochs``, ``warmup``'s ``warmup_epochs: 0`` a tenth), so a resolved schedule equals the
rates the trial really uses, epoch by epoch (tests/unit/test_schedules_trainable.py). The
resolution itself is pure (:func:`search.schedules.declared_schedule`), so the Tune scheduler
can apply it to every trial's config (``model_dump()`` of this block is its input).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from search.schedules import SCHEDULE_NAMES, Schedule, declared_schedule

ScheduleParam = bool | int | float | str | list[float]


class ScheduleConfig(BaseModel):
    """Where a trial's learning-rate schedule comes from.

    Attributes:
        name: a fixed schedule name for every trial (e.g. ``cosine``); None: read it from the
            trial's config key ``name_key``.
        name_key: trial config key holding the schedule name.
        lr_key: trial config key holding the base learning rate.
        param_prefix: trial config keys ``<prefix><p>`` are parameter ``p`` of the schedule.
        params: fixed schedule parameters (e.g. ``{warmup_epochs: 2}``); ``"$key"`` refers to the
            trial's ``config[key]``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    name_key: str = Field("lr_schedule", min_length=1)
    lr_key: str = Field("lr", min_length=1)
    param_prefix: str = Field("schedule_", min_length=1)
    params: dict[str, ScheduleParam] = {}

    @model_validator(mode="after")
    def _check(self) -> ScheduleConfig:
        if self.name is not None and self.name not in SCHEDULE_NAMES:
            raise ValueError(
                f"schedule.name must be one of {', '.join(SCHEDULE_NAMES)}, got {self.name!r}"
            )
        if self.name is not None and not any(_is_ref(v) for v in self.params.values()):
            # a fully fixed schedule is checked now, not when the first trial reports
            declared_schedule({"name": self.name, "params": dict(self.params)}, {}, 3,
                              where="schedule.params")
        return self

    def resolve(self, trial_config: dict[str, Any], max_epochs: int) -> Schedule:
        """The schedule of one trial (:func:`search.schedules.declared_schedule`).

        Args:
            trial_config: the trial's hyperparameters.
            max_epochs: the sweep's horizon (used for the MLP's horizon-relative defaults).

        Raises:
            ValueError: naming the field, for a missing name or referenced key, or a bad value.
        """
        return declared_schedule(self.model_dump(), trial_config, max_epochs)


def _is_ref(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("$")
