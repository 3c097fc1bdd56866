"""CurveScheduler in a real local Ray Tune run: stops a trial that cannot win, records why,
works with OptunaSearch, and keeps its state across ``Tuner.restore``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HORIZON = 6


def _make_trainable():
    # a closure, so Ray pickles it by value (workers cannot import this test module)
    horizon = HORIZON

    def trainable(config):
        import os
        from pathlib import Path

        from ray import tune

        marker = config.get("fail_marker")
        for epoch in range(1, horizon + 1):
            if marker and epoch == 2 and not os.path.exists(marker):
                Path(marker).write_text("failed once")
                raise RuntimeError("simulated crash")
            tune.report({"epoch": epoch, "acc": config["q"] * (1 - 0.5 ** epoch)})

    return trainable


_trainable = _make_trainable()


def _sink(path: str, verdict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(verdict.to_dict()) + "\n")


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _tuner(tmp_path, sched, space, name):
    from ray import tune

    return tune.Tuner(
        _trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=sched,
                                    max_concurrent_trials=1),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path / "ray"), verbose=0),
    )


def test_hopeless_trial_is_stopped_and_state_survives_restore(ray_local, tmp_path):
    from ray import tune

    from search.adapters.ray_tune import CurveScheduler

    sink = tmp_path / "verdicts.jsonl"
    marker = tmp_path / "crashed"
    sched = CurveScheduler(max_t=HORIZON, model="last-value", grace_epochs=2, save_period_s=0,
                           on_verdict=functools.partial(_sink, str(sink)))
    space = {"qm": tune.grid_search([(1.0, None), (0.3, None), (1.0, str(marker))]),
             "q": tune.sample_from(lambda spec: spec.config.qm[0]),
             "fail_marker": tune.sample_from(lambda spec: spec.config.qm[1])}
    results = _tuner(tmp_path, sched, space, "curve").fit()
    by_cfg = {(r.config["q"], r.config["fail_marker"]): r for r in results}
    good, bad = by_cfg[(1.0, None)], by_cfg[(0.3, None)]
    assert good.metrics["epoch"] == HORIZON
    assert bad.metrics["epoch"] == 2  # stopped at its first decision
    stops = [v for v in _read(sink) if v["stop"]]
    assert {v["reason"] for v in stops} == {"p_beat_low"}
    assert stops[0]["incumbent"] == pytest.approx(1.0 * (1 - 0.5 ** HORIZON))
    crashed = by_cfg[(1.0, str(marker))]
    assert crashed.error is not None

    exp_dir = Path(results.experiment_path)
    state = json.loads((exp_dir / "sweepcast_curve_scheduler.json").read_text())
    assert state["stopper"]["completed_best"] == pytest.approx(1.0 * (1 - 0.5 ** HORIZON))

    # Restore: the crashed trial restarts from epoch 1 (no checkpoint) alone. Only the saved
    # state can tell the restored scheduler about the incumbent (no other trial runs now), and
    # with the last-value forecaster a restarted curve below it is stopped at once.
    sink.write_text("")
    restored = tune.Tuner.restore(str(exp_dir), _trainable, restart_errored=True)
    results2 = restored.fit()
    again = {(r.config["q"], r.config["fail_marker"]): r for r in results2}[(1.0, str(marker))]
    assert again.error is None and again.metrics["epoch"] == 2
    after = _read(sink)
    assert [v["reason"] for v in after] == ["grace", "p_beat_low"]
    assert after[-1]["incumbent"] == pytest.approx(1.0 * (1 - 0.5 ** HORIZON))


def test_with_optuna_search_and_tuneconfig_metric(ray_local, tmp_path):
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from search.adapters.ray_tune import CurveScheduler

    sched = CurveScheduler(max_t=HORIZON, model="last-value", grace_epochs=2)
    tuner = tune.Tuner(
        _trainable,
        param_space={"q": tune.uniform(0.1, 1.0)},
        tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=sched, num_samples=4,
                                    search_alg=OptunaSearch(seed=3), max_concurrent_trials=1),
        run_config=tune.RunConfig(name="optuna", storage_path=str(tmp_path / "ray"), verbose=0),
    )
    results = tuner.fit()
    epochs = sorted(r.metrics["epoch"] for r in results)
    assert len(epochs) == 4 and epochs[-1] == HORIZON
    assert any(e < HORIZON for e in epochs), "no trial was stopped"
    stopped = [r for r in results if r.metrics["epoch"] < HORIZON]
    for r in stopped:
        v = sched.last_verdict(r.metrics["trial_id"])
        assert v is None or v["reason"] == "p_beat_low"


def _make_checkpointing_trainable(log_dir: str):
    horizon = HORIZON

    def trainable(config):
        import json
        import os
        import tempfile

        from ray import tune

        start = 1
        ck = tune.get_checkpoint()
        if ck is not None:
            with ck.as_directory() as d, open(os.path.join(d, "state.json")) as f:
                start = json.load(f)["epoch"] + 1
        with open(os.path.join(log_dir, f"{config['q']}.log"), "a") as f:
            f.write(f"start {start}\n")
        for epoch in range(start, horizon + 1):
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    json.dump({"epoch": epoch}, f)
                with open(os.path.join(log_dir, f"{config['q']}.log"), "a") as f:
                    f.write(f"epoch {epoch}\n")
                tune.report({"epoch": epoch, "acc": config["q"] * (1 - 0.5 ** epoch)},
                            checkpoint=tune.Checkpoint.from_directory(d))

    return trainable


def test_pause_ahead_pauses_and_resumes_trials_from_their_checkpoints(ray_local, tmp_path):
    """One trial runs at a time: the first to pass an epoch nobody else reached is paused while
    others are pending and later resumes from its checkpoint: every trial reports each epoch
    once, in order, none lost or rerun, and ends (completed or stopped)."""
    from ray import tune

    from search.adapters.ray_tune import CurveScheduler

    logs = tmp_path / "logs"
    logs.mkdir()
    sink = tmp_path / "verdicts.jsonl"
    sched = CurveScheduler(max_t=HORIZON, model="last-value", grace_epochs=4, save_period_s=0,
                           threshold=1e-9, pause_ahead=True, min_samples=1,
                           before_completion="none",
                           on_verdict=functools.partial(_sink, str(sink)))
    # one trial at a time through resources (2 CPUs each on the 2-CPU test Ray), not through
    # max_concurrent_trials: a concurrency limit makes Tune create no pending trials, and a
    # trial is only paused while another one waits to run
    tuner = tune.Tuner(
        tune.with_resources(_make_checkpointing_trainable(str(logs)), {"cpu": 2}),
        param_space={"q": tune.grid_search([0.7, 0.8, 0.9])},
        tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=sched),
        run_config=tune.RunConfig(name="pause", storage_path=str(tmp_path / "ray"), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    last = {str(r.config["q"]): r.metrics["epoch"] for r in results}
    assert last["0.9"] == HORIZON  # the best trial is never stopped
    assert any(v["wait"] for v in _read(sink))
    starts = {}
    for f in logs.glob("*.log"):
        lines = f.read_text().split()
        epochs = [int(x) for k, x in zip(lines[::2], lines[1::2]) if k == "epoch"]
        # no epoch lost or rerun across pauses; the last one is what Tune saw last
        assert epochs == list(range(1, len(epochs) + 1)), (f.name, lines)
        assert epochs[-1] == last[f.name[:-4]], (f.name, lines, last)
        starts[f.name] = [int(x) for k, x in zip(lines[::2], lines[1::2]) if k == "start"]
    assert len(starts) == 3
    # at least one trial was paused past the grace period and resumed from its checkpoint
    assert any(len(s) > 1 and s[0] == 1 and s[1] > 1 for s in starts.values()), starts
