"""A discrete-event simulator of an asynchronous sweep over recorded learning curves.

``W`` workers; trials start in a seeded random order of the recorded configs; a trial takes one
time unit per epoch (or the recorded per-epoch seconds); every result is delivered to the
scheduler under test in time order (ties: the epoch that
started first reports first); a stop frees the worker for the next
trial the scheduler chooses. Pure: numpy only. The scheduler is anything implementing
:class:`ReplayScheduler` (``search.replay.peers`` wraps the real Ray and Optuna objects,
:class:`CurveReplayScheduler` wraps our :class:`~search.stopper.CurveStopper`).

Accounting (the JSON fields of ``sweepcast replay``):

* ``epochs``: epochs the sweep trained in total; ``fifo_epochs``: every config to the end;
  ``speedup = fifo_epochs / epochs``.
* a trial *completed* if it trained its last epoch (a stop at the last epoch still completes).
* ``regret``: best final value of all replayed configs minus the best final value of the
  completed trials, in the metric's direction (>= 0). Diverged (NaN) finals count as the worst.
  If no trial completed, the sweep found nothing: regret is the gap to the worst finite final.
* ``regret_rel``: regret / (best final - median final over configs with a finite final).
* ``best_killed``: the config with the best final value was started and did not complete.
* ``decision_us_p50/p99``: the scheduler's wall time per result (the harness measures it with
  an injected clock; decisions do not depend on it).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Mode = Literal["min", "max"]
CONTINUE, STOP, PAUSE = "continue", "stop", "pause"
PENDING, RUNNING, PAUSED, STOPPED, COMPLETED = "PENDING", "RUNNING", "PAUSED", "STOPPED", "COMPLETED"


@dataclass(frozen=True)
class Task:
    """One task's recorded curves.

    Attributes:
        benchmark, task: names.
        metric: the metric's name; mode: its direction.
        config_ids: n config ids.
        values: shape (n, E), the metric after epochs 1..E (user units; NaN = diverged/missing).
        durations: shape (n, E) seconds per epoch, or None (one time unit each).
    """

    benchmark: str
    task: str
    metric: str
    mode: Mode
    config_ids: tuple[str, ...]
    values: np.ndarray
    durations: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"task {self.task!r}: mode must be 'min' or 'max', got {self.mode!r}")
        if self.values.ndim != 2 or self.values.shape[0] != len(self.config_ids):
            raise ValueError(
                f"task {self.task!r}: values must have shape (n_configs, epochs), got "
                f"{self.values.shape} for {len(self.config_ids)} configs"
            )
        if self.durations is not None and self.durations.shape != self.values.shape:
            raise ValueError(f"task {self.task!r}: durations shape {self.durations.shape} "
                             f"differs from values shape {self.values.shape}")

    @property
    def horizon(self) -> int:
        return int(self.values.shape[1])

    def subset(self, idx: np.ndarray) -> Task:
        return Task(self.benchmark, self.task, self.metric, self.mode,
                    tuple(self.config_ids[i] for i in idx), self.values[idx],
                    None if self.durations is None else self.durations[idx])


class ReplayScheduler:
    """What the simulator drives. Trial ids are strings; values are in user units.

    Call order: :meth:`bind` once, :meth:`add` for every trial (in start order), then, as time
    runs, :meth:`choose` whenever a worker is free, :meth:`result` for each result (returns
    ``"continue"``, ``"stop"`` or ``"pause"``), :meth:`complete` when a trial ran its last
    epoch. The default :meth:`choose` runs pending trials in order and never resumes paused
    ones.
    """

    name = "scheduler"

    def bind(self, sim: Simulation) -> None:
        self.sim = sim

    def add(self, tid: str) -> None:
        pass

    def choose(self) -> str | None:
        return self.sim.next_pending()

    def result(self, tid: str, epoch: int, value: float) -> str:
        raise NotImplementedError

    def complete(self, tid: str, epoch: int, value: float) -> None:
        pass


class FifoReplay(ReplayScheduler):
    """Never stops anything (the reference)."""

    name = "fifo"

    def result(self, tid, epoch, value):
        return CONTINUE


class StopAtReplay(ReplayScheduler):
    """Stops every trial at a fixed epoch (a test double with hand-computable accounting)."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch
        self.name = f"stop-at-{epoch}"

    def result(self, tid, epoch, value):
        return STOP if epoch >= self.epoch else CONTINUE


