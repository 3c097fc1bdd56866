"""`orchestrator.resume.repair_tune_state`: a Tune state file truncated by a driver killed while
Ray copied it into the experiment folder is put back from Ray's staging copy, or the resume stops
naming the file. Real files, Ray's own pickler; the layout of the staging folder is Ray 2.60's
(``session_*/artifacts/<stamp>/<experiment>/driver_artifacts``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ray import cloudpickle

from orchestrator.resume import ResumeError, repair_tune_state, state_file_error

STATE = {"_uuid_prefix": "abc", "_total_samples": 6, "_iterators": [list(range(50))]}


def _experiment(tmp_path: Path, name: str = "exp") -> Path:
    exp = tmp_path / "results" / name
    exp.mkdir(parents=True)
    (exp / "experiment_state-2026-11-26_10-00-00.json").write_text(
        json.dumps({"trial_data": [], "runner_data": {}}))
    (exp / "basic-variant-state-2026-11-26_10-00-00.json").write_bytes(cloudpickle.dumps(STATE))
    return exp


def _staging(root: Path, name: str, fname: str, data: bytes, session: str = "session_1",
             stamp: str = "2026-11-26_10-00-00") -> Path:
    d = root / session / "artifacts" / stamp / name / "driver_artifacts"
    d.mkdir(parents=True, exist_ok=True)
    (d / fname).write_bytes(data)
    return d / fname


def test_whole_files_are_left_alone(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    before = {p.name: p.read_bytes() for p in exp.iterdir()}
    assert repair_tune_state(exp, [tmp_path / "ray"]) == []
    assert {p.name: p.read_bytes() for p in exp.iterdir()} == before


@pytest.mark.parametrize("cut", [0, 1, 20, -1])
def test_a_truncated_searcher_state_is_detected(tmp_path: Path, cut: int) -> None:
    data = cloudpickle.dumps(STATE)
    p = tmp_path / "basic-variant-state-x.json"
    p.write_bytes(data[:cut])  # empty, one byte, a prefix, all but the STOP opcode
    assert state_file_error(p, "pickle") is not None
    p.write_bytes(data)
    assert state_file_error(p, "pickle") is None


def test_a_truncated_searcher_state_is_restored_from_the_staging_copy(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    name = "basic-variant-state-2026-11-26_10-00-00.json"
    whole = cloudpickle.dumps(STATE)
    (exp / name).write_bytes(whole[: len(whole) // 2])  # the copy the kill interrupted
    roots = [tmp_path / "ray"]
    _staging(roots[0], "exp", name, whole)
    _staging(roots[0], "other-exp", name, b"not this experiment's")
    notes = repair_tune_state(exp, roots)
    assert len(notes) == 1 and name in notes[0] and "truncated" in notes[0]
    assert cloudpickle.loads((exp / name).read_bytes()) == STATE  # Tune can read it again
    assert (exp / (name + ".truncated")).read_bytes() == whole[: len(whole) // 2]
    assert repair_tune_state(exp, roots) == []  # repaired once, whole since


def test_the_newest_complete_staging_copy_wins(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    name = "basic-variant-state-2026-11-26_10-00-00.json"
    (exp / name).write_bytes(b"")
    root = tmp_path / "ray"
    old = _staging(root, "exp", name, cloudpickle.dumps({"v": "old"}), session="session_1")
    new = _staging(root, "exp", name, cloudpickle.dumps({"v": "new"}), session="session_2")
    broken = _staging(root, "exp", name, cloudpickle.dumps({"v": "newest"})[:5], session="session_3")
    for i, p in enumerate((old, new, broken)):
        os.utime(p, (1000 + i, 1000 + i))
    repair_tune_state(exp, [root])
    assert cloudpickle.loads((exp / name).read_bytes()) == {"v": "new"}


def test_no_complete_copy_stops_the_resume_naming_the_file(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    snap = exp / "experiment_state-2026-11-26_10-00-00.json"
    snap.write_text('{"trial_data": [["{\\"trial_id\\"')  # JSON cut mid-way
    root = tmp_path / "ray"
    _staging(root, "exp", snap.name, b'{"trial_data": [')  # the staging copy is no better
    with pytest.raises(ResumeError) as e:
        repair_tune_state(exp, [root])
    msg = str(e.value)
    assert str(snap) in msg and "cannot be read" in msg and str(root) in msg
    assert "nothing was resumed" in msg
    assert snap.read_text().startswith('{"trial_data"') and not (exp / (snap.name + ".truncated")).exists()


def test_only_the_newest_file_of_a_kind_is_checked(tmp_path: Path) -> None:
    """Tune reads the greatest name of each pattern; an older session's file is not read."""
    exp = _experiment(tmp_path)
    old = exp / "basic-variant-state-2026-11-25_09-00-00.json"
    old.write_bytes(b"\x80\x05")
    assert repair_tune_state(exp, [tmp_path / "ray"]) == []
    assert old.read_bytes() == b"\x80\x05"


def test_a_mirror_names_its_experiment(tmp_path: Path) -> None:
    """An object-store experiment's local mirror has another folder name than the experiment."""
    exp = _experiment(tmp_path, name="mirror-3f2a")
    name = "basic-variant-state-2026-11-26_10-00-00.json"
    (exp / name).write_bytes(b"\x80")
    root = tmp_path / "ray"
    _staging(root, "my-sweep", name, cloudpickle.dumps(STATE))
    with pytest.raises(ResumeError):
        repair_tune_state(exp, [root])
    assert repair_tune_state(exp, [root], name="my-sweep")
    assert cloudpickle.loads((exp / name).read_bytes()) == STATE


def test_a_truncated_tuner_pkl_stops_before_anything_starts(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """tuner.pkl is written once, straight into the folder, as the sweep starts: no staging copy.
    The resume says so before it contacts MLflow or starts Ray."""
    from orchestrator import sweep
    from orchestrator.config import SweepConfig
    from orchestrator.resume import prepare_resumable, resume_sweep

    cfg = SweepConfig.model_validate({
        "name": "cut", "trainable": "trials.examples.mlp:train", "metric": "val_accuracy",
        "mode": "max", "max_epochs": 3, "num_samples": 2,
        "search": {"algorithm": "random", "seed": 0,
                   "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}}})
    exp = tmp_path / "cut"
    prepare_resumable(exp, cfg)
    (exp / sweep.TRACKER_STATE_FILE).write_text(json.dumps({"trials": {}}))
    (exp / "tuner.pkl").write_bytes(cloudpickle.dumps({"_run_config": list(range(100))})[:40])

    def started(*a: object, **k: object) -> None:
        raise AssertionError("the resume went on past a truncated tuner.pkl")

    monkeypatch.setattr(sweep, "make_tracker", started)
    monkeypatch.setattr(sweep, "init_ray", started)
    with pytest.raises(ResumeError) as e:
        resume_sweep(exp, out=None)
    assert str(exp / "tuner.pkl") in str(e.value) and "nothing was resumed" in str(e.value)
