"""The MLflow sweep reader on a real local MLflow store (SQLite file, no server).

The sweep is written with sweepcast's own MLflow tracker, so the reader is held to the layout
the tracker really produces (tags, verdict metrics, config artifact, ranking table).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # MLflow's SQLite schema set-up takes a few seconds


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from orchestrator.tracking.mlflow_tracker import MlflowTracker

    root = tmp_path_factory.mktemp("reader")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    t = MlflowTracker(uri, experiment="reader-exp", spill_dir=root / "spill", linger_s=0.01)
    config = {"name": "rs", "metric": "val_loss", "mode": "min", "max_epochs": 5,
              "pruning": {"scheduler": "curve", "threshold": 0.1}}
    parent = t.start_sweep("rs", config, {"metric": "val_loss"})
    t.start_trial("good", {"lr": 0.1})
    for s, v in enumerate([1.0, 0.6, 0.4, 0.35, 0.3], start=1):
        t.log_metrics("good", s, {"val_loss": v, "other": 1.0})
    t.log_metrics("good", 5, {"score": 2.5})
    t.end_trial("good", "completed")
    t.start_trial("bad", {"lr": 1e-5})
    t.log_metrics("bad", 1, {"val_loss": 2.0})
    t.log_metrics("bad", 2, {"val_loss": 1.9})
    t.log_verdict("bad", 2, {"decision": "continue", "reason": "beats_incumbent",
                             "p_beat": 0.3, "q05": 0.9, "q50": 1.3, "q95": 1.7})
    t.log_metrics("bad", 3, {"val_loss": 1.85})
    t.log_verdict("bad", 3, {"decision": "stop", "reason": "p_beat_low",
                             "p_beat": 0.01, "q05": 1.2, "q50": 1.5, "q95": 1.8})
    t.end_trial("bad", "pruned")
    t.start_trial("boom", {"lr": 9.0})
    t.log_metrics("boom", 1, {"val_loss": math.inf})
    t.end_trial("boom", "failed")
    t.log_artifact(None, ("ranking.md", b"| rank | trial |\n|---|---|\n| 1 | good |\n"),
                   "scoring")
    t.end_sweep({"trials_total": 3})
    t.close(timeout=60)
    return {"uri": uri, "parent": parent, "root": root}


def test_reads_the_sweep_as_recorded(store: dict) -> None:
    from orchestrator.tracking.reader import read_sweep

    rec = read_sweep("rs", tracking_uri=store["uri"])
    assert (rec.name, rec.metric, rec.mode, rec.max_epochs) == ("rs", "val_loss", "min", 5)
    assert rec.scheduler == "curve" and rec.parent_run_id == store["parent"]
    assert rec.experiment_name == "reader-exp" and rec.status == "FINISHED"
    assert rec.ranking_markdown.startswith("| rank | trial |")
    trials = {t.trial_id: t for t in rec.trials}
    assert set(trials) == {"good", "bad", "boom"}
    good, bad, boom = trials["good"], trials["bad"], trials["boom"]
    assert good.status == "completed" and good.steps == (1, 2, 3, 4, 5)
    assert good.values == (1.0, 0.6, 0.4, 0.35, 0.3) and good.score == 2.5
    assert good.decisions == () and good.params == {"lr": "0.1"}
    assert bad.status == "pruned" and bad.reason == "p_beat_low" and bad.steps == (1, 2, 3)
    assert [(d.step, d.action, d.p_beat, d.q05, d.q50, d.q95) for d in bad.decisions] == [
        (2, "continue", 0.3, 0.9, 1.3, 1.7), (3, "stop", 0.01, 1.2, 1.5, 1.8)]
    assert bad.decisions[-1].reason == "p_beat_low"
    assert boom.status == "failed" and math.isinf(boom.values[0]) and boom.stop_reason is None
    assert rec.incumbent().trial_id == "good"


def test_finds_by_parent_id_and_by_experiment_name(store: dict) -> None:
    from orchestrator.tracking.reader import read_sweep

    assert read_sweep(store["parent"], tracking_uri=store["uri"]).name == "rs"
    assert read_sweep("reader-exp", tracking_uri=store["uri"]).parent_run_id == store["parent"]
    assert read_sweep("rs", tracking_uri=store["uri"], experiment="reader-exp").name == "rs"


def test_not_found_names_what_was_searched(store: dict) -> None:
    from orchestrator.tracking.reader import SweepNotFoundError, read_sweep

    with pytest.raises(SweepNotFoundError, match="no sweep named 'nope'"):
        read_sweep("nope", tracking_uri=store["uri"])
    with pytest.raises(SweepNotFoundError, match="no MLflow experiment named 'ghost'"):
        read_sweep("rs", tracking_uri=store["uri"], experiment="ghost")


def test_report_cli_prints_the_table_and_writes_html(store: dict, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    r = CliRunner().invoke(main, ["report", "rs", "--tracking-uri", store["uri"]])
    assert r.exit_code == 0, r.output
    assert "val_loss (min)" in r.output and "p_beat_low" in r.output
    assert "3: 1 completed, 1 pruned, 1 failed" in r.output
    assert "ranking (scoring):" in r.output
    out = tmp_path / "sub" / "r.html"
    r = CliRunner().invoke(main, ["report", "rs", "--tracking-uri", store["uri"],
                                  "--html", str(out), "--max-trial-plots", "1"])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3  # sweep, compute, one trial
    r = CliRunner().invoke(main, ["report", "nope", "--tracking-uri", store["uri"]])
    assert r.exit_code == 1 and "no sweep named 'nope'" in r.output


def test_recorded_sweep_reads_back_through_the_tracker(store: dict) -> None:
    from orchestrator.observe import recorded_sweep

    class Restored:  # what PlotArtifacts sees of a resumed MlflowTracker
        tracking_uri = store["uri"]
        parent_run_id = store["parent"]

        def __init__(self) -> None:
            self.flushed: list[float] = []

        def flush(self, timeout: float) -> bool:
            self.flushed.append(timeout)
            return True

    tr = Restored()
    rec = recorded_sweep(tr)
    assert tr.flushed and {t.trial_id for t in rec.trials} == {"good", "bad", "boom"}

    class NoMlflow:
        parent_run_id = "p"

    assert recorded_sweep(NoMlflow()) is None
