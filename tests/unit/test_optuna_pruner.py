"""CurvePruner in a real in-memory Optuna study."""

from __future__ import annotations

import optuna
import pytest

from search.adapters.optuna import CurvePruner
from search.forecast.base import CurveModel, SampleForecast, check_batch

H = 12


class ShapeOracle(CurveModel):
    """Knows the curves are q * (1 - 0.7**epoch): forecasts the exact final value."""

    def forecast(self, curves, target_step, *, mode="max"):
        check_batch(curves, target_step)
        out = [c.values[-1] / (1 - 0.7 ** c.steps[-1]) * (1 - 0.7 ** H) for c in curves]
        return SampleForecast([[v] for v in out])


def objective_for(qualities, direction="maximize"):
    sign = 1.0 if direction == "maximize" else -1.0

    def objective(trial):
        q = qualities[trial.number]
        trial.set_user_attr("q", q)
        for e in range(1, H + 1):
            v = sign * q * (1 - 0.7 ** e)
            trial.report(v, e)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return v

    return objective


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_hopeless_trials_are_pruned_best_completes(direction):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    qs = [0.8, 0.2, 0.9, 0.1, 0.5]
    pruner = CurvePruner(max_t=H, model=ShapeOracle(), grace_epochs=2)
    study = optuna.create_study(direction=direction, pruner=pruner)
    study.optimize(objective_for(qs, direction), n_trials=len(qs))
    states = [t.state for t in study.trials]
    # 0.8 completes (nothing to compare with), 0.2 / 0.1 / 0.5 cannot catch up, 0.9 beats it
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.PRUNED]
    assert study.best_trial.user_attrs["q"] == 0.9
    v = pruner.last_verdicts[1]
    assert v.reason == "p_beat_low" and v.step == 2
    assert pruner.last_verdicts[2].reason in ("beats_incumbent", "horizon")
    assert pruner.last_verdicts[1].incumbent == pytest.approx(
        (1 if direction == "maximize" else -1) * 0.8 * (1 - 0.7 ** H))


def test_pruner_never_writes_to_storage():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = CurvePruner(max_t=H, model="last-value", grace_epochs=2)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(objective_for([0.8]), n_trials=1)
    t = study.ask()
    for e in (1, 2, 3):
        t.report(0.1, e)
    before = study._storage.get_trial(t._trial_id)
    frozen = study._storage.get_trial(t._trial_id)
    assert pruner.prune(study, frozen) is True
    after = study._storage.get_trial(t._trial_id)
    assert after.system_attrs == before.system_attrs and after.user_attrs == before.user_attrs
    assert after.state == before.state and len(study.trials) == 2
    # asking again about the same step answers the same without re-deciding
    assert pruner.prune(study, frozen) is True


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_t must be a finite number > 0, got 0"):
        CurvePruner(max_t=0)
    with pytest.raises(ValueError, match="threshold must be in"):
        CurvePruner(max_t=5, threshold=2.0)
    with pytest.raises(ValueError, match="bar_confidence must be in \\(0, 1\\), got 0.0"):
        CurvePruner(max_t=5, incumbent="top_fraction", bar_confidence=0.0)
    p = CurvePruner(max_t=5, incumbent="top_fraction", bar_confidence=0.7)
    assert (p._config.incumbent, p._config.bar_confidence) == ("top_fraction", 0.7)
