"""Ray Tune glue for scoring: a callback that scores and records, and a scheduler wrapper that
makes the score what Tune optimises (``scoring.objective: score``).

Imports Ray at module level: import this module only where a sweep runs.

``objective: metric`` (default): add :class:`ScoringCallback` to ``RunConfig(callbacks=...)``
after the tracking callback (it needs the trial's run to exist), before it if the tracking
callback ends the sweep in ``on_experiment_end`` (the scorer's final ranking must be logged
before ``end_sweep``); or call ``scorer.finalize(tracker)`` yourself before ``end_sweep`` and
pass ``finalize_on_end=False``. Scores are only recorded.

``objective: score``: additionally wrap the scheduler, and point Tune and the searcher at the
score::

    scorer = SweepScorer.from_config(cfg)
    scheduler = ScoreObjectiveScheduler(inner_scheduler, scorer)   # inner: metric="score", max
    tune.TuneConfig(metric=SCORE_KEY, mode="max", scheduler=scheduler, search_alg=searcher)
    os.environ.update(objective_env())   # see below
    RunConfig(callbacks=[tracking_cb, ScoringCallback(scorer, tracker)])

Why the environment variable: Tune validates that every result carries the TuneConfig metric
before the scheduler sees it, but the score is computed on the driver from the whole sweep,
so the result only gains ``score`` inside the scheduler wrapper (in place, before the inner
scheduler and then the searcher read the same dict). ``TUNE_DISABLE_STRICT_METRIC_CHECKING=1``
turns that pre-check off; the wrapper guarantees the key is there.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler

from orchestrator.scoring_wiring import SweepScorer

SCORE_KEY = "score"


def objective_env() -> dict[str, str]:
    """Environment Tune needs for ``objective: score`` (see module docstring)."""
    return {"TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"}


def _ended_status(scorer: SweepScorer, trial_id: str) -> str:
    """``finished`` if the trial reached ``max_epochs``, else ``pruned`` (stopped early)."""
    return "finished" if scorer.step_of(trial_id) >= scorer.max_epochs else "pruned"


class ScoringCallback(Callback):
    """Feeds Tune's trial events to a :class:`SweepScorer` and records scores.

    At every result: rescore the sweep, log the trial's decision-point components, and put
    ``score`` into the result (so ``trial.last_result`` and the result grid carry it). At the
    end of the experiment: :meth:`SweepScorer.finalize` (unless already done).

    Args:
        scorer: the sweep's scorer.
        tracker: a :class:`~orchestrator.tracking.Tracker` or None (score without recording).
        log_decisions: log :data:`~orchestrator.scoring_wiring.DECISION_KEYS` at each result.
        finalize_on_end: finalize in ``on_experiment_end``.
    """

    def __init__(self, scorer: SweepScorer, tracker: Any | None = None, *,
                 log_decisions: bool = True, finalize_on_end: bool = True):
        self.scorer, self.tracker = scorer, tracker
        self.log_decisions, self.finalize_on_end = log_decisions, finalize_on_end

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its RunConfig (callbacks included) into the experiment folder; a
        # tracker holds locks and clients. The scorer's data is kept; a restored sweep
        # re-attaches its tracker (``callback.tracker = tracker``).
        return {**self.__dict__, "tracker": None}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.scorer.on_trial_start(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        tid = trial.trial_id
        if self.scorer.on_result(tid, result) or self.scorer.latest(tid) is None:
            self.scorer.score_trial(tid)  # not already scored by the scheduler wrapper
        result[SCORE_KEY] = self.scorer.objective_value(tid)
        if self.tracker is not None and self.log_decisions:
            self.scorer.log_decision(self.tracker, tid)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.scorer.on_trial_end(trial.trial_id, _ended_status(self.scorer, trial.trial_id))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.scorer.on_trial_error(trial.trial_id, will_retry=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.scorer.on_trial_error(trial.trial_id, will_retry=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.finalize_on_end and self.scorer.finalized is None:
            self.scorer.finalize(self.tracker)


class ScoreObjectiveScheduler(TrialScheduler):
    """Wraps any Tune scheduler so that it (and the searcher after it) sees the score.

    On every result the sweep is rescored and ``result["score"]`` is set before the inner
    scheduler decides; the searcher receives the same dict. Every other hook is forwarded
    unchanged. Configure the inner scheduler (and the searcher) with ``metric="score"``,
    ``mode="max"``.
    """

    def __init__(self, inner: TrialScheduler, scorer: SweepScorer):
        super().__init__()
        self.inner, self.scorer = inner, scorer

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def _inject(self, trial: Any, result: dict) -> None:
        self.scorer.on_result(trial.trial_id, result)
        self.scorer.score_trial(trial.trial_id)
        result[SCORE_KEY] = self.scorer.objective_value(trial.trial_id)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._inject(trial, result)
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if result and SCORE_KEY not in result:
            result[SCORE_KEY] = self.scorer.objective_value(trial.trial_id)
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return f"ScoreObjective({self.inner.debug_string()})"

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
