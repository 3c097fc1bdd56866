"""Resume bookkeeping without Ray: finding the experiment, the manifest, and reconciling
Tune's snapshot with the tracker's record (trials that ended after Tune's last snapshot)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config import SweepConfig
from orchestrator.resume import (
    MANIFEST_FILE,
    ResumeError,
    find_experiment,
    load_manifest,
    prepare_resumable,
    reconcile_snapshot,
)

CFG = {
    "name": "resumable", "trainable": "trials.examples.mlp:train", "metric": "val_accuracy",
    "mode": "max", "max_epochs": 3, "num_samples": 2,
    "search": {"algorithm": "random", "seed": 0,
               "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}},
}


def _cfg() -> SweepConfig:
    return SweepConfig.model_validate(CFG)


def test_manifest_roundtrips_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    exp = tmp_path / "resumable"
    path = prepare_resumable(exp, _cfg())
    assert path == exp / MANIFEST_FILE
    import os

    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "1"  # short snapshot period
    assert load_manifest(exp) == _cfg()


def test_find_experiment_by_path_and_by_name(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    old = storage / "resumable"
    new = storage / "resumable_20260101-000000"
    prepare_resumable(old, _cfg())
    prepare_resumable(new, _cfg())
    (storage / "resumable-other").mkdir()
    assert find_experiment(str(old)) == old.resolve()
    assert find_experiment(str(old / MANIFEST_FILE)) == old.resolve()
    assert find_experiment("resumable", str(storage)) == new.resolve()  # latest started
    with pytest.raises(ResumeError, match="no resumable sweep 'nope'"):
        find_experiment("nope", str(storage))
    with pytest.raises(ResumeError, match="not a sweepcast experiment"):
        find_experiment(str(storage / "resumable-other"))
    with pytest.raises(ResumeError, match="no experiment folder"):
        find_experiment(str(tmp_path / "missing" / "x"))


def test_manifest_that_no_longer_validates_is_a_clear_error(tmp_path: Path) -> None:
    exp = tmp_path / "e"
    prepare_resumable(exp, _cfg())
    data = json.loads((exp / MANIFEST_FILE).read_text())
    data["config"]["mode"] = "sideways"
    (exp / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(ResumeError, match="mode"):
        load_manifest(exp)


def _snapshot(exp: Path, statuses: dict[str, str]) -> Path:
    trial_data = []
    for tid, st in statuses.items():
        state = {"trial_id": tid, "status": st, "config": {"x": 1},
                 "placement_group_factory": {"_type": "CLOUDPICKLE_FALLBACK", "value": "80"}}
        meta = {"num_failures": 0, "last_result": {"epoch": 2, "val_accuracy": 0.5}}
        trial_data.append([json.dumps(state, indent=2), json.dumps(meta)])
    exp.mkdir(parents=True, exist_ok=True)
    older = exp / "experiment_state-2026-01-01_00-00-00.json"
    older.write_text(json.dumps({"trial_data": [], "runner_data": {}, "stats": {}}))
    path = exp / "experiment_state-2026-01-01_00-00-09.json"
    path.write_text(json.dumps({"trial_data": trial_data, "runner_data": {"k": 1},
                                "stats": {"start_time": 1.0}}))
    return path


def test_reconcile_marks_trials_the_tracker_saw_end(tmp_path: Path) -> None:
    exp = tmp_path / "e"
    path = _snapshot(exp, {"t1": "RUNNING", "t2": "RUNNING", "t3": "TERMINATED", "t4": "PENDING",
                           "t5": "RUNNING"})
    tracker = {"trials": {"t1": {"status": "pruned"}, "t2": {"status": "running"},
                          "t3": {"status": "completed"}, "t4": {"status": "failed"},
                          "t5": {"status": "completed"}}}
    before = json.loads(path.read_text())
    changed = reconcile_snapshot(exp, tracker)
    assert set(changed) == {"t1", "t4", "t5"}
    assert changed["t1"] == ("pruned", {"epoch": 2, "val_accuracy": 0.5})
    after = json.loads(path.read_text())
    got = {json.loads(e[0])["trial_id"]: json.loads(e[0])["status"] for e in after["trial_data"]}
    assert got == {"t1": "TERMINATED", "t2": "RUNNING", "t3": "TERMINATED", "t4": "ERROR",
                   "t5": "TERMINATED"}
    # nothing else changed; the original is kept next to it
    for b, a in zip(before["trial_data"], after["trial_data"]):
        sb, sa = json.loads(b[0]), json.loads(a[0])
        sb.pop("status"), sa.pop("status")
        assert sb == sa and b[1] == a[1]
    assert after["runner_data"] == before["runner_data"]
    assert json.loads(path.with_name(path.name + ".orig").read_text()) == before
    assert reconcile_snapshot(exp, tracker) == {}  # idempotent


def test_reconcile_without_snapshot_is_a_no_op(tmp_path: Path) -> None:
    assert reconcile_snapshot(tmp_path, {"trials": {"t": {"status": "pruned"}}}) == {}
