"""Driver-side scoring: Tune results in, scores logged through the tracker.

:class:`SweepScorer` is framework-free (no Ray, no MLflow): it keeps, per trial, what the pure
scoring core needs (the metric's curve, report times from an injected clock, metric counts,
params, failures, status), rescores the sweep at every decision point with
:func:`search.scoring.score_trials`, and writes through any :class:`~orchestrator.tracking.
Tracker`. The Ray Tune glue (a callback and a scheduler wrapper for ``objective: score``) is in
:mod:`orchestrator.scoring_tune`.

What is recorded (metric names are :meth:`search.scoring.TrialScore.to_metrics` keys):

* at each decision point (a result of a trial): :data:`DECISION_KEYS` on that trial's run at
  the result's epoch;
* at the end (:meth:`SweepScorer.finalize`): every component on every trial's run at its last
  epoch, the final ``rank`` as a metric and the tags ``sweepcast.rank`` / ``sweepcast.gates``
  (and ``sweepcast.undeclared_reads`` when a pipeline is declared);
  on the parent run the ranking table as ``scoring/ranking.md`` and ``scoring/ranking.json``
  (:data:`RANKING_MD`, :data:`RANKING_JSON`), the tag ``sweepcast.winner`` and metrics
  ``scoring.best_score``, ``scoring.value``, ``scoring.tolerance``.

Usage (the orchestrator's run path; see ``orchestrator.scoring_tune`` for Tune)::

    scorer = SweepScorer.from_config(cfg)
    ...  # results flow in through ScoringCallback (or on_result / on_trial_end by hand)
    scorer.finalize(tracker)        # before tracker.end_sweep(...)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search.hygiene import redact
from search.scoring import (
    ParamSpec,
    Pipeline,
    Resources,
    ScoringParams,
    TrialRecord,
    TrialScore,
    ranking_markdown,
    ranking_rows,
    score_trials,
)
from search.scoring.penalties import flatten, undeclared_reads

if TYPE_CHECKING:
    from orchestrator.config import SweepConfig
    from search.forecast.base import CurveModel

RANKING_DIR = "scoring"
RANKING_MD = "ranking.md"
RANKING_JSON = "ranking.json"
TAG_RANK = "sweepcast.rank"
TAG_GATES = "sweepcast.gates"
TAG_UNDECLARED = "sweepcast.undeclared_reads"
TAG_WINNER = "sweepcast.winner"

#: Logged at every decision point (the full set is logged at the end).
DECISION_KEYS: tuple[str, ...] = (
    "score", "reward", "reward.continuation", "p_success", "p_target", "p_survive",
    "cost_hours", "penalty", "penalty.observability", "penalty.hygiene")

#: Result keys Ray Tune adds itself; they are not the trial's metrics.
TUNE_KEYS = frozenset({
    "time_this_iter_s", "time_total_s", "done", "training_iteration", "trial_id", "date",
    "timestamp", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "experiment_tag", "should_checkpoint",
    "config", "epoch", "warmup_time", "experiment_id", "__trial_info__", "score"})


def space_specs(space: Mapping[str, Any]) -> tuple[ParamSpec, ...]:
    """Translate a validated ``search.space`` into the core's :class:`ParamSpec` tuple."""
    out = []
    for name, e in space.items():
        kind = getattr(e, "type", None)
        if kind in ("uniform", "loguniform"):
            out.append(ParamSpec(name, "float", float(e.low), float(e.high)))
        elif kind == "randint":
            out.append(ParamSpec(name, "int", int(e.low), int(e.high)))
        elif kind in ("choice", "grid"):
            out.append(ParamSpec(name, "categorical", choices=tuple(e.values)))
        else:
            raise ValueError(f"search.space.{name}: unsupported entry type {kind!r}")
    return tuple(out)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _known(tracker: Any, trial_id: str) -> bool:
    """Whether the tracker has a run for the trial (trackers without ``trial_status``: yes)."""
    status = getattr(tracker, "trial_status", None)
    return status is None or status(trial_id) is not None


@dataclass
class _Trial:
    params: dict[str, Any]
    status: str = "running"
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    n_values: int = 0
    n_non_finite: int = 0
    failures: int = 0
    run_s: float = 0.0                   # closed run segments
    seg_start: float | None = None       # clock at the start of the open segment
    last_report: float | None = None     # clock at the last report
    ended_at: float | None = None
    last_key: tuple | None = None
    reads: dict[str, set[str]] = field(default_factory=dict)
    record: TrialRecord | None = None    # cached once ended (nothing changes any more)