@dataclass
class RunResult:
    """Outcome of one replayed sweep (see the module docstring for each field)."""

    benchmark: str
    task: str
    scheduler: str
    seed: int
    epochs: int
    fifo_epochs: int
    speedup: float
    regret: float
    regret_rel: float
    best_killed: bool
    decision_us_p50: float
    decision_us_p99: float
    n_configs: int
    n_completed: int
    makespan: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "benchmark", "task", "scheduler", "seed", "epochs", "fifo_epochs", "speedup",
            "regret", "regret_rel", "best_killed", "decision_us_p50", "decision_us_p99",
            "n_configs", "n_completed", "makespan")}
        d.update(self.extra)
        return d


class Simulation:
    """One replayed sweep. Create, then :meth:`run`.

    Args:
        task: the curves (its config order is the start order: shuffle before, see :func:`replay`).
        scheduler: the scheduler under test.
        workers: number of parallel workers (>= 1).
        clock: nanosecond clock used only to time decisions.
    """

    def __init__(self, task: Task, scheduler: ReplayScheduler, workers: int,
                 clock: Callable[[], int] = time.perf_counter_ns):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.task, self.sched, self.workers, self.clock = task, scheduler, workers, clock
        n = len(task.config_ids)
        self.ids = [f"t{i:05d}" for i in range(n)]
        self.index = {t: i for i, t in enumerate(self.ids)}
        self.status = [PENDING] * n
        self.epoch = np.zeros(n, dtype=np.int64)  # epochs trained so far
        self._next_pending = 0
        self._paused: list[int] = []  # heap of indices that were paused (stale ones skipped)
        self.decision_ns: list[int] = []

    # -- helpers schedulers may use ------------------------------------------------------------
    def next_pending(self) -> str | None:
        while self._next_pending < len(self.ids) and self.status[self._next_pending] != PENDING:
            self._next_pending += 1
        return self.ids[self._next_pending] if self._next_pending < len(self.ids) else None

    def next_paused(self) -> str | None:
        """The first paused trial in start order (None if none)."""
        h = self._paused
        while h and self.status[h[0]] != PAUSED:
            heapq.heappop(h)
        return self.ids[h[0]] if h else None

    def others_waiting(self, tid: str) -> bool:
        """Whether a trial other than ``tid`` is pending or paused (it could use a worker).
        Called for a running trial, so any paused trial is another one."""
        return self.next_pending() is not None or self.next_paused() is not None

    def stop_paused(self, tid: str) -> None:
        """A scheduler stops a trial that is not running (paused or pending)."""
        i = self.index[tid]
        if self.status[i] in (PAUSED, PENDING):
            self.status[i] = STOPPED

    # -- the event loop ------------------------------------------------------------------------
    def run(self) -> None:
        t = self.task
        E = t.horizon
        dur = t.durations
        heap: list[tuple[float, int, int]] = []  # (time, seq, trial index)
        seq = 0
        running = 0
        now = 0.0
        self.sched.bind(self)
        for tid in self.ids:
            self.sched.add(tid)

        def fill() -> None:
            nonlocal running, seq
            while running < self.workers:
                tid = self.sched.choose()
                if tid is None:
                    return
                i = self.index[tid]
                if self.status[i] not in (PENDING, PAUSED):
                    raise RuntimeError(f"scheduler chose {tid} in status {self.status[i]}")
                self.status[i] = RUNNING
                running += 1
                e = int(self.epoch[i])
                heapq.heappush(heap, (now + (1.0 if dur is None else float(dur[i, e])), seq, i))
                seq += 1

        fill()
        while heap:
            now, _, i = heapq.heappop(heap)
            e = int(self.epoch[i]) + 1
            self.epoch[i] = e
            tid = self.ids[i]
            value = float(t.values[i, e - 1])
            t0 = self.clock()
            decision = self.sched.result(tid, e, value)
            self.decision_ns.append(self.clock() - t0)
            if e >= E:
                self.status[i] = COMPLETED
                running -= 1
                self.sched.complete(tid, e, value)
            elif decision == STOP:
                self.status[i] = STOPPED
                running -= 1
            elif decision == PAUSE:
                self.status[i] = PAUSED
                heapq.heappush(self._paused, i)
                running -= 1
            elif decision == CONTINUE:
                heapq.heappush(heap, (now + (1.0 if dur is None else float(dur[i, e])), seq, i))
                seq += 1
            else:
                raise RuntimeError(f"{self.sched.name}: unknown decision {decision!r} for {tid}")
            fill()
        self.makespan = now

    # -- accounting ------------------------------------------------------------------------------
    def outcome(self, seed: int = 0) -> RunResult:
        t = self.task
        sign = 1.0 if t.mode == "max" else -1.0
        final = sign * t.values[:, -1]
        final = np.where(np.isfinite(final), final, -np.inf)
        best_all = float(final.max())
        fin = final[np.isfinite(final)]
        med = float(np.median(fin)) if fin.size else best_all
        worst = float(fin.min()) if fin.size else best_all
        done = np.array([s == COMPLETED for s in self.status])
        best_done = float(final[done].max()) if done.any() else worst
        if not np.isfinite(best_done):
            best_done = worst
        regret = max(0.0, best_all - best_done) if np.isfinite(best_all) else 0.0
        gap = best_all - med
        regret_rel = regret / gap if gap > 0 else 0.0
        ibest = int(np.argmax(final))
        best_killed = self.status[ibest] == STOPPED or (
            self.status[ibest] == PAUSED and self.epoch[ibest] > 0)
        ns = np.asarray(self.decision_ns, dtype=np.float64) / 1e3
        epochs = int(self.epoch.sum())
        fifo = int(t.values.shape[0] * t.horizon)
        return RunResult(
            t.benchmark, t.task, self.sched.name, seed, epochs, fifo,
            fifo / epochs if epochs else float("inf"), regret, regret_rel, bool(best_killed),
            float(np.percentile(ns, 50)) if ns.size else 0.0,
            float(np.percentile(ns, 99)) if ns.size else 0.0,
            len(self.ids), int(done.sum()), float(self.makespan),
        )


