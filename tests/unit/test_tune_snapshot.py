"""orchestrator.tune_snapshot: Tune's snapshot copied as one file, and put back at resume when
the loose files are of two snapshots (the fault test ``test_fault_mixed_snapshot`` drives it
through a real killed sweep)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

from orchestrator.tune_snapshot import (
    COPY_FILE,
    read_copy,
    restore_snapshot,
    snapshot_callback,
    write_copy,
)

S0, S1, S2 = "2026-11-26_10-00-00", "2026-11-26_11-00-00", "2026-11-26_12-00-00"


def _snapshot(folder: Path, session: str, trials: list[str], searcher: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = {"trial_data": [[json.dumps({"trial_id": t, "status": "RUNNING"}), "{}"]
                            for t in trials]}
    (folder / f"experiment_state-{session}.json").write_text(json.dumps(table))
    (folder / f"basic-variant-state-{session}.json").write_bytes(searcher)


def test_copy_holds_the_newest_session_only(tmp_path: Path) -> None:
    _snapshot(tmp_path, S0, ["a"], b"old")
    _snapshot(tmp_path, S1, ["a", "b"], b"new")
    (tmp_path / "sweepcast_tracker.json").write_text("{}")
    assert write_copy(tmp_path)
    files = read_copy(tmp_path / COPY_FILE)
    assert sorted(files) == [f"basic-variant-state-{S1}.json", f"experiment_state-{S1}.json"]
    assert files[f"basic-variant-state-{S1}.json"] == b"new"
    assert not (tmp_path / f"tmp-{COPY_FILE}").exists()


def test_no_trial_table_no_copy(tmp_path: Path) -> None:
    (tmp_path / f"basic-variant-state-{S1}.json").write_bytes(b"x")
    assert not write_copy(tmp_path)
    assert not (tmp_path / COPY_FILE).exists()


def test_mixed_loose_files_are_put_back_from_the_copy(tmp_path: Path) -> None:
    _snapshot(tmp_path, S1, ["a"], b"live: a")
    write_copy(tmp_path)  # the snapshot with `a` alone
    table = tmp_path / f"experiment_state-{S1}.json"
    copied = table.read_bytes()
    # the kill: the next snapshot's searcher state arrived, its trial table did not; and a
    # half-written next session's searcher file
    (tmp_path / f"basic-variant-state-{S1}.json").write_bytes(b"live: b")
    (tmp_path / f"basic-variant-state-{S2}.json").write_bytes(b"half")
    note = restore_snapshot(tmp_path)
    assert note is not None
    assert f"put back basic-variant-state-{S1}.json from {COPY_FILE}" in note  # the table was ok
    assert f"set aside basic-variant-state-{S2}.json" in note
    assert (tmp_path / f"basic-variant-state-{S1}.json").read_bytes() == b"live: a"
    assert (tmp_path / f"basic-variant-state-{S1}.json.mixed").read_bytes() == b"live: b"
    assert not (tmp_path / f"basic-variant-state-{S2}.json").exists()  # Tune reads the newest
    assert (tmp_path / f"basic-variant-state-{S2}.json.mixed").read_bytes() == b"half"
    assert table.read_bytes() == copied
    assert restore_snapshot(tmp_path) is None  # one snapshot again: nothing more to do


def test_a_missing_loose_file_is_written(tmp_path: Path) -> None:
    _snapshot(tmp_path, S1, ["a"], b"s")
    write_copy(tmp_path)
    (tmp_path / f"basic-variant-state-{S1}.json").unlink()
    assert restore_snapshot(tmp_path) is not None
    assert (tmp_path / f"basic-variant-state-{S1}.json").read_bytes() == b"s"


def test_matching_files_are_left_alone(tmp_path: Path) -> None:
    _snapshot(tmp_path, S1, ["a"], b"s")
    write_copy(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert restore_snapshot(tmp_path) is None
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_no_copy_or_a_truncated_one_changes_nothing(tmp_path: Path) -> None:
    _snapshot(tmp_path, S1, ["a"], b"s")
    assert restore_snapshot(tmp_path) is None  # a sweep from before the copy existed
    write_copy(tmp_path)
    (tmp_path / f"basic-variant-state-{S1}.json").write_bytes(b"other")
    whole = (tmp_path / COPY_FILE).read_bytes()
    (tmp_path / COPY_FILE).write_bytes(whole[: len(whole) // 2])
    assert read_copy(tmp_path / COPY_FILE) is None
    assert restore_snapshot(tmp_path) is None
    assert (tmp_path / f"basic-variant-state-{S1}.json").read_bytes() == b"other"


def test_a_later_sessions_trial_table_wins_over_a_stale_copy(tmp_path: Path) -> None:
    _snapshot(tmp_path, S1, ["a"], b"s1")
    write_copy(tmp_path)
    _snapshot(tmp_path, S2, ["a", "b"], b"s2")  # a resumed sweep's snapshot, its copy not yet up
    assert restore_snapshot(tmp_path) is None
    assert (tmp_path / f"basic-variant-state-{S2}.json").read_bytes() == b"s2"


def test_a_copy_with_foreign_members_is_ignored(tmp_path: Path) -> None:
    _snapshot(tmp_path, S1, ["a"], b"s")
    with zipfile.ZipFile(tmp_path / COPY_FILE, "w") as zf:
        zf.writestr(f"experiment_state-{S1}.json", "{}")
        zf.writestr("../escape.json", "x")
    assert read_copy(tmp_path / COPY_FILE) is None
    assert restore_snapshot(tmp_path) is None
    assert not (tmp_path.parent / "escape.json").exists()


def test_callback_writes_the_copy_when_tune_asks_for_its_state(tmp_path: Path) -> None:
    from ray import cloudpickle

    staging = tmp_path / "driver_artifacts"
    _snapshot(staging, S1, ["a"], b"s")
    cb = snapshot_callback()
    assert cb.get_state() is None and not (staging / COPY_FILE).exists()  # no trial seen yet
    trial = SimpleNamespace(storage=SimpleNamespace(experiment_driver_staging_path=str(staging)))
    cb.on_step_begin(1, [trial])
    assert cb.get_state() is None  # Tune keeps nothing for it: the copy is its own file
    assert sorted(read_copy(staging / COPY_FILE)) == [f"basic-variant-state-{S1}.json",
                                                      f"experiment_state-{S1}.json"]
    clone = cloudpickle.loads(cloudpickle.dumps(cb))  # in tuner.pkl: not this driver's folder
    assert clone._staging is None and clone.get_state() is None
