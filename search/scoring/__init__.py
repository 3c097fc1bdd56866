"""Reward-minus-penalty scoring of trials (``design/SCORING.md``); pure numpy/scipy.

Typical use at the end of a sweep (the orchestrator's ``SweepScorer`` does this)::

    scores = score_trials(records, ScoringParams(mode="max"), model=forecaster)
    for s in scores:                       # ranked: s.rank == 1, 2, ...
        tracker.log_metrics(s.trial_id, last_epoch[s.trial_id], s.to_metrics())
    table = ranking_markdown(ranking_rows(scores))

At a decision point, ``score_trials(records, ..., only=[trial_id])`` scores just that trial
against the whole sweep. The continuation-reward stop option for schedulers is
:func:`continuation_decisions` (see :mod:`search.scoring.continuation`).
"""

from search.scoring.continuation import (
                                         ContinuationDecisions,
                                         continuation_decisions,
                                         continuation_reward,
)
from search.scoring.penalties import Hygiene, Observability
from search.scoring.reward import default_value, p_survive, p_target_from_forecast
from search.scoring.score import GATE_NON_FINITE, GATE_SECRET, TrialScore, rank, score_trials
from search.scoring.table import COLUMNS, ranking_markdown, ranking_rows
from search.scoring.types import (
                                         FailureHistory,
                                         ParamSpec,
                                         Pipeline,
                                         PipelineStep,
                                         Resources,
                                         ScoringParams,
                                         TrialRecord,
)

__all__ = [
                                         "COLUMNS",
                                         "GATE_NON_FINITE",
                                         "GATE_SECRET",
                                         "ContinuationDecisions",
                                         "FailureHistory",
                                         "Hygiene",
                                         "Observability",
                                         "ParamSpec",
                                         "Pipeline",
                                         "PipelineStep",
                                         "Resources",
                                         "ScoringParams",
                                         "TrialRecord",
                                         "TrialScore",
                                         "continuation_decisions",
                                         "continuation_reward",
                                         "default_value",
                                         "p_survive",
                                         "p_target_from_forecast",
                                         "rank",
                                         "ranking_markdown",
                                         "ranking_rows",
                                         "score_trials",
]