def shuffled(task: Task, seed: int, max_configs: int | None) -> Task:
    """The task's configs in a seeded random order, at most ``max_configs`` of them."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(task.config_ids))
    if max_configs is not None:
        idx = idx[:max_configs]
    return task.subset(idx)


def replay(task: Task, scheduler: ReplayScheduler, *, workers: int = 8, seed: int = 0,
           max_configs: int | None = None, clock: Callable[[], int] = time.perf_counter_ns,
           ) -> RunResult:
    """Replay ``task`` (shuffled with ``seed``) through ``scheduler`` and account for it."""
    sim = Simulation(shuffled(task, seed, max_configs), scheduler, workers, clock=clock)
    sim.run()
    return sim.outcome(seed)


class CurveReplayScheduler(ReplayScheduler):
    """Drives a :class:`~search.stopper.CurveStopper` directly (no Ray): the pure path.

    Args:
        make_stopper: called with (horizon, mode) at :meth:`bind` to build a fresh stopper.
        name: the label in results.
    """

    def __init__(self, make_stopper: Callable[[float, str], object], name: str = "curve"):
        self.make_stopper = make_stopper
        self.name = name

    def bind(self, sim: Simulation) -> None:
        super().bind(sim)
        self.stopper = self.make_stopper(float(sim.task.horizon), sim.task.mode)

    def add(self, tid):
        self.stopper.add_trial(tid)

    def choose(self):
        # Ray's FIFOScheduler order: pending trials first, then paused ones
        return self.sim.next_pending() or self.sim.next_paused()

    def result(self, tid, epoch, value):
        vd = self.stopper.observe(tid, epoch, value)
        if vd.stop:
            return STOP
        return PAUSE if vd.wait and self.sim.others_waiting(tid) else CONTINUE

    def complete(self, tid, epoch, value):
        self.stopper.complete_trial(tid)
