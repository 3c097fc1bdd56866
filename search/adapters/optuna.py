"""``CurvePruner``: the curve-forecast stopping policy as an ``optuna.pruners.BasePruner``.

For Optuna-only users (inside Ray Tune, ``OptunaSearch`` uses Optuna's ``NopPruner`` and the
stopping belongs to :class:`~search.adapters.ray_tune.CurveScheduler`)::

    pruner = CurvePruner(max_t=50, threshold=0.05)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def objective(trial):
        for epoch in range(1, 51):
            acc = train_one_epoch(...)
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

The pruner only *reads* the study: each trial's ``intermediate_values`` (step -> value, steps are
epochs 1..max_t), and the values of completed trials (the incumbent). It never writes to storage.
Curves are mirrored in a :class:`~search.stopper.CurveStopper` per study, refreshed from the
study on each call, so a pruner shared by several processes through an RDB storage sees every
process's trials.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.forecast.base import CurveModel
from search.policy import PolicyConfig, Verdict
from search.stopper import CurveStopper, resolve_model


class CurvePruner(BasePruner):
    """Prune a trial when its forecast final value is unlikely to beat the best completed one.

    Args:
        max_t: the horizon: the step of the final value (epochs).
        model: a ``CurveModel`` or a name for ``search.forecast.get_model``.
        threshold, grace_epochs, decision_interval, compute_exponent, incumbent,
            before_completion, rank_gate, min_samples, veto_threshold, top_fraction,
            bar_confidence: the policy's knobs (:class:`~search.policy.PolicyConfig`).
        config: a ready ``PolicyConfig`` instead of the knobs.
        on_verdict: optional sink for every verdict.
    """

    def __init__(self, max_t: float, *, model: str | CurveModel = "pfn", threshold: float = 0.05,
                 grace_epochs: int = 3, decision_interval: int = 1, compute_exponent: float = 0.0,
                 incumbent: str = "completed", before_completion: str = "same_step",
                 rank_gate: str = "none", min_samples: int = 3, veto_threshold: float = 0.5,
                 top_fraction: float = 0.1, bar_confidence: float = 0.5,
                 config: PolicyConfig | None = None,
                 on_verdict=None):
        if isinstance(max_t, bool) or not isinstance(max_t, (int, float)) or not math.isfinite(
                max_t) or max_t <= 0:
            raise ValueError(f"max_t must be a finite number > 0, got {max_t!r}")
        self._max_t = float(max_t)
        self._config = config or PolicyConfig(
            threshold=threshold, grace_epochs=grace_epochs, decision_interval=decision_interval,
            compute_exponent=compute_exponent, incumbent=incumbent,  # type: ignore[arg-type]
            before_completion=before_completion,  # type: ignore[arg-type]
            max_forecast_age=0, rank_gate=rank_gate, min_samples=min_samples,  # type: ignore[arg-type]
            veto_threshold=veto_threshold, top_fraction=top_fraction,
            bar_confidence=bar_confidence,
        )
        self._model_spec = model
        self._model: CurveModel | None = None
        self._on_verdict = on_verdict
        self._stoppers: dict[str, CurveStopper] = {}
        self._finished: dict[str, set[int]] = {}
        self.last_verdicts: dict[int, Verdict] = {}

    def _stopper(self, study: optuna.Study) -> CurveStopper:
        s = self._stoppers.get(study.study_name)
        if s is None:
            if len(study.directions) != 1:
                raise ValueError("CurvePruner supports single-objective studies only, got "
                                 f"{len(study.directions)} objectives")
            mode = "max" if study.direction == StudyDirection.MAXIMIZE else "min"
            if self._model is None:
                self._model = resolve_model(self._model_spec)
            s = CurveStopper(self._model, horizon=self._max_t, mode=mode, config=self._config,
                             on_verdict=self._on_verdict)
            self._stoppers[study.study_name] = s
            self._finished[study.study_name] = set()
        return s

    def _sync(self, study: optuna.Study, s: CurveStopper, current: int) -> None:
        done = self._finished[study.study_name]
        for t in study.get_trials(deepcopy=False):
            if t.number in done:
                continue
            tid = str(t.number)
            if t.state == TrialState.COMPLETE:
                done.add(t.number)
                if t.value is not None:
                    s.record_final(tid, t.value)
            elif t.state in (TrialState.PRUNED, TrialState.FAIL):
                done.add(t.number)
                s.remove_trial(tid)
            elif t.state == TrialState.RUNNING and t.number != current:
                self._catch_up(s, tid, t)

    @staticmethod
    def _catch_up(s: CurveStopper, tid: str, t: FrozenTrial, upto: float = math.inf) -> None:
        last = s.store.last_step(tid) if tid in s.store else 0.0
        for step in sorted(t.intermediate_values):
            if last < step < upto:
                s.record(tid, step, t.intermediate_values[step])

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """True to prune. Reads the study; writes nothing."""
        s = self._stopper(study)
        self._sync(study, s, trial.number)
        steps = sorted(trial.intermediate_values)
        if not steps:
            return False
        tid, last = str(trial.number), steps[-1]
        if tid in s.store and s.store.last_step(tid) >= last:
            prev = s.last_verdict_of(tid)
            return bool(prev and prev.get("stop"))
        self._catch_up(s, tid, trial, upto=last)
        v = s.observe(tid, last, trial.intermediate_values[last])
        self.last_verdicts[trial.number] = v
        return v.stop

