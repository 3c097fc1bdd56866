"""Plain-data inputs and outputs of the scoring core (see ``design/SCORING.md``).

Everything here is a frozen dataclass of numbers, strings and numpy arrays, so the core stays
free of Ray / MLflow / pydantic: the orchestrator builds these from Tune results and the sweep
config (``orchestrator/config_scoring.py`` converts the ``scoring:`` block into
:class:`ScoringParams`), and the tracker logs :meth:`TrialScore.to_metrics`.

Units: "hours" are device-hours: GPU-hours when a trial requests a GPU, CPU-hours otherwise
(``Resources.unit``). Money-like quantities (value ``V``, rewards, tolerance, ``L``) are in
cost units, ``cost_per_hour * hours`` (GPU-hours at the default ``cost_per_hour = 1``).
Metric values are in the user's units and direction; ``mode`` says which way is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

Mode = Literal["min", "max"]
Status = Literal["running", "finished", "pruned", "failed"]
STATUSES: tuple[str, ...] = ("running", "finished", "pruned", "failed")
ENDED: frozenset[str] = frozenset({"finished", "pruned", "failed"})


def _check_number(name: str, v: Any, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v!r}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v!r}")


@dataclass(frozen=True)
class ScoringParams:
    """Every constant of SCORING.md; the defaults are SCORING.md's.

    Attributes:
        mode: direction of the sweep's metric.
        target: metric value that counts as success; None: the incumbent (best final value of
            the trials that finished so far).
        value: ``V``, the worth of reaching the target, in cost units; None: the cost of one
            full trial times the number of trials in the sweep.
        cost_per_hour: ``c``, price of one device-hour.
        penalty_weight: ``L``, cost units per unit of penalty; None: the cost of one full trial.
            (SCORING.md gives no default for ``L``; one full trial's cost keeps it on the scale
            of the sweep, a fully penalised trial loses what one more trial would cost.)
        tolerance: two-stage ranking tolerance as a fraction of ``V`` (``delta = tolerance*V``).
        prior_failures / prior_hours: ``a0`` failures per ``b0`` device-hours, the prior of
            P_survive.
        structure_share: share of the penalty given to cohesion+coupling when a pipeline is
            declared (0.5); the rest goes to observability+hygiene. Without a pipeline all of it
            goes to observability+hygiene.
        w_cohesion, w_coupling: weights inside the structural group (sum 1).
        w_observability, w_hygiene: weights inside the run-time group (sum 1).
        hygiene_non_finite, hygiene_unlogged, hygiene_mismatch: weights of the three hygiene
            parts (0.4, 0.4, 0.2; sum 1); ``hygiene_non_finite_scale`` (10) multiplies the
            non-finite share before it is clipped to 1.
        staleness_grace, staleness_span: staleness part is
            ``clip((since_last / interval - grace) / span, 0, 1)`` (1 and 2).
        report_every: steps between the reports a trial promises.
    """

    mode: Mode = "max"
    target: float | None = None
    value: float | None = None
    cost_per_hour: float = 1.0
    penalty_weight: float | None = None
    tolerance: float = 0.02
    prior_failures: float = 1.0
    prior_hours: float = 100.0
    structure_share: float = 0.5
    w_cohesion: float = 0.5
    w_coupling: float = 0.5
    w_observability: float = 0.5
    w_hygiene: float = 0.5
    hygiene_non_finite: float = 0.4
    hygiene_non_finite_scale: float = 10.0
    hygiene_unlogged: float = 0.4
    hygiene_mismatch: float = 0.2
    staleness_grace: float = 1.0
    staleness_span: float = 2.0
    report_every: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        _check_number("target", self.target, allow_none=True)
        _check_number("value", self.value, low=0, allow_none=True)
        _check_number("cost_per_hour", self.cost_per_hour, low=0)
        _check_number("penalty_weight", self.penalty_weight, low=0, allow_none=True)
        _check_number("tolerance", self.tolerance, low=0, high=1)
        _check_number("prior_failures", self.prior_failures, low=0, low_open=True)
        _check_number("prior_hours", self.prior_hours, low=0, low_open=True)
        _check_number("hygiene_non_finite_scale", self.hygiene_non_finite_scale, low=0)
        _check_number("staleness_span", self.staleness_span, low=0, low_open=True)
        _check_number("staleness_grace", self.staleness_grace, low=0)
        _check_number("report_every", self.report_every, low=0, low_open=True)
        for name in ("structure_share", "w_cohesion", "w_coupling", "w_observability",
                     "w_hygiene", "hygiene_non_finite", "hygiene_unlogged", "hygiene_mismatch"):
            _check_number(name, getattr(self, name), low=0, high=1)
        for names in (("w_cohesion", "w_coupling"), ("w_observability", "w_hygiene"),
                      ("hygiene_non_finite", "hygiene_unlogged", "hygiene_mismatch")):
            total = sum(getattr(self, n) for n in names)
            if abs(total - 1.0) > 1e-9:
                got = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
                raise ValueError(f"{' + '.join(names)} must sum to 1, got {got}")

    @property
    def sign(self) -> float:
        """+1 for ``max``, -1 for ``min``: multiply a metric by it to make higher better."""
        return 1.0 if self.mode == "max" else -1.0


@dataclass(frozen=True)
class Resources:
    """What one trial requests. ``gpu > 0`` prices it in GPU-hours, else in CPU-hours."""

    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self) -> None:
        _check_number("resources.cpu", self.cpu, low=0)
        _check_number("resources.gpu", self.gpu, low=0)

    @property
    def unit(self) -> str:
        """``"gpu"`` or ``"cpu"``: the device the trial's hours are counted in."""
        return "gpu" if self.gpu > 0 else "cpu"

    @property
    def units(self) -> float:
        """Devices held: GPUs if any are requested, else CPUs."""
        return float(self.gpu) if self.gpu > 0 else float(self.cpu)


