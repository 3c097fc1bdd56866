"""``CurveScheduler``: the curve-forecast stopping policy as a Ray Tune ``TrialScheduler``.

Plain Tune usage (see ``examples/plain_tune.py``)::

    from search.adapters.ray_tune import CurveScheduler
    sched = CurveScheduler(max_t=50, threshold=0.05, grace_epochs=3)   # time_attr="epoch"
    tuner = tune.Tuner(train_fn, param_space=space,
                       tune_config=tune.TuneConfig(metric="val_acc", mode="max",
                                                   scheduler=sched, num_samples=100))

The adapter only translates: a result's ``time_attr`` and ``metric`` go to
:class:`~search.stopper.CurveStopper`, whose :class:`~search.policy.Verdict` maps to
``CONTINUE``/``STOP`` (``PAUSE`` with ``pause_ahead`` for a trial ahead of its peers while other
trials wait to run). Each verdict goes to the optional ``on_verdict`` sink (for example a
tracker's ``log_verdict``) and is kept as :meth:`CurveScheduler.last_verdict`.

Contract with Tune (Ray 2.60):

* ``metric``/``mode`` from the constructor or ``TuneConfig`` (``set_search_properties``); the
  horizon from ``max_t`` or from a ``stop={time_attr: N}`` criterion. Results without the time
  attribute or the metric (such as the final ``done`` result) continue.
* ``on_trial_add`` is idempotent (Tune calls it again for a retried trial and for every trial
  of a restored experiment; a trial restarting from an earlier epoch has its later points
  dropped).
* State is data: the stopper's JSON state (curves, incumbent, last verdicts) is written to
  ``sweepcast_curve_scheduler.json`` in the experiment's driver staging folder, which Tune syncs
  to the experiment directory and downloads again on ``Tuner.restore``; the first hook after a
  restore loads it. Tune itself never checkpoints scheduler state (Ray issue #30838). The
  pickle Tune takes of this object holds only settings and the model's *name*.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.forecast.base import CurveModel
from search.policy import PolicyConfig, Verdict
from search.stopper import CurveStopper, resolve_model

log = logging.getLogger(__name__)
STATE_FILE = "sweepcast_curve_scheduler.json"


class CurveScheduler(FIFOScheduler):
    """Stops trials whose forecast final value is unlikely to beat the incumbent.

    Args:
        metric: the metric reported by trials (or from ``TuneConfig``).
        mode: ``"max"`` or ``"min"`` (or from ``TuneConfig``).
        time_attr: the result key counting epochs (default ``"epoch"``; avoid
            ``training_iteration``, which restarts at 1 after a restore).
        max_t: the horizon in ``time_attr`` units: the epoch every trial runs to.
        model: a ``CurveModel`` or a model name (``"pfn"``, ``"parametric"``, ``"last-value"``).
            A name keeps Tune's pickle of the scheduler free of model weights.
        schedule: tell the forecaster each trial's learning-rate schedule (issue 8; use with
            ``model="pfn-schedule"``): a ``schedule:`` declaration as a plain dict (see
            :func:`search.schedules.declared_schedule`), or True to read it from the trial's
            config by convention (TaskSet's decays, the built-in MLP's ``lr_schedule``). A trial
            whose schedule cannot be resolved is forecast without one (logged). None: no schedules.
        threshold, grace_epochs, decision_interval, compute_exponent, incumbent,
            before_completion, max_forecast_age, rank_gate, min_samples, batch_wait,
            veto_threshold, top_fraction, bar_confidence, pause_ahead: the policy's knobs (see
            :class:`~search.policy.PolicyConfig`); or pass ``config``.
        config: a ready ``PolicyConfig`` (then the knobs above must be left at their defaults).
        on_verdict: optional callable receiving every :class:`~search.policy.Verdict`.
        state_path: where to keep the JSON state; default: the experiment's folder.
        save_period_s: the state is written at most this often (and when no trial is live).
        clock: monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        metric: str | None = None,
        mode: str | None = None,
        time_attr: str = "epoch",
        max_t: float | None = None,
        *,
        model: str | CurveModel = "pfn",
        schedule: dict | bool | None = None,
        threshold: float = 0.05,
        grace_epochs: int = 3,
        decision_interval: int = 1,
        compute_exponent: float = 0.0,
        incumbent: str = "completed",
        before_completion: str = "same_step",
        max_forecast_age: int = 1,
        rank_gate: str = "none",
        min_samples: int = 3,
        veto_threshold: float = 0.5,
        top_fraction: float = 0.1,
        bar_confidence: float = 0.5,
        batch_wait: int = 0,
        pause_ahead: bool = False,
        config: PolicyConfig | None = None,
        on_verdict: Callable[[Verdict], None] | None = None,
        state_path: str | os.PathLike | None = None,
        save_period_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"time_attr must be a non-empty string, got {time_attr!r}")
        if max_t is not None and (isinstance(max_t, bool) or not isinstance(max_t, (int, float))
                                  or not math.isfinite(max_t) or max_t <= 0):
            raise ValueError(f"max_t must be a finite number > 0, got {max_t!r}")
        if not isinstance(model, (str, CurveModel)):
            raise ValueError(f"model must be a CurveModel or a model name, got {model!r}")  # noqa: TRY004 (a bad option value)
        if config is None:
            config = PolicyConfig(
                threshold=threshold, grace_epochs=grace_epochs,
                decision_interval=decision_interval, compute_exponent=compute_exponent,
                incumbent=incumbent, before_completion=before_completion,  # type: ignore[arg-type]
                max_forecast_age=max_forecast_age, rank_gate=rank_gate,  # type: ignore[arg-type]
                min_samples=min_samples, batch_wait=batch_wait,
                veto_threshold=veto_threshold, top_fraction=top_fraction,
                bar_confidence=bar_confidence, pause_ahead=pause_ahead,
            )
        elif not isinstance(config, PolicyConfig):
            raise ValueError(f"config must be a PolicyConfig, got {config!r}")
        if not isinstance(save_period_s, (int, float)) or save_period_s < 0:
            raise ValueError(f"save_period_s must be a number >= 0, got {save_period_s!r}")
        self._metric = metric
        self._mode = mode
        self._time_attr = time_attr
        self._max_t = None if max_t is None else float(max_t)
        self._model_spec = model
        self._schedule = schedule
        self._config = config
        self._on_verdict = on_verdict
        self._state_path = None if state_path is None else str(state_path)
        self._save_period_s = float(save_period_s)
        self._clock = clock
        self._supports_buffered_results = False  # decide on every result, do not run ahead
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._stopper: CurveStopper | None = None
        self._loaded = False
        self._last_save = -math.inf

    # Tune pickles the scheduler when the experiment starts and restores that pickle: keep
    # settings only, never the curves (they live in the JSON state) nor a model object
    # given by name.
    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_stopper"] = None
        d["_loaded"] = False
        d["_last_save"] = -math.inf
        return d

    def __setstate__(self, d: dict) -> None:
        self.__dict__.update(d)

    # -- properties ------------------------------------------------------------------------------
    def set_search_properties(self, metric, mode, **spec) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        if metric:
            self._metric = metric
        if mode:
            if mode not in ("min", "max"):
                raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
            self._mode = mode
        stop = spec.get("stop")
        if self._max_t is None and isinstance(stop, dict) and self._time_attr in stop:
            self._max_t = float(stop[self._time_attr])
        return True

    @property
    def stopper(self) -> CurveStopper:
        """The core stopper (built on first use, once metric, mode and horizon are known)."""
        if self._stopper is None:
            if not self._metric or self._mode not in ("min", "max"):
                raise ValueError(
                    f"CurveScheduler needs a metric and a mode (got metric={self._metric!r}, "
                    f"mode={self._mode!r}): pass them to CurveScheduler(...) or tune.TuneConfig()"
                )
            if self._max_t is None:
                raise ValueError(
                    "CurveScheduler needs the horizon: pass max_t (the final value of "
                    f"{self._time_attr!r}) or a stop={{{self._time_attr!r}: N}} criterion"
                )
            stopper_cls = CurveStopper
            if self._schedule is not None and self._schedule is not False:
                from search.schedule_stopper import ScheduleStopper

                stopper_cls = ScheduleStopper
            self._stopper = stopper_cls(
                resolve_model(self._model_spec), horizon=self._max_t,
                mode=self._mode,  # type: ignore[arg-type]
                config=self._config, on_verdict=self._on_verdict,
            )
        return self._stopper

    def last_verdict(self, trial_id: str) -> dict | None:
        """The last verdict on ``trial_id`` as a dict (see ``Verdict.to_dict``), or None."""
        return None if self._stopper is None else self._stopper.last_verdict_of(trial_id)

    # -- state -----------------------------------------------------------------------------------
    def _bind_state(self, trial: Trial) -> None:
        """On the first hook: find the state file and load it if a previous run left one."""
        if self._loaded:
            return
        self._loaded = True
        if self._state_path is None:
            storage = getattr(trial, "storage", None)
            staging = getattr(storage, "experiment_driver_staging_path", None)
            if staging:
                self._state_path = str(Path(staging) / STATE_FILE)
        if self._state_path and os.path.exists(self._state_path):
            self.restore(self._state_path)
            log.info("CurveScheduler resumed from %s", self._state_path)

    def _maybe_save(self, force: bool = False) -> None:
        if self._state_path is None or self._stopper is None:
            return
        now = self._clock()
        if force or now - self._last_save >= self._save_period_s:
            self.save(self._state_path)
            self._last_save = now

    def save(self, checkpoint_path: str) -> None:
        """Write the stopper's state as JSON to ``checkpoint_path`` (atomically)."""
        data = {"metric": self._metric, "time_attr": self._time_attr,
                "stopper": self.stopper.to_dict()}
        path = Path(checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def restore(self, checkpoint_path: str) -> None:
        """Load state written by :meth:`save` (curves, incumbent, verdicts)."""
        with open(checkpoint_path) as f:
            data = json.load(f)
        self.stopper.load_dict(data["stopper"])

    # -- hooks -----------------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._bind_state(trial)
        finished = trial.status in (Trial.TERMINATED, Trial.ERROR)
        self.stopper.add_trial(trial.trial_id, alive=not finished)
        if self._schedule is not None and self._schedule is not False:
            self._declare_schedule(trial)

    def _declare_schedule(self, trial: Trial) -> None:
        """Resolve the trial's schedule from its config and hand it to the stopper (issue 8)."""
        from search.schedules import declared_schedule, schedule_for_config

        h = math.ceil(self.stopper.horizon)
        try:
            if self._schedule is True:
                sched = schedule_for_config(trial.config or {}, horizon=h)
            else:
                sched = declared_schedule(self._schedule, trial.config or {}, h)
            lr = None if sched is None else sched.lr(h)
        except ValueError as e:
            log.warning("trial %s: no learning-rate schedule for the forecaster (%s)",
                        trial.trial_id, e)
            lr = None
        self.stopper.set_schedule(trial.trial_id, lr)  # type: ignore[attr-defined]

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        self._bind_state(trial)
        if self._metric not in result:
            if not result.get("done"):
                self.stopper.observe(trial.trial_id, result[self._time_attr], None)
            return TrialScheduler.CONTINUE
        v = self.stopper.observe(trial.trial_id, result[self._time_attr], result[self._metric])
        self._maybe_save(force=v.stop)
        if v.stop:
            return TrialScheduler.STOP
        if v.wait and getattr(trial, "checkpoint", None) is not None and any(
                t is not trial and t.status in (Trial.PENDING, Trial.PAUSED)
                for t in tune_controller.get_live_trials()):
            # ahead of its peers while others wait to run: pause it; it resumes from its last
            # checkpoint once no trial is pending (FIFOScheduler.choose_trial_to_run's order).
            # A trial without a checkpoint is never paused: it would restart from scratch.
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._bind_state(trial)
        self.stopper.complete_trial(trial.trial_id)
        self._maybe_save(force=True)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._bind_state(trial)
        self.stopper.remove_trial(trial.trial_id)
        self._maybe_save(force=True)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._bind_state(trial)
        self.stopper.remove_trial(trial.trial_id)
        self._maybe_save()

    def debug_string(self) -> str:
        if self._stopper is None:
            return "Using CurveScheduler (no trials yet)."
        inc = self._stopper.incumbent
        stopped = sum(1 for v in self._stopper.last_verdict.values() if v.get("stop"))
        return (f"Using CurveScheduler: threshold={self._config.threshold}, "
                f"incumbent={inc}, stopped={stopped}")
