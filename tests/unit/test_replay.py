"""The replay simulator against hand-computed tiny cases, the data loader and the CLI."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from search.forecast.base import LastValueModel
from search.policy import PolicyConfig
from search.replay.data import load_curves
from search.replay.run import curve_scheduler, run_all
from search.replay.sim import (
    CONTINUE,
    STOP,
    FifoReplay,
    ReplayScheduler,
    Simulation,
    StopAtReplay,
    Task,
    replay,
)

NAN = math.nan


def tiny(mode="max", finals=(0.5, 0.9, 0.7), E=4):
    vals = np.array([[f * e / E for e in range(1, E + 1)] for f in finals])
    return Task("bench", "tiny", "acc", mode, tuple(f"c{i}" for i in range(len(finals))), vals)


def run(task, sched, workers=2):
    sim = Simulation(task, sched, workers)
    sim.run()
    return sim, sim.outcome()


def test_fifo_runs_every_epoch_and_has_no_regret():
    _, r = run(tiny(), FifoReplay())
    assert r.epochs == 12 == r.fifo_epochs and r.speedup == 1.0
    assert r.regret == 0.0 and r.regret_rel == 0.0 and not r.best_killed
    assert r.n_completed == 3
    assert r.makespan == 8.0  # c0, c1 on two workers 0..4, then c2 4..8


def test_stop_everything_at_epoch_one():
    _, r = run(tiny(), StopAtReplay(1))
    assert r.epochs == 3 and r.speedup == 4.0
    assert r.n_completed == 0 and r.best_killed
    # nothing completed: regret is the gap to the worst final (0.9 - 0.5), median 0.7
    assert r.regret == pytest.approx(0.4) and r.regret_rel == pytest.approx(2.0)
    assert r.makespan == 2.0


class KillConfig(ReplayScheduler):
    name = "kill"

    def __init__(self, victim: str, at: int):
        self.victim, self.at = victim, at

    def result(self, tid, epoch, value):
        return STOP if tid == self.victim and epoch >= self.at else CONTINUE


@pytest.mark.parametrize("mode,finals", [("max", (0.5, 0.9, 0.7)), ("min", (0.5, 0.1, 0.3))])
def test_regret_arithmetic_when_the_best_config_is_killed(mode, finals):
    _, r = run(tiny(mode, finals), KillConfig("t00001", 2))
    assert r.epochs == 4 + 2 + 4
    assert r.best_killed
    # best 0.9 (0.1 for min) lost; best completed 0.7 (0.3); median 0.7 (0.3)
    assert r.regret == pytest.approx(0.2)
    assert r.regret_rel == pytest.approx(0.2 / 0.2)


def test_diverged_final_counts_as_worst_and_median_over_finite():
    t = tiny(finals=(0.5, 0.9, 0.7, 0.6))
    vals = t.values.copy()
    vals[0, 2:] = NAN
    t = Task(t.benchmark, t.task, t.metric, t.mode, t.config_ids, vals)
    _, r = run(t, KillConfig("t00003", 1))  # kill the 0.6 one
    assert r.regret == 0.0
    _, r = run(t, KillConfig("t00001", 1))  # kill the best
    # completed finite finals: 0.7, 0.6 -> regret 0.2; median of (0.9, 0.7, 0.6) = 0.7
    assert r.regret == pytest.approx(0.2) and r.regret_rel == pytest.approx(1.0)


def test_results_arrive_in_time_order_with_durations():
    t = tiny(finals=(0.5, 0.9))
    seen = []

    class Spy(ReplayScheduler):
        def result(self, tid, epoch, value):
            seen.append((self.sim.index[tid], epoch))
            return CONTINUE

    dur = np.array([[1.0] * 4, [3.0] * 4])
    t = Task(t.benchmark, t.task, t.metric, t.mode, t.config_ids, t.values, dur)
    _, r = run(t, Spy(), workers=2)
    # at time 3 both report: t1 started its epoch (at 0) before t0 started its 3rd (at 2)
    assert seen[:5] == [(0, 1), (0, 2), (1, 1), (0, 3), (0, 4)]
    assert r.makespan == 12.0


def test_bad_workers_named():
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        Simulation(tiny(), FifoReplay(), 0)


def test_curve_scheduler_replay_saves_epochs_and_is_seeded():
    t = tiny(finals=tuple(np.linspace(0.1, 1.0, 10)), E=10)
    mk = lambda: curve_scheduler(LastValueModel(), PolicyConfig(grace_epochs=2))
    a = replay(t, mk(), workers=2, seed=1)
    b = replay(t, mk(), workers=2, seed=1)
    assert a.to_dict() | {"decision_us_p50": 0, "decision_us_p99": 0} == \
        b.to_dict() | {"decision_us_p50": 0, "decision_us_p99": 0}
    assert a.epochs < a.fifo_epochs


def write_csv(folder, rows, header=("benchmark", "task", "config_id", "epoch", "metric",
                                     "metric_name", "higher_is_better")):
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "curves.csv.gz", "wt") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")


def test_loader_drops_epoch_zero_reads_nan_and_direction(tmp_path):
    rows = []
    for cid, vals in (("007", [1.0, 0.8, 0.6, 0.5]), ("010", [1.0, 0.9, "", ""])):
        for e, v in enumerate(vals):
            rows.append(("b", "T", cid, e, v, "loss", 0))
    write_csv(tmp_path / "b", rows)
    (task,) = load_curves(tmp_path)
    assert task.mode == "min" and task.config_ids == ("007", "010")
    assert task.values.shape == (2, 3)
    assert task.values[0].tolist() == [0.8, 0.6, 0.5]
    assert math.isnan(task.values[1, 1])


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no curves.csv.gz"):
        load_curves(tmp_path)
    write_csv(tmp_path / "x", [("b", "T", "1", 1, 0.5, "acc", "maybe")])
    with pytest.raises(ValueError, match="higher_is_better must be 0/1, got 'maybe'"):
        load_curves(tmp_path / "x")


def test_cli_writes_the_documented_json(tmp_path):
    from orchestrator.commands.replay import command

    rows = []
    for i, f in enumerate(np.linspace(0.2, 0.9, 12)):
        for e in range(9):
            rows.append(("b", "T", f"{i:03d}", e, f * (1 - 0.6 ** e), "acc", 1))
    write_csv(tmp_path / "b", rows)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(command, [
        "--curves", str(tmp_path), "--schedulers", "curve,fifo", "--model", "last-value",
        "--workers", "2", "--seeds", "2", "--max-configs", "10", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    keys = {"benchmark", "task", "scheduler", "seed", "epochs", "fifo_epochs", "speedup",
            "regret", "regret_rel", "best_killed", "decision_us_p50", "decision_us_p99"}
    assert len(data["results"]) == 4
    for r in data["results"]:
        assert keys <= set(r)
        assert r["fifo_epochs"] == 80
    fifo = [r for r in data["results"] if r["scheduler"] == "fifo"]
    assert all(r["epochs"] == 80 and r["regret"] == 0 for r in fifo)
    assert "median speedup" in res.output


def test_cli_passes_policy_options_and_rejects_bad_ones(tmp_path):
    from orchestrator.commands.replay import command

    rows = [("b", "T", f"{i:03d}", e, f * (1 - 0.6 ** e), "acc", 1)
            for i, f in enumerate(np.linspace(0.2, 0.9, 12)) for e in range(9)]
    write_csv(tmp_path / "b", rows)
    out = tmp_path / "r.json"
    args = ["--curves", str(tmp_path), "--schedulers", "curve", "--model", "last-value",
            "--workers", "2", "--seeds", "1", "--json", str(out)]
    res = CliRunner().invoke(command, [*args, "--rank-gate", "median_or", "--veto-threshold",
                                       "0.3", "--incumbent", "top_fraction",
                                       "--bar-confidence", "0.7"])
    assert res.exit_code == 0, res.output
    pol = json.loads(out.read_text())["settings"]["policy"]
    assert (pol["rank_gate"], pol["veto_threshold"], pol["incumbent"], pol["bar_confidence"]) == (
        "median_or", 0.3, "top_fraction", 0.7)
    bad = CliRunner().invoke(command, [*args, "--rank-gate", "median_or", "--threshold", "0.5",
                                       "--veto-threshold", "0.2"])
    assert bad.exit_code == 2 and "veto_threshold" in bad.output
    bad = CliRunner().invoke(command, [*args, "--bar-confidence", "1.2"])
    assert bad.exit_code == 2 and "bar_confidence must be in (0, 1), got 1.2" in bad.output


def test_cli_rejects_unknown_scheduler(tmp_path):
    from orchestrator.commands.replay import command

    res = CliRunner().invoke(command, ["--curves", str(tmp_path), "--schedulers", "curve,bogus"])
    assert res.exit_code != 0 and "bogus" in res.output


@pytest.mark.slow
def test_real_peers_and_tune_adapter_on_a_real_task(curves_dir):
    (task,) = load_curves(curves_dir / "deepobs", {"mnist_vae"})
    res = run_all([task], ["fifo", "asha", "median", "optuna-median", "curve", "curve-tune"],
                  model=LastValueModel(), config=PolicyConfig(), workers=8, seeds=1,
                  max_configs=40)
    by = {r["scheduler"]: r for r in res}
    assert by["fifo"]["epochs"] == by["fifo"]["fifo_epochs"] == 40 * 50
    assert by["asha"]["epochs"] < by["fifo"]["epochs"]
    assert by["median"]["epochs"] < by["fifo"]["epochs"]
    # the Ray adapter decides exactly like the core stopper
    for k in ("epochs", "regret", "best_killed", "n_completed"):
        assert by["curve"][k] == by["curve-tune"][k]
    # also when it pauses trials (Ray's FIFO order resumes them like the replay's own)
    cfg = PolicyConfig(rank_gate="median_or", pause_ahead=True, grace_epochs=1)
    res = run_all([task], ["curve", "curve-tune"], model=LastValueModel(), config=cfg, workers=8,
                  seeds=1, max_configs=40)
    a, b = res
    assert a["epochs"] == b["epochs"] and a["n_completed"] == b["n_completed"]
    assert a["epochs"] != by["curve"]["epochs"]


def test_pause_ahead_explores_breadth_first_and_loses_no_epoch():
    # with pause_ahead no trial passes epoch 2 before min_samples others have reached it; a paused
    # trial resumes where it stopped (no epoch run twice or skipped) and none is left paused
    finals = (0.5, 0.9, 0.7, 0.6, 0.8)
    task = tiny(finals=finals, E=6)
    order = []

    class Spy(ReplayScheduler):
        def __init__(self, inner):
            self.inner, self.name = inner, "spy"

        def bind(self, sim):
            super().bind(sim)
            self.inner.bind(sim)

        def add(self, tid):
            self.inner.add(tid)

        def choose(self):
            return self.inner.choose()

        def result(self, tid, epoch, value):
            order.append((tid, epoch))
            return self.inner.result(tid, epoch, value)

        def complete(self, tid, epoch, value):
            self.inner.complete(tid, epoch, value)

    cfg = PolicyConfig(threshold=1e-9, grace_epochs=2, pause_ahead=True, min_samples=2,
                       before_completion="none")
    sim, r = run(task, Spy(curve_scheduler(LastValueModel(), cfg)), workers=2)
    ran = {}
    for t, e in order:
        ran.setdefault(t, []).append(e)
    assert all(es == list(range(1, len(es) + 1)) for es in ran.values())
    assert r.epochs == sum(len(es) for es in ran.values()) and r.n_completed >= 1
    assert "PAUSED" not in sim.status and "PENDING" not in sim.status
    first_past_2 = next(i for i, (_, e) in enumerate(order) if e == 3)
    reached_2 = {t for t, e in order[:first_past_2] if e == 2}
    assert len(reached_2) >= 3  # the one that goes on + min_samples 2 others
    # the same sweep without pausing runs the first two trials to the end first
    order.clear()
    run(task, Spy(curve_scheduler(LastValueModel(), PolicyConfig(
        threshold=1e-9, grace_epochs=2, min_samples=2, before_completion="none"))), workers=2)
    assert order[:12] == [(t, e) for e in range(1, 7) for t in ("t00000", "t00001")]


def _tiny_curves(tmp_path):
    rows = [("b", "T", f"{i:03d}", e, f * (1 - 0.6 ** e), "acc", 1)
            for i, f in enumerate(np.linspace(0.2, 0.9, 12)) for e in range(9)]
    write_csv(tmp_path / "b", rows)
    return ["--curves", str(tmp_path), "--schedulers", "curve", "--model", "last-value",
            "--workers", "2", "--seeds", "1"]


def test_cli_replays_the_sweep_configs_default_curve_policy(tmp_path):
    """Without options, the curve scheduler replayed is the one a sweep's `scheduler: curve`
    block gets by default (the README's 12x figure), not the bare PolicyConfig rule."""
    from orchestrator.commands.replay import command
    from orchestrator.config_pruning import CurvePruning

    out = tmp_path / "r.json"
    res = CliRunner().invoke(command, [*_tiny_curves(tmp_path), "--json", str(out)])
    assert res.exit_code == 0, res.output
    pol = json.loads(out.read_text())["settings"]["policy"]
    want = CurvePruning(scheduler="curve").model_dump(exclude={"scheduler", "model"})
    assert {k: pol[k] for k in want} == want
    assert "curve policy:" in res.output


def test_cli_takes_the_policy_and_metric_from_a_sweep_config(tmp_path):
    from orchestrator.commands.replay import command

    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        "name: s\ntrainable: trials.examples.mlp:train\nmetric: val_loss\nmode: min\n"
        "max_epochs: 8\nsearch: {algorithm: random, space: {lr: {type: loguniform, low: 1.0e-4, high: 0.1}}}\n"
        "pruning: {scheduler: curve, threshold: 0.02, incumbent: top_fraction, bar_confidence: 0.7,"
        " grace_epochs: 2, rank_gate: none, model: last-value}\n")
    out = tmp_path / "r.json"
    args = [*_tiny_curves(tmp_path), "--config", str(cfg), "--json", str(out)]
    res = CliRunner().invoke(command, [*args, "--threshold", "0.03"])  # the command line wins
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())["settings"]
    pol = s["policy"]
    assert (pol["threshold"], pol["incumbent"], pol["bar_confidence"], pol["grace_epochs"],
            pol["rank_gate"]) == (0.03, "top_fraction", 0.7, 2, "none")
    assert s["model"] == "last-value"
    # a broken config: exit 2, the field and the value named, nothing replayed
    cfg.write_text(cfg.read_text().replace("threshold: 0.02", "threshold: 2"))
    bad = CliRunner().invoke(command, args)
    assert bad.exit_code == 2
    assert "pruning" in bad.output and "threshold" in bad.output and "2" in bad.output
    assert "curve policy:" not in bad.output


def test_cli_names_an_unknown_model(tmp_path):
    from orchestrator.commands.replay import command

    args = _tiny_curves(tmp_path)
    args[args.index("last-value")] = "prophet"
    res = CliRunner().invoke(command, args)
    assert res.exit_code == 2 and "prophet" in res.output and "--model" in res.output