@dataclass(frozen=True)
class FailureHistory:
    """The sweep's own failure history: ``failures`` (k) seen over ``hours`` (T) device-hours."""

    failures: int = 0
    hours: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.failures, bool) or not isinstance(self.failures, int) or self.failures < 0:
            raise ValueError(f"failures must be an int >= 0, got {self.failures!r}")
        _check_number("hours", self.hours, low=0)


@dataclass(frozen=True)
class ParamSpec:
    """One search-space dimension, for the hygiene check of logged params.

    Attributes:
        name: the param's key in the trial config.
        kind: ``float`` (uniform/loguniform), ``int`` (randint; both ends inclusive) or
            ``categorical`` (choice/grid).
        low, high: inclusive bounds for ``float``/``int``.
        choices: allowed values for ``categorical``.
    """

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "categorical"):
            raise ValueError(f"space[{self.name!r}].kind must be float, int or categorical, "
                             f"got {self.kind!r}")
        if self.kind == "categorical" and not self.choices:
            raise ValueError(f"space[{self.name!r}].choices must be non-empty")


@dataclass(frozen=True)
class PipelineStep:
    """A declared pipeline step: its distinct responsibilities and the inputs it declares."""

    name: str
    responsibilities: tuple[str, ...]
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.responsibilities:
            raise ValueError(f"pipeline step {self.name!r}: responsibilities must be non-empty")


