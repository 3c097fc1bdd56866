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

``scoring.stop_on_reward: true`` (any ``objective``): the same wrapper also stops a trial
whose continuation reward (expected value of continuing minus its remaining compute) is
``<= scoring.stop_margin``, on top of whatever the inner scheduler decides; reason
``reward_low``. :func:`attach_scoring` does all of this from a ``SweepConfig``.

Why the environment variable: Tune validates that every result carries the TuneConfig metric
before the scheduler sees it, but the score is computed on the driver from the whole sweep,
so the result only gains ``score`` inside the scheduler wrapper (in place, before the inner
scheduler and then the searcher read the same dict). ``TUNE_DISABLE_STRICT_METRIC_CHECKING=1``
turns that pre-check off; the wrapper guarantees the key is there.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler

from orchestrator.scoring_wiring import SweepScorer, scoring_model, tune_objective
from search.scoring import ranking_markdown, ranking_rows
from trials.api import READS_KEY, parse_reads

SHORT_COLUMNS = ("rank", "trial", "status", "score", "reward", "p_success", "cost_hours",
                 "penalty", "gates")

SCORE_KEY = "score"
STATE_FILE = "scoring_state.json"
REASON_REWARD_LOW = "reward_low"
log = logging.getLogger("sweepcast.scoring")


def objective_env() -> dict[str, str]:
    """Environment Tune needs for ``objective: score`` (see module docstring)."""
    return {"TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"}


def _ended_status(scorer: SweepScorer, trial_id: str) -> str:
    """``finished`` if the trial reached ``max_epochs``, else ``pruned`` (stopped early)."""
    return "finished" if scorer.step_of(trial_id) >= scorer.max_epochs else "pruned"


