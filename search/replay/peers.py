"""Replay the *real* peer schedulers: Ray Tune's and Optuna's own objects, not re-implementations.

* Ray: any ``ray.tune.schedulers.TrialScheduler`` (FIFO, ``AsyncHyperBandScheduler``,
  ``MedianStoppingRule``, ``HyperBandScheduler``, and our ``CurveScheduler``) is driven through
  its hooks with a minimal stand-in for Tune's controller (``get_trials``, ``get_live_trials``,
  ``stop_trial``) and stand-in trials (``trial_id``, ``status``, ``is_saving``). PAUSE decisions
  and ``choose_trial_to_run`` are honoured, so the synchronous HyperBand runs as in Tune.
* Optuna: a pruner is driven through a real in-memory study: ``study.ask()`` when a trial
  starts, ``trial.report(value, epoch)`` + ``trial.should_prune()`` per result,
  ``study.tell(...)`` when it completes or is pruned.

Ray and Optuna are imported inside the functions that need them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from search.replay.sim import (
    COMPLETED,
    CONTINUE,
    PAUSE,
    PAUSED,
    PENDING,
    RUNNING,
    STOP,
    STOPPED,
    ReplayScheduler,
    Simulation,
)

TIME_ATTR = "epoch"
METRIC = "metric"

_RAY_STATUS = {PENDING: "PENDING", RUNNING: "RUNNING", PAUSED: "PAUSED",
               STOPPED: "TERMINATED", COMPLETED: "TERMINATED"}


class _FakeTrial:
    """The parts of ``ray.tune.experiment.Trial`` that schedulers read."""

    __slots__ = ("_i", "_sim", "config", "is_saving", "last_result", "trial_id")

    def __init__(self, trial_id: str, sim: Simulation, i: int):
        self.trial_id, self._sim, self._i = trial_id, sim, i
        self.is_saving = False
        self.config: dict = {}
        self.last_result: dict = {}

    @property
    def status(self) -> str:
        return _RAY_STATUS[self._sim.status[self._i]]

    @property
    def checkpoint(self) -> object | None:
        """A replayed trial resumes where it paused: it has a checkpoint once it has trained."""
        return True if self._sim.epoch[self._i] > 0 else None

    def __repr__(self) -> str:
        return f"Trial({self.trial_id})"


class _FakeController:
    """The parts of Tune's ``TuneController`` that schedulers call."""

    def __init__(self, owner: RayReplay):
        self.owner = owner

    def get_trials(self):
        return self.owner.trials

    def get_live_trials(self):
        return [t for t in self.owner.trials if t.status != "TERMINATED"]

    def stop_trial(self, trial) -> None:
        if trial.status in ("PENDING", "PAUSED"):
            self.owner.sched.on_trial_remove(self, trial)
            self.owner.sim.stop_paused(trial.trial_id)


class RayReplay(ReplayScheduler):
    """Drive a Ray Tune ``TrialScheduler`` built by ``factory(horizon, mode)``.

    The factory must return a scheduler configured with ``metric="metric"``,
    ``time_attr="epoch"`` and the given mode (see :func:`ray_peer`).
    """

    def __init__(self, name: str, factory: Callable[[int, str], object]):
        self.name, self.factory = name, factory

    def bind(self, sim: Simulation) -> None:
        super().bind(sim)
        np.random.seed(0)  # Ray's ASHA draws brackets from the global generator
        self.sched = self.factory(sim.task.horizon, sim.task.mode)
        self.ctl = _FakeController(self)
        self.trials = [_FakeTrial(t, sim, i) for i, t in enumerate(sim.ids)]
        self.by_id = {t.trial_id: t for t in self.trials}

    def add(self, tid):
        self.sched.on_trial_add(self.ctl, self.by_id[tid])

    def choose(self):
        t = self.sched.choose_trial_to_run(self.ctl)
        return None if t is None else t.trial_id

    def result(self, tid, epoch, value):
        tr = self.by_id[tid]
        res = {TIME_ATTR: epoch, METRIC: value, "training_iteration": epoch, "done": False,
               "trial_id": tid}
        d = self.sched.on_trial_result(self.ctl, tr, res)
        tr.last_result = res
        if d == "STOP":
            if epoch < self.sim.task.horizon:
                # Tune calls on_trial_complete for a running trial it stops
                self.sched.on_trial_complete(self.ctl, tr, res)
            return STOP
        return {"CONTINUE": CONTINUE, "PAUSE": PAUSE}.get(d, CONTINUE)

    def complete(self, tid, epoch, value):
        tr = self.by_id[tid]
        res = dict(tr.last_result, done=True)
        self.sched.on_trial_complete(self.ctl, tr, res)


