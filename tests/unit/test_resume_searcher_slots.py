"""A resumed sweep frees the searcher's concurrency slots that no running trial holds
(``orchestrator.resume._release_callback``), with Ray's real search objects: a slot held by a
trial the restored trial table has as ended, or never had, would otherwise never be freed (with
``max_concurrent: 1`` the resumed sweep waited forever)."""

from __future__ import annotations

from types import SimpleNamespace

from orchestrator.resume import _release_callback, searcher_live_ids


def _trial(tid: str, status: str, last: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, status=status, last_result=last or {})


def test_variant_generator_slots_of_absent_and_ended_trials_are_freed() -> None:
    from ray.tune.search import BasicVariantGenerator

    alg = BasicVariantGenerator(max_concurrent=2)
    alg._live_trials = {"done", "ghost", "running"}  # as restored from a newer searcher state
    assert searcher_live_ids(alg) is alg._live_trials
    cb = _release_callback(alg, {})
    cb.on_step_begin(1, [_trial("done", "TERMINATED"), _trial("running", "RUNNING")])
    assert alg._live_trials == {"running"}
    cb.on_step_begin(2, [])  # once, at the first step
    assert alg._live_trials == {"running"}


def test_limiter_slots_are_freed_and_ended_trials_reported_to_the_searcher() -> None:
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    inner = OptunaSearch(space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
                         metric="quality", mode="max", seed=0)
    alg = ConcurrencyLimiter(inner, max_concurrent=2)
    assert alg.suggest("a") is not None and alg.suggest("b") is not None
    assert alg.suggest("c") is None  # both slots taken
    alg.live_trials.add("ghost")  # a trial the restored table never had
    cb = _release_callback(alg, {"a": ("completed", {"quality": 0.25, "epoch": 3})})
    # `a` ended after Tune's snapshot (reconciled); `ghost` is not in the table at all
    cb.on_step_begin(1, [_trial("a", "TERMINATED"), _trial("b", "RUNNING")])
    assert alg.live_trials == {"b"}
    done = [t for t in inner._ot_study.trials if t.state.is_finished()]
    assert [t.value for t in done] == [0.25]  # the reconciled trial's result reached Optuna
    assert alg.suggest("d") is not None  # a slot is free again


def test_a_searcher_without_slots_is_left_alone() -> None:
    alg = SimpleNamespace(on_trial_complete=lambda *a, **k: None)
    assert searcher_live_ids(alg) is None
    _release_callback(alg, {}).on_step_begin(1, [_trial("a", "RUNNING")])  # no error