class ScoringCallback(Callback):
    """Feeds Tune's trial events to a :class:`SweepScorer` and records scores.

    At every result: score the trial (decision-point path), log its decision-point components,
    and put ``score`` into the result (so ``trial.last_result`` and the result grid carry it).
    At the end of the experiment: :meth:`SweepScorer.finalize` (unless already done).

    The tracker is either given directly or found by ``sweep_key`` in
    :mod:`orchestrator.tracking.registry` at each event (Tune pickles callbacks into
    ``tuner.pkl``; a key survives that, a tracker does not). With ``state_path`` the scorer's
    state (plain JSON) is written whenever a trial ends and read back in :meth:`setup` when the
    scorer is empty, so a resumed sweep (``Tuner.restore``) still ranks the trials that ended
    before the interruption. Scoring or tracking errors are logged, never raised into Tune.

    Args:
        scorer: the sweep's scorer.
        tracker: a :class:`~orchestrator.tracking.Tracker`, or None.
        sweep_key: registry key of the sweep's tracker (used when ``tracker`` is None).
        state_path: JSON file for the scorer's state, or None.
        log_decisions: log :data:`~orchestrator.scoring_wiring.DECISION_KEYS` at each result.
        finalize_on_end: finalize in ``on_experiment_end``.
        out: a text stream for the final ranking table (None: not printed).
    """

    def __init__(self, scorer: SweepScorer, tracker: Any | None = None, *,
                 sweep_key: str | None = None, state_path: str | Path | None = None,
                 log_decisions: bool = True, finalize_on_end: bool = True, out: Any = None):
        self.scorer, self.tracker, self.sweep_key, self.out = scorer, tracker, sweep_key, out
        self.state_path = None if state_path is None else str(state_path)
        self.log_decisions, self.finalize_on_end = log_decisions, finalize_on_end

    def __getstate__(self) -> dict[str, Any]:
        # A tracker holds locks and clients, ``out`` a stream: never pickled (the key is).
        return {**self.__dict__, "tracker": None, "out": None}

    def _tracker(self) -> Any | None:
        if self.tracker is not None:
            return self.tracker
        if self.sweep_key is None:
            return None
        from orchestrator.tracking.registry import lookup_tracker

        return lookup_tracker(self.sweep_key)

    def _save(self) -> None:
        if self.state_path is None:
            return
        try:
            tmp = Path(self.state_path + ".tmp")
            tmp.write_text(json.dumps(self.scorer.state()))
            os.replace(tmp, self.state_path)
        except OSError:
            log.warning("could not save the scorer state to %s", self.state_path, exc_info=True)

    def setup(self, stop: Any = None, num_samples: int | None = None,
              total_num_samples: int | None = None, **info: Any) -> None:
        if self.state_path and not self.scorer.known_trials() and Path(self.state_path).exists():
            try:
                self.scorer.restore(json.loads(Path(self.state_path).read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("could not restore the scorer state from %s", self.state_path,
                            exc_info=True)

    def _safely(self, what: str, fn: Any, *args: Any, **kw: Any) -> None:
        try:
            fn(*args, **kw)
        except Exception:  # scoring must never break the sweep
            log.warning("scoring: %s failed", what, exc_info=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("trial start", self.scorer.on_trial_start, trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        tid = trial.trial_id
        for step, artifact in parse_reads(result.get(READS_KEY)):
            self._safely("pipeline read", self.scorer.observe_read, tid, step, artifact)
        try:
            if self.scorer.on_result(tid, result) or self.scorer.latest(tid) is None:
                self.scorer.score_trial(tid)  # not already scored by the scheduler wrapper
            result[SCORE_KEY] = self.scorer.objective_value(tid)
            tracker = self._tracker()
            if tracker is not None and self.log_decisions:
                self.scorer.log_decision(tracker, tid)
        except Exception:  # scoring must never break the sweep
            log.warning("could not score trial %s", tid, exc_info=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("trial end", self.scorer.on_trial_end, trial.trial_id,
                     _ended_status(self.scorer, trial.trial_id))
        self._save()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("trial retry", self.scorer.on_trial_error, trial.trial_id, will_retry=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("trial error", self.scorer.on_trial_error, trial.trial_id,
                     will_retry=False)
        self._save()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.finalize_on_end and self.scorer.finalized is None:
            try:
                scores = self.scorer.finalize(self._tracker())
                if self.out is not None and scores:
                    print("ranking (reward - penalty, see `sweepcast report`):", file=self.out)
                    print(ranking_markdown(ranking_rows(scores), SHORT_COLUMNS), file=self.out,
                          flush=True)
            except Exception:
                log.warning("could not record the final scores", exc_info=True)
        self._save()


class ScoreObjectiveScheduler(TrialScheduler):
    """Wraps any Tune scheduler so that it (and the searcher after it) sees the score, and
    optionally stops trials whose continuation reward no longer pays.

    On every result the trial is scored and ``result["score"]`` is set before the inner
    scheduler decides (``inject_score``); the searcher receives the same dict. With
    ``stop_on_reward``, a trial the inner scheduler lets continue is stopped when, from
    ``grace_epochs`` on and before its last epoch, its continuation reward
    (``P_success * V - c * remaining hours``, SCORING.md) is ``<= stop_margin``; the stop is
    recorded as a verdict with reason ``reward_low`` (and ``p_beat`` = the trial's P_target)
    through the tracker registered under ``sweep_key``. Every other hook is forwarded
    unchanged. Configure the inner scheduler (and the searcher) with ``metric="score"``,
    ``mode="max"`` (or leave them to ``TuneConfig(metric="score", mode="max")``); a curve
    scheduler keeps its raw metric through ``inner_metric``/``inner_mode``.
    """

    def __init__(self, inner: TrialScheduler, scorer: SweepScorer, *,
                 inner_metric: str | None = None, inner_mode: str | None = None,
                 inject_score: bool = True, stop_on_reward: bool = False,
                 stop_margin: float = 0.0, grace_epochs: int = 1,
                 sweep_key: str | None = None):
        super().__init__()
        self.inner, self.scorer = inner, scorer
        self.inner_metric, self.inner_mode = inner_metric, inner_mode
        self.inject_score, self.stop_on_reward = inject_score, stop_on_reward
        self.stop_margin, self.grace_epochs, self.sweep_key = stop_margin, grace_epochs, sweep_key
        self.reward_stops = 0

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        # A forecasting scheduler keeps the raw metric (it extrapolates learning curves, not
        # scores): ``inner_metric``/``inner_mode`` override what Tune passes.
        return self.inner.set_search_properties(self.inner_metric or metric,
                                                self.inner_mode or mode, **spec)

    def _score(self, trial: Any, result: dict) -> Any:
        self.scorer.on_result(trial.trial_id, result)
        s = self.scorer.score_trial(trial.trial_id)
        if self.inject_score:
            result[SCORE_KEY] = s.score
        return s

    def _reward_stop(self, trial: Any, result: dict, s: Any) -> bool:
        step = result.get(self.scorer.time_attr, result.get("training_iteration"))
        if not isinstance(step, (int, float)) or step < self.grace_epochs:
            return False
        if step >= self.scorer.max_epochs or s.reward_continuation > self.stop_margin:
            return False
        self.reward_stops += 1
        if self.sweep_key is not None:
            from orchestrator.tracking.registry import lookup_tracker

            tracker = lookup_tracker(self.sweep_key)
            try:
                if tracker is not None:
                    tracker.log_verdict(trial.trial_id, int(step), {
                        "stop": True, "reason": REASON_REWARD_LOW, "p_beat": s.p_target})
            except Exception:
                log.warning("could not record the reward stop of %s", trial.trial_id,
                            exc_info=True)
        return True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        s = self._score(trial, result)
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        if (self.stop_on_reward and decision == TrialScheduler.CONTINUE
                and self._reward_stop(trial, result, s)):
            return TrialScheduler.STOP
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if self.inject_score and result and SCORE_KEY not in result:
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


def wrap_for_objective(cfg: Any, scheduler: TrialScheduler, scorer: SweepScorer,
                       sweep_key: str | None = None) -> TrialScheduler:
    """Wrap ``scheduler`` in :class:`ScoreObjectiveScheduler` when the config asks for it.

    ``scoring.objective: score``: the score is injected and Tune's strict metric pre-check is
    turned off (see the module docstring). ``scoring.stop_on_reward``: the continuation-reward
    stop is added (from the scheduler's grace period on). Neither: ``scheduler`` unchanged.
    """
    from orchestrator.config_pruning import grace_epochs_of

    score = cfg.scoring.objective == "score"
    if not score and not cfg.scoring.stop_on_reward:
        return scheduler
    if score:
        os.environ.update(objective_env())
    keep_raw = not score or cfg.pruning.scheduler == "curve"
    return ScoreObjectiveScheduler(
        scheduler, scorer, inner_metric=cfg.metric if keep_raw else None,
        inner_mode=cfg.mode if keep_raw else None, inject_score=score,
        stop_on_reward=cfg.scoring.stop_on_reward, stop_margin=cfg.scoring.stop_margin,
        grace_epochs=max(1, grace_epochs_of(cfg.pruning) or 1), sweep_key=sweep_key)


def attach_scoring(cfg: Any, scheduler: TrialScheduler, sweep_key: str,
                   exp_dir: str | Path | None = None, out: Any = None,
                   ) -> tuple[TrialScheduler, ScoringCallback, tuple[str, str]]:
    """Everything ``sweepcast run`` needs to score a sweep, in one call.

    Returns:
        ``(scheduler, callback, (metric, mode))``: the scheduler to give Tune (wrapped for
        ``objective: score``), the :class:`ScoringCallback` to add after the tracking callback
        (it finds the tracker by ``sweep_key`` and keeps its state in
        ``exp_dir/scoring_state.json``), and the metric/mode for ``TuneConfig`` and the searcher.
    """
    scorer = SweepScorer.from_config(cfg, model=scoring_model(cfg))
    state = None if exp_dir is None else Path(exp_dir) / STATE_FILE
    cb = ScoringCallback(scorer, sweep_key=sweep_key, state_path=state, out=out)
    return wrap_for_objective(cfg, scheduler, scorer, sweep_key), cb, tune_objective(cfg)