def ray_peer(name: str, horizon: int, mode: str):
    """Build one of Ray's schedulers with the settings the benchmark uses.

    ``asha``: ``AsyncHyperBandScheduler`` defaults (grace 1, reduction 4, 1 bracket),
    ``max_t`` = horizon. ``median``: ``MedianStoppingRule(grace_period=1)``, other defaults.
    ``hyperband``: ``HyperBandScheduler(max_t=horizon, stop_last_trials=False)``.
    ``fifo``: ``FIFOScheduler``.
    """
    from ray.tune.schedulers import (
        AsyncHyperBandScheduler,
        FIFOScheduler,
        HyperBandScheduler,
        MedianStoppingRule,
    )

    kw = {"metric": METRIC, "mode": mode, "time_attr": TIME_ATTR}
    if name == "asha":
        return AsyncHyperBandScheduler(max_t=horizon, **kw)
    if name == "median":
        return MedianStoppingRule(grace_period=1, **kw)
    if name == "hyperband":
        return HyperBandScheduler(max_t=horizon, stop_last_trials=False, **kw)
    if name == "fifo":
        return FIFOScheduler()
    raise ValueError(f"unknown Ray peer {name!r}; known: asha, median, hyperband, fifo")


class OptunaReplay(ReplayScheduler):
    """Drive an Optuna pruner through a real in-memory study.

    Args:
        name: label.
        factory: ``factory(horizon) -> optuna.pruners.BasePruner``.
    """

    def __init__(self, name: str, factory: Callable[[int], object]):
        self.name, self.factory = name, factory

    def bind(self, sim: Simulation) -> None:
        import optuna

        super().bind(sim)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(
            study_name=f"replay-{self.name}",
            direction="maximize" if sim.task.mode == "max" else "minimize",
            pruner=self.factory(sim.task.horizon),
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        self.trials: dict[str, object] = {}

    def choose(self):
        tid = self.sim.next_pending()
        if tid is not None:
            self.trials[tid] = self.study.ask()
        return tid

    def result(self, tid, epoch, value):
        tr = self.trials[tid]
        tr.report(value, epoch)
        if epoch < self.sim.task.horizon and tr.should_prune():
            self.study.tell(tr, state=self._optuna.trial.TrialState.PRUNED)
            return STOP
        return CONTINUE

    def complete(self, tid, epoch, value):
        tr = self.trials[tid]
        if math.isfinite(value):
            self.study.tell(tr, value)
        else:
            self.study.tell(tr, state=self._optuna.trial.TrialState.FAIL)


def optuna_peer(name: str, horizon: int):
    """``optuna-median``: ``MedianPruner()``; ``optuna-sh``: ``SuccessiveHalvingPruner()``;
    ``optuna-hyperband``: ``HyperbandPruner(min_resource=1, max_resource=horizon)``."""
    import optuna

    if name == "optuna-median":
        return optuna.pruners.MedianPruner()
    if name == "optuna-sh":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "optuna-hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=horizon)
    raise ValueError(f"unknown Optuna peer {name!r}")


PEERS = ("asha", "median", "hyperband", "fifo", "optuna-median", "optuna-sh", "optuna-hyperband")


def peer_scheduler(name: str) -> ReplayScheduler:
    """A :class:`ReplayScheduler` for one of :data:`PEERS`."""
    if name in ("asha", "median", "hyperband", "fifo"):
        return RayReplay(name, lambda h, m: ray_peer(name, h, m))
    if name.startswith("optuna-"):
        optuna_peer(name, 10)  # validate the name now
        return OptunaReplay(name, lambda h: optuna_peer(name, h))
    raise ValueError(f"unknown scheduler {name!r}; known peers: {', '.join(PEERS)}")
