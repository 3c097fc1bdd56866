"""Plain data describing a sweep after (or while) it ran: what plots, reports and progress read.

Framework-free (no matplotlib, mlflow, ray): built by ``orchestrator.tracking.reader`` from
MLflow, by the progress callback from Tune results, or by hand in tests.

Conventions:
    * ``steps`` are the trial's epochs as reported (the tracker's metric ``step``), ``values``
      the sweep metric at those epochs in the user's units; non-finite values are allowed
      (a diverged trial) and are drawn as gaps.
    * ``status`` is one of :data:`STATUSES`, the words of the tracker's ``sweepcast.status``
      tag: ``running``, ``completed`` (ran to its end), ``pruned`` (stopped by the scheduler),
      ``failed``. (``search.scoring`` says ``finished`` for ``completed``.)
    * ``mode`` is the user's direction (``min``/``max``); "best" below follows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STATUSES: tuple[str, ...] = ("running", "completed", "pruned", "failed")
MODES: tuple[str, ...] = ("min", "max")


@dataclass(frozen=True)
class Decision:
    """One scheduler decision on a trial (a verdict of the curve scheduler, issue 4).

    Attributes:
        step: the epoch at which the decision was taken.
        action: ``continue`` or ``stop``.
        reason: the stable reason code (``grace``, ``p_beat_low``, ``diverged``, ...).
        p_beat: P(final value beats the incumbent), or None when not computed.
        q05, q50, q95: forecast quantiles of the final value (at the horizon) in the user's
            units, or None when the decision had no forecast (grace period, ...).
    """

    step: int
    action: str = "continue"
    reason: str = ""
    p_beat: float | None = None
    q05: float | None = None
    q50: float | None = None
    q95: float | None = None

    @property
    def has_band(self) -> bool:
        """True when the 5-95% forecast band is known and finite."""
        return all(v is not None and math.isfinite(v) for v in (self.q05, self.q95))


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its curve, status, stop reason and decisions.

    Raises:
        ValueError: ``steps`` and ``values`` differ in length, or ``status`` is unknown.
    """

    trial_id: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    status: str = "completed"
    stop_reason: str | None = None
    decisions: tuple[Decision, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        object.__setattr__(self, "decisions", tuple(self.decisions))
        if len(self.steps) != len(self.values):
            raise ValueError(
                f"trial {self.trial_id!r}: steps and values differ in length "
                f"({len(self.steps)} != {len(self.values)})"
            )
        if self.status not in STATUSES:
            raise ValueError(
                f"trial {self.trial_id!r}: status must be one of {STATUSES}, got {self.status!r}"
            )

    @property
    def epochs(self) -> int:
        """Epochs this trial trained: the number of reported points."""
        return len(self.steps)

    @property
    def last_value(self) -> float | None:
        """The last reported value (may be non-finite), or None with no points."""
        return self.values[-1] if self.values else None

    @property
    def stop_decision(self) -> Decision | None:
        """The last ``stop`` decision, if any."""
        for d in reversed(self.decisions):
            if d.action == "stop":
                return d
        return None

    @property
    def reason(self) -> str | None:
        """Why the trial ended early: the ``stop_reason`` or the stop decision's reason."""
        if self.stop_reason:
            return self.stop_reason
        d = self.stop_decision
        return d.reason if d is not None and d.reason else None


def better(a: float, b: float, mode: str) -> bool:
    """True when ``a`` is strictly better than ``b`` in ``mode``; non-finite never is."""
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if mode == "max" else a < b


def check_mode(mode: str) -> str:
    """Return ``mode`` or raise naming the bad value."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def incumbent(trials: Sequence[TrialRecord], mode: str) -> TrialRecord | None:
    """The completed trial with the best last value (None if no completed trial has a finite one).

    Ties go to the earlier trial in ``trials``.
    """
    check_mode(mode)
    best: TrialRecord | None = None
    for t in trials:
        v = t.last_value
        if t.status != "completed" or v is None or not math.isfinite(v):
            continue
        if best is None or better(v, best.last_value, mode):  # type: ignore[arg-type]
            best = t
    return best


@dataclass(frozen=True)
class ComputeUsage:
    """Epochs the sweep used against what FIFO (every trial to ``max_epochs``) would have used.

    Attributes:
        epochs_by_status: epochs trained, summed per trial status.
        fifo_epochs: ``n_trials * max_epochs``.
        n_trials: trials counted.
        max_epochs: the sweep's horizon.
    """

    epochs_by_status: Mapping[str, int]
    fifo_epochs: int
    n_trials: int
    max_epochs: int

    @property
    def used(self) -> int:
        """Epochs actually trained."""
        return int(sum(self.epochs_by_status.values()))

    @property
    def saved(self) -> int:
        """Epochs FIFO would have used on top (>= 0)."""
        return max(0, self.fifo_epochs - self.used)

    @property
    def saved_fraction(self) -> float:
        """``saved / fifo_epochs`` in [0, 1] (0 for an empty sweep)."""
        return self.saved / self.fifo_epochs if self.fifo_epochs else 0.0

    @property
    def speedup(self) -> float:
        """``fifo_epochs / used`` (``inf`` when nothing was trained, 1.0 for an empty sweep)."""
        if not self.fifo_epochs:
            return 1.0
        return self.fifo_epochs / self.used if self.used else math.inf


def compute_usage(trials: Sequence[TrialRecord], max_epochs: int) -> ComputeUsage:
    """Sum the epochs of ``trials`` per status and compare with FIFO.

    Raises:
        ValueError: ``max_epochs`` is not a positive integer.
    """
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")
    by: dict[str, int] = {s: 0 for s in STATUSES}
    for t in trials:
        by[t.status] += t.epochs
    return ComputeUsage(by, len(trials) * max_epochs, len(trials), max_epochs)


@dataclass(frozen=True)
class SweepRecord:
    """A sweep as recorded: its settings, trials and (optional) ranking table.

    Attributes:
        name: the sweep's name (the parent run's name).
        metric, mode: the sweep metric and its direction.
        max_epochs: horizon of every trial.
        trials: the trials, in start order.
        scheduler: the pruning scheduler's name (``curve``, ``asha``, ...), if known.
        parent_run_id, experiment_id, experiment_name, tracking_uri: where it lives in MLflow.
        status: the parent run's status (``FINISHED``, ``RUNNING``, ...), if known.
        ranking_markdown: the scoring ranking table as Markdown, when scores were logged.
        summary: the parent run's summary metrics.
    """

    name: str
    metric: str
    mode: str
    max_epochs: int
    trials: tuple[TrialRecord, ...]
    scheduler: str | None = None
    parent_run_id: str | None = None
    experiment_id: str | None = None
    experiment_name: str | None = None
    tracking_uri: str | None = None
    status: str | None = None
    ranking_markdown: str | None = None
    summary: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_mode(self.mode)
        object.__setattr__(self, "trials", tuple(self.trials))

    def incumbent(self) -> TrialRecord | None:
        """The best completed trial (see :func:`incumbent`)."""
        return incumbent(self.trials, self.mode)

    def compute(self) -> ComputeUsage:
        """Epochs used against FIFO (see :func:`compute_usage`)."""
        return compute_usage(self.trials, self.max_epochs)

    def counts(self) -> dict[str, int]:
        """Trials per status, every status present (0 when none)."""
        out = {s: 0 for s in STATUSES}
        for t in self.trials:
            out[t.status] += 1
        return out
