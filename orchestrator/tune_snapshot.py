"""A copy of Tune's snapshot taken as one file, so a resume never mixes two snapshots.

Tune's snapshot of a sweep is several files written one after the other into the driver's
staging folder: the trial table (``experiment_state-<session>.json``) and the searcher's state
(``basic-variant-state-<session>.json``, or ``search_gen_state-<session>.json`` and
``searcher-state-<session>.pkl``). Ray then uploads that folder into the experiment, file by
file (to an object store, or by a copy on disk). A driver killed while they are uploaded leaves
the trial table of one snapshot beside the searcher state of the next. ``Tuner.restore`` cannot
tell: it restores the searcher still counting a trial the trial table never had as running, and
with ``max_concurrent: 1`` that slot is never released, so the resumed sweep waits forever
without running anything (seen in CI: a bucket resume hung after trial 2 of a grid had started).

:class:`SnapshotCopy` is a Tune callback: Tune asks every callback for its state right after
it has written the trial table and the searcher's state, so in that call the files of one
snapshot are on disk together; it puts them in one zip file (``sweepcast_tune_snapshot.zip``,
written atomically) in the same staging folder, which Ray uploads like the rest, as a single
object. :func:`restore_snapshot` runs at ``sweepcast resume`` before anything reads Tune's
state: when the loose files differ from the copy, the copy's files replace them (each replaced
file kept as ``<name>.mixed``), so Tune restores one snapshot, at worst a second older, and the
tracker's record closes that window as for any snapshot (``orchestrator.resume``).
"""

from __future__ import annotations

import fnmatch
import io
import logging
import os
import time
import zipfile
from pathlib import Path
from typing import Any

log = logging.getLogger("sweepcast.tune_snapshot")

COPY_FILE = "sweepcast_tune_snapshot.zip"
TRIAL_TABLE = "experiment_state-*.json"
# Tune's files that Tuner.restore reads (the newest of each pattern), and how each is encoded:
# the trial table is JSON, the search algorithm's states are pickles (Ray's `_atomic_save`).
TUNE_STATE_FILES = ((TRIAL_TABLE, "json"), ("basic-variant-state-*.json", "pickle"),
                    ("search_gen_state-*.json", "pickle"), ("searcher-state-*.pkl", "pickle"))


def _session(table_name: str) -> str:
    """``experiment_state-<session>.json`` -> ``<session>``."""
    return table_name[len("experiment_state-"):-len(".json")]


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """The newest trial table in ``folder`` and the searcher files of the same session, by name
    (empty if there is no trial table)."""
    tables = sorted(folder.glob(TRIAL_TABLE))
    if not tables:
        return {}
    session = _session(tables[-1].name)
    files = {}
    for pattern, _ in TUNE_STATE_FILES:
        name = pattern.replace("*", session)
        try:
            files[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            continue
    return files


def write_copy(folder: Path) -> bool:
    """Write ``COPY_FILE`` in ``folder`` from the snapshot files there; False if none."""
    files = snapshot_files(folder)
    if not files:
        return False
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    tmp = folder / f"tmp-{COPY_FILE}"
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, folder / COPY_FILE)
    return True


def read_copy(path: Path) -> dict[str, bytes] | None:
    """The files in a ``COPY_FILE``, or None if it is missing, truncated or not one snapshot."""
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.testzip() is not None:
                return None
            files = {n: zf.read(n) for n in zf.namelist()}
    except FileNotFoundError:
        return None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        log.warning("cannot read %s (%s); Tune's loose state files are used as they are", path, e)
        return None
    tables = [n for n in files if fnmatch.fnmatch(n, TRIAL_TABLE)]
    if len(tables) != 1 or any(Path(n).name != n for n in files):
        return None
    return files


def restore_snapshot(exp_dir: Path) -> str | None:
    """Make Tune's state files in ``exp_dir`` one snapshot again, from ``COPY_FILE``.

    Files of the copy that differ from the loose ones (or are missing) replace them; loose files
    of the same kinds newer than the copy's are moved aside too (``<name>.mixed``): Tune reads
    the newest of each kind. Nothing changes if the loose files are the copy's, if there is no
    readable copy, or if the loose trial table is of a later session than the copy (a resumed
    sweep's first snapshot uploaded before its copy was). Returns a note for the user, or None.
    """
    exp_dir = Path(exp_dir)
    files = read_copy(exp_dir / COPY_FILE)
    if not files:
        return None
    table = next(n for n in files if fnmatch.fnmatch(n, TRIAL_TABLE))
    tables = sorted(exp_dir.glob(TRIAL_TABLE))
    if tables and tables[-1].name > table:
        return None
    aside: list[Path] = []
    for pattern, _ in TUNE_STATE_FILES:
        ours = next((n for n in files if fnmatch.fnmatch(n, pattern)), None)
        if ours is not None:
            aside += [p for p in exp_dir.glob(pattern) if p.name > ours]
    changed = [n for n, data in sorted(files.items())
               if not (exp_dir / n).is_file() or (exp_dir / n).read_bytes() != data]
    if not changed and not aside:
        return None
    for p in aside:
        os.replace(p, p.with_name(p.name + ".mixed"))
    for name in changed:
        path = exp_dir / name
        if path.is_file():
            path.with_name(name + ".mixed").write_bytes(path.read_bytes())
        tmp = path.with_name(name + ".tmp")
        tmp.write_bytes(files[name])
        os.replace(tmp, path)
    stamp = time.strftime("%H:%M:%S", time.localtime((exp_dir / COPY_FILE).stat().st_mtime))
    return (f"Tune's state files were not all of one snapshot (the driver most likely died while "
            f"they were uploaded): put back {', '.join(changed) or 'none'} from {COPY_FILE} "
            f"(written {stamp})"
            + (f" and set aside {', '.join(p.name for p in aside)}" if aside else "")
            + "; replaced files kept as <name>.mixed")


def snapshot_callback() -> Any:
    """A Tune callback that keeps ``COPY_FILE`` in Tune's staging folder (module docstring)."""
    from ray.tune import Callback

    class SnapshotCopy(Callback):
        def __init__(self) -> None:
            self._staging: str | None = None
            self._warned = False

        def __getstate__(self) -> dict[str, Any]:  # the staging folder is per driver
            return {"_staging": None, "_warned": False}

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            if self._staging is None and trials:
                self._staging = getattr(getattr(trials[0], "storage", None),
                                        "experiment_driver_staging_path", None)

        def get_state(self) -> dict | None:
            # Tune calls this in `TuneController.save_to_dir`, right after writing the trial
            # table and the searcher's state into the staging folder, on the same thread.
            if self._staging is not None:
                try:
                    write_copy(Path(self._staging))
                except OSError as e:
                    if not self._warned:
                        self._warned = True
                        log.warning("cannot copy Tune's snapshot in %s: %s", self._staging, e)
            return None  # nothing for Tune to keep: the copy is its own file

    return SnapshotCopy()