@dataclass(frozen=True)
class Pipeline:
    """A sweep's declared pipeline (cohesion and coupling are n/a without one)."""

    steps: tuple[PipelineStep, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("pipeline.steps must be non-empty")


@dataclass(frozen=True)
class TrialRecord:
    """What the scoring core knows of one trial at a decision point or at its end.

    Attributes:
        trial_id: stable id (ties in the ranking are broken by it).
        status: ``running``, ``finished`` (ran to its end), ``pruned`` (stopped by the
            scheduler) or ``failed`` (crashed for good).
        steps, values: the sweep metric's curve (steps > 0 increasing; values may be NaN/inf).
        max_step: the trial's last epoch (forecast horizon and cost horizon).
        wall_time_s: seconds the trial has run (so far, or in total once ended).
        since_last_report_s: seconds between the last report and now (or the trial's end);
            None: measured from the start (no report yet) or unknown when there are reports.
        resources: devices it holds.
        failures: failures this trial has had (retried ones included); feeds the history.
        max_failures: retries allowed per trial (Ray's ``max_failures``; -1: unlimited).
        params: the trial's config as the trial received it (nested dicts allowed).
        logged_keys: the (flattened, dotted) config keys the tracker logged as params; None:
            unknown, the "not logged" part is then 0.
        declared_metrics: metric names the trial is expected to report; empty: just the
            sweep metric.
        reported_metrics: metric names it reported at least once; None: the sweep metric if
            the curve is non-empty.
        metric_values, non_finite_values: counts over every reported metric value; None: count
            the curve.
        observed_reads: step -> inputs it was seen reading at run time (coupling).
    """

    trial_id: str
    status: Status
    steps: np.ndarray
    values: np.ndarray
    max_step: float
    wall_time_s: float
    since_last_report_s: float | None = None
    resources: Resources = field(default_factory=Resources)
    failures: int = 0
    max_failures: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    logged_keys: frozenset[str] | None = None
    declared_metrics: tuple[str, ...] = ()
    reported_metrics: frozenset[str] | None = None
    metric_values: int | None = None
    non_finite_values: int | None = None
    observed_reads: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"trial {self.trial_id!r}"
        if self.status not in STATUSES:
            raise ValueError(f"{where}: status must be one of {STATUSES}, got {self.status!r}")
        steps = np.asarray(self.steps, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if steps.shape != values.shape:
            raise ValueError(f"{where}: steps and values differ in length "
                             f"({steps.size} vs {values.size})")
        if steps.size and (not np.all(np.isfinite(steps)) or steps[0] <= 0
                           or np.any(np.diff(steps) <= 0)):
            raise ValueError(f"{where}: steps must be finite, > 0 and strictly increasing, "
                             f"got {steps.tolist()!r}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "values", values)
        _check_number(f"{where}: max_step", self.max_step, low=0, low_open=True)
        if steps.size and steps[-1] > self.max_step:
            raise ValueError(f"{where}: last step {steps[-1]!r} is beyond max_step "
                             f"{self.max_step!r}")
        _check_number(f"{where}: wall_time_s", self.wall_time_s, low=0)
        _check_number(f"{where}: since_last_report_s", self.since_last_report_s, low=0,
                      allow_none=True)
        if isinstance(self.failures, bool) or not isinstance(self.failures, int) or self.failures < 0:
            raise ValueError(f"{where}: failures must be an int >= 0, got {self.failures!r}")
        if (isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int)
                or self.max_failures < -1):
            raise ValueError(f"{where}: max_failures must be an int >= -1, "
                             f"got {self.max_failures!r}")
        for name in ("metric_values", "non_finite_values"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{where}: {name} must be an int >= 0, got {v!r}")
        if (self.metric_values is not None and self.non_finite_values is not None
                and self.non_finite_values > self.metric_values):
            raise ValueError(f"{where}: non_finite_values ({self.non_finite_values}) exceeds "
                             f"metric_values ({self.metric_values})")

    @classmethod
    def of(cls, trial_id: str, status: Status, steps: Sequence[float], values: Sequence[float],
           **kw: Any) -> TrialRecord:
        """Convenience constructor taking plain sequences."""
        return cls(trial_id, status, np.asarray(steps, float), np.asarray(values, float), **kw)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    # Cached: the record is immutable and these are read many times per scoring call.
    @cached_property
    def last_step(self) -> float:
        return float(self.steps[-1]) if self.steps.size else 0.0

    @cached_property
    def last_value(self) -> float | None:
        return float(self.values[-1]) if self.values.size else None

    @cached_property
    def seconds_per_step(self) -> float | None:
        """Observed wall seconds per step up to the last report; None before any report."""
        if self.last_step <= 0:
            return None
        at_last = max(self.wall_time_s - (self.since_last_report_s or 0.0), 0.0)
        return at_last / self.last_step if at_last > 0 else None