class SweepScorer:
    """Accumulates a sweep's trials and scores them (see module docstring).

    Args:
        metric, mode: the sweep metric and its direction.
        max_epochs: every trial's horizon (``max_step`` of the records).
        params: scoring constants (``ScoringConfig.to_params(mode)``).
        resources: per-trial resources (prices the hours: GPU-hours if ``gpu > 0``).
        max_failures: retries per trial (``failure.max_failures``).
        n_trials: trials the sweep will run (for the default ``V``).
        space: search-space specs for the hygiene check.
        pipeline: the declared pipeline, or None (cohesion/coupling n/a).
        model: forecaster of running trials' final values: a ``CurveModel`` or a name for
            ``search.stopper.resolve_model`` (``"pfn"``, ``"last-value"``, ...), resolved on
            first use; a name keeps the scorer picklable without weights. Default last value.
        objective: ``metric`` or ``score`` (what :meth:`objective_value` is for).
        time_attr: result key holding the epoch (``epoch``; ``training_iteration`` fallback).
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(self, *, metric: str, mode: str, max_epochs: float,
                 params: ScoringParams | None = None, resources: Resources | None = None,
                 max_failures: int = 0, n_trials: int | None = None,
                 space: Sequence[ParamSpec] = (), pipeline: Pipeline | None = None,
                 model: CurveModel | str | None = None, objective: str = "metric",
                 time_attr: str = "epoch", clock: Callable[[], float] = time.monotonic):
        if objective not in ("metric", "score"):
            raise ValueError(f"objective must be 'metric' or 'score', got {objective!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.metric, self.mode, self.max_epochs = metric, mode, float(max_epochs)
        self.params = params or ScoringParams(mode=mode)
        if self.params.mode != mode:
            raise ValueError(f"params.mode {self.params.mode!r} differs from mode {mode!r}")
        self.resources = resources or Resources()
        self.max_failures, self.n_trials = max_failures, n_trials
        self.space, self.pipeline, self.model_spec = tuple(space), pipeline, model
        self._model: CurveModel | None = None
        self.objective, self.time_attr, self.clock = objective, time_attr, clock
        self._trials: dict[str, _Trial] = {}
        self._latest: dict[str, TrialScore] = {}
        self.finalized: list[TrialScore] | None = None

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_model"] = None  # re-resolved from model_spec
        return d

    @property
    def model(self) -> CurveModel:
        if self._model is None:
            from search.forecast.base import CurveModel, LastValueModel

            if self.model_spec is None:
                self._model = LastValueModel()
            elif isinstance(self.model_spec, CurveModel):
                self._model = self.model_spec
            else:
                from search.stopper import resolve_model

                self._model = resolve_model(self.model_spec)
        return self._model

    @classmethod
    def from_config(cls, cfg: SweepConfig, *, model: CurveModel | str | None = None,
                    clock: Callable[[], float] = time.monotonic) -> SweepScorer:
        """Build from a validated :class:`~orchestrator.config.SweepConfig`."""
        from orchestrator.config_space import grid_size

        return cls(
            metric=cfg.metric, mode=cfg.mode, max_epochs=cfg.max_epochs,
            params=cfg.scoring.to_params(cfg.mode),
            resources=Resources(cpu=float(cfg.resources.cpu), gpu=float(cfg.resources.gpu)),
            max_failures=cfg.failure.max_failures,
            n_trials=cfg.num_samples * grid_size(cfg.search.space),
            space=space_specs(cfg.search.space),
            pipeline=cfg.pipeline.to_pipeline() if cfg.pipeline else None,
            model=model, objective=cfg.scoring.objective, clock=clock)

    # ---- events -----------------------------------------------------------------------
    def on_trial_start(self, trial_id: str, params: Mapping[str, Any]) -> None:
        """A trial (re)starts. A restart after an error reopens it as running."""
        now = self.clock()
        t = self._trials.get(trial_id)
        if t is None:
            t = self._trials[trial_id] = _Trial(params=dict(params))
        t.status, t.ended_at, t.record = "running", None, None
        if t.seg_start is None:
            t.seg_start = now

    def on_result(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        """Take one reported result (a flat or nested Tune result dict).

        Returns False (and records nothing) for a result already taken (the same trial,
        epoch and ``training_iteration``), so the callback and the scheduler wrapper may both
        feed it. A result without the epoch key is ignored (False).
        """
        t = self._trials.get(trial_id)
        if t is None:
            self.on_trial_start(trial_id, result.get("config") or {})
            t = self._trials[trial_id]
        step = result.get(self.time_attr, result.get("training_iteration"))
        if not _is_number(step) or not math.isfinite(step) or step <= 0:
            return False
        key = (float(step), result.get("training_iteration"))
        if key == t.last_key:
            return False
        t.last_key, t.record = key, None
        now = self.clock()
        t.last_report = now
        for name, v in result.items():
            if name in TUNE_KEYS or name.startswith("config/") or not _is_number(v):
                continue
            t.metric_names.add(name)
            t.n_values += 1
            t.n_non_finite += 0 if math.isfinite(v) else 1
        v = result.get(self.metric)
        if _is_number(v):
            step = min(float(step), self.max_epochs)
            while t.steps and t.steps[-1] >= step:  # a restored trial re-reports epochs
                t.steps.pop()
                t.values.pop()
            t.steps.append(step)
            t.values.append(float(v))
        return True

    def observe_read(self, trial_id: str, step_name: str, artifact: str) -> None:
        """Record that pipeline step ``step_name`` read ``artifact`` at run time (coupling)."""
        t = self._get(trial_id)
        t.reads.setdefault(step_name, set()).add(artifact)
        t.record = None

    def on_trial_end(self, trial_id: str, status: str) -> None:
        """A trial ended: ``finished``/``completed``, ``pruned`` or ``failed`` (for good)."""
        status = {"completed": "finished"}.get(status, status)
        if status not in ("finished", "pruned", "failed"):
            raise ValueError(f"status must be finished, completed, pruned or failed, "
                             f"got {status!r}")
        t = self._get(trial_id)
        now = self.clock()
        self._close_segment(t, now)
        t.status, t.ended_at, t.record = status, now, None

    def on_trial_error(self, trial_id: str, *, will_retry: bool = False) -> None:
        """A trial crashed: counts a failure; ``failed`` unless it will be retried."""
        t = self._get(trial_id)
        t.failures += 1
        t.record = None
        now = self.clock()
        self._close_segment(t, now)
        if not will_retry:
            t.status, t.ended_at = "failed", now

    def _get(self, trial_id: str) -> _Trial:
        # An event for a trial never started here (a resumed sweep without saved state):
        # start it now rather than fail.
        if trial_id not in self._trials:
            self.on_trial_start(trial_id, {})
        return self._trials[trial_id]

    @staticmethod
    def _close_segment(t: _Trial, now: float) -> None:
        if t.seg_start is not None:
            t.run_s += max(now - t.seg_start, 0.0)
            t.seg_start = None

    # ---- scoring ----------------------------------------------------------------------
    def records(self, logged_keys: Callable[[str], frozenset[str] | None] | None = None,
                ) -> list[TrialRecord]:
        """The core's view of every trial now.

        Args:
            logged_keys: trial id -> the config keys its run holds as params (None: unknown).
                Default: every key, since the tracker logs all (secrets redacted, not dropped).
        """
        now = self.clock()
        out = []
        for tid, t in self._trials.items():
            if t.record is not None and logged_keys is None:
                out.append(t.record)
                continue
            wall = t.run_s + (max(now - t.seg_start, 0.0) if t.seg_start is not None else 0.0)
            end = t.ended_at if t.ended_at is not None else now
            since = max(end - t.last_report, 0.0) if t.last_report is not None else None
            since = min(since, wall) if since is not None else None
            keys = logged_keys(tid) if logged_keys else frozenset(flatten(t.params))
            out.append(TrialRecord.of(
                tid, t.status, t.steps, t.values, max_step=self.max_epochs, wall_time_s=wall,
                since_last_report_s=since, resources=self.resources, failures=t.failures,
                max_failures=self.max_failures, params=t.params, logged_keys=keys,
                declared_metrics=(self.metric,), reported_metrics=frozenset(t.metric_names),
                metric_values=t.n_values, non_finite_values=t.n_non_finite,
                observed_reads={k: frozenset(v) for k, v in t.reads.items()}))
            if t.status != "running" and logged_keys is None:
                t.record = out[-1]
        return out

    def score(self, logged_keys: Callable[[str], frozenset[str] | None] | None = None,
              ) -> list[TrialScore]:
        """Score and rank every trial now (one batched forecast); cached per trial."""
        scores = score_trials(self.records(logged_keys), self.params, model=self.model,
                              space=self.space, pipeline=self.pipeline, n_trials=self.n_trials)
        self._latest = {s.trial_id: s for s in scores}
        return scores

    def score_trial(self, trial_id: str) -> TrialScore:
        """Score one trial now (the decision-point path: the sweep-wide quantities come from
        every trial, the components and the forecast only for this one); cached, unranked."""
        (s,) = score_trials(self.records(), self.params, model=self.model, space=self.space,
                            pipeline=self.pipeline, n_trials=self.n_trials, only=(trial_id,))
        self._latest[trial_id] = s
        return s

    def latest(self, trial_id: str) -> TrialScore | None:
        """The trial's score from the last :meth:`score` call."""
        return self._latest.get(trial_id)

    def objective_value(self, trial_id: str) -> float:
        """The trial's current scalar score (what Tune sees with ``objective: score``)."""
        s = self._latest.get(trial_id)
        return float(s.score) if s is not None else float("nan")

    def known_trials(self) -> list[str]:
        """Ids of the trials seen so far."""
        return list(self._trials)

    def step_of(self, trial_id: str) -> int:
        """The trial's last reported epoch (0 if none or unknown)."""
        t = self._trials.get(trial_id)
        return int(t.steps[-1]) if t is not None and t.steps else 0

    # ---- recording --------------------------------------------------------------------
    def log_decision(self, tracker: Any, trial_id: str, step: int | None = None) -> None:
        """Log the trial's current :data:`DECISION_KEYS` at ``step`` (default: its epoch)."""
        s = self._latest.get(trial_id)
        if s is None or not _known(tracker, trial_id):
            return
        m = s.to_metrics()
        tracker.log_metrics(trial_id, self.step_of(trial_id) if step is None else step,
                            {k: m[k] for k in DECISION_KEYS})

    def finalize(self, tracker: Any | None = None) -> list[TrialScore]:
        """Final scores and ranking; record them when a tracker is given (see module doc).

        Call once every trial has ended, before ``tracker.end_sweep``.
        """
        def logged(tid: str) -> frozenset[str] | None:
            if not _known(tracker, tid):  # its params never reached the tracker
                return frozenset()
            return frozenset(flatten(redact(self._trials[tid].params)))

        scores = self.score(logged if tracker is not None else None)
        self.finalized = scores
        if tracker is None:
            return scores
        for s in scores:
            if not _known(tracker, s.trial_id):  # no run to write to; it stays in the table
                continue
            tracker.log_metrics(s.trial_id, self.step_of(s.trial_id), s.to_metrics())
            tags = {TAG_RANK: str(s.rank), TAG_GATES: ",".join(s.gates) or "none"}
            if self.pipeline is not None:  # what the coupling penalty counted, by name
                bad = undeclared_reads(self.pipeline, self._trials[s.trial_id].reads)
                tags[TAG_UNDECLARED] = ",".join(f"{st}:{a}" for st, a in bad) or "none"
            tracker.set_tags(s.trial_id, tags)
        rows = ranking_rows(scores)
        tracker.log_artifact(None, (RANKING_MD, ranking_markdown(rows).encode()), RANKING_DIR)
        tracker.log_artifact(None, (RANKING_JSON, json.dumps(
            {"columns": list(rows[0]) if rows else [], "rows": rows}, default=str,
            indent=1).encode()), RANKING_DIR)
        if scores:
            tracker.set_tags(None, {TAG_WINNER: scores[0].trial_id})
            tracker.log_metrics(None, 0, {"scoring.best_score": scores[0].score,
                                          "scoring.value": scores[0].value,
                                          "scoring.tolerance": self.params.tolerance
                                          * scores[0].value})
        return scores

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able state (curves, counts, statuses; clock readings relative to now)."""
        now = self.clock()
        return {"trials": {tid: {
            "params": redact(t.params), "status": t.status, "steps": t.steps,
            "values": [v if math.isfinite(v) else str(v) for v in t.values],
            "metric_names": sorted(t.metric_names), "n_values": t.n_values,
            "n_non_finite": t.n_non_finite, "failures": t.failures,
            "run_s": t.run_s + (now - t.seg_start if t.seg_start is not None else 0.0),
            "reads": {k: sorted(v) for k, v in t.reads.items()}}
            for tid, t in self._trials.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` (a resumed sweep); open segments restart now.

        Redacted params stay redacted, so a restored trial with a secret still counts as one.
        """
        now = self.clock()
        for tid, d in state.get("trials", {}).items():
            t = _Trial(params=dict(d["params"]), status=d["status"],
                       steps=[float(s) for s in d["steps"]],
                       values=[float(v) for v in d["values"]],
                       metric_names=set(d["metric_names"]), n_values=int(d["n_values"]),
                       n_non_finite=int(d["n_non_finite"]), failures=int(d["failures"]),
                       run_s=float(d["run_s"]),
                       reads={k: set(v) for k, v in d.get("reads", {}).items()})
            if t.status == "running":
                t.seg_start = now
            else:
                t.ended_at = now
            self._trials[tid] = t


def tune_objective(cfg: SweepConfig) -> tuple[str, str]:
    """``(metric, mode)`` Tune's scheduler and searcher optimise for a ``SweepConfig``:
    ``("score", "max")`` with ``scoring.objective: score``, else the sweep's metric and mode."""
    if cfg.scoring.objective == "score":
        return "score", "max"
    return cfg.metric, cfg.mode


def scoring_model(cfg: SweepConfig) -> str:
    """Forecaster name for P_target: the curve scheduler's model when pruning with it
    (already loaded), else ``last-value`` (no torch import for ASHA/median/... sweeps)."""
    return getattr(cfg.pruning, "model", None) or "last-value"
