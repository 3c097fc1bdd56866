"""Resume an interrupted sweep: ``sweepcast resume NAME_OR_PATH``.

What a sweep leaves in its experiment folder (``<storage_path>/<name>[_<stamp>]``) for this:

* ``sweepcast_sweep.json`` (written at sweep start by :func:`prepare_resumable`): the validated
  config as plain data, so a resume needs nothing but the folder.
* ``sweepcast_tracker.json`` (the tracker's ``state()``, rewritten by the tracker whenever a run
  is created or ends): the MLflow experiment, parent run id and trial -> run id / status.
* ``sweepcast_curve_scheduler.json`` (the curve scheduler's JSON state: curves, incumbent,
  verdicts), which the scheduler reloads by itself.
* Tune's own state (``tuner.pkl``, ``experiment_state-*.json``, the searcher's state) and every
  trial's checkpoints.

:func:`resume_sweep` restores the tracker from its state (so ``start_sweep`` reopens the same
parent run and a trial keeps its run), rebuilds the ledger of trials that ended before the
interruption, restores the Tuner with ``Tuner.restore`` (unfinished trials resume from their
last checkpoint; finished, pruned and failed ones stay as they were) and runs it to the end.

Consistency window: Tune snapshots its trial table at most every ``TUNE_GLOBAL_CHECKPOINT_S``
seconds (:func:`prepare_resumable` sets 1 s unless the user set it); the tracker writes its
state the moment a trial ends. A trial that ended after Tune's last snapshot would be restored
by Tune as unfinished and run again, undoing e.g. a pruning decision. :func:`reconcile_snapshot`
closes that window: before ``Tuner.restore`` it marks such trials ended in Tune's snapshot
(the tracker's record wins), and once the restored sweep starts their slots in the searcher's
concurrency limit are released (:func:`_release_callback`).

Object-store experiments (``storage_path: s3://...``): ``NAME_OR_PATH`` may be the experiment's
URI (``s3://bucket/prefix/NAME``), or a name looked up under a URI ``--storage-path``. The
experiment's top-level files (sweepcast's state and Tune's snapshot) are downloaded into a fresh
local mirror (:class:`orchestrator.storage.Mirror`) where the steps above run on them; the
reconciled snapshot is uploaded back before ``Tuner.restore`` reads the experiment from the
store, and the mirror is kept uploaded until the resumed sweep ends.

Truncated Tune state: Ray writes its snapshot and the searcher's state atomically in the driver's
staging folder (``<ray temp>/session_*/artifacts/<stamp>/<experiment>/driver_artifacts``) and
then *copies* them into the experiment folder, which is not atomic: a driver killed mid-copy
leaves a truncated file that ``Tuner.restore`` cannot read. :func:`repair_tune_state` checks the
newest file of each kind before anything is restored and puts back the staging copy of a
truncated one (the broken file kept as ``<name>.truncated``); with no complete copy left it stops
with a :class:`ResumeError` naming the file, before any run is created or trial started.
"""

from __future__ import annotations

import json
import logging
import os
import pickletools
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from orchestrator.tracking.base import mask_uri, metric_key
from orchestrator.tune_snapshot import TUNE_STATE_FILES, restore_snapshot, snapshot_callback

log = logging.getLogger("sweepcast.resume")

MANIFEST_FILE = "sweepcast_sweep.json"
MANIFEST_VERSION = 1
TERMINAL = ("completed", "pruned", "failed")


class ResumeError(RuntimeError):
    """The sweep cannot be resumed; the message says why and what was looked at."""


def prepare_resumable(exp_dir: Path, cfg: Any) -> Path:
    """Write ``sweepcast_sweep.json`` into ``exp_dir`` and shorten Tune's snapshot period.

    Called by the runner before ``Tuner.fit``. Returns the manifest path.
    """
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Frequent snapshots are what we want here; Tune would warn about them on every trial.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "version": MANIFEST_VERSION,
        "name": cfg.name,
        "experiment_dir": str(exp_dir),
        "created_unix": time.time(),
        "config": cfg.model_dump(mode="json"),
    }
    path = exp_dir / MANIFEST_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def find_experiment(target: str, storage_path: str | None = None) -> Path | str:
    """The experiment folder named by ``target``: a folder (or its manifest file), an
    object-store URI of one (returned as given), or a sweep name looked up under
    ``storage_path`` (default ``$SWEEPCAST_STORAGE_PATH``, else ``./sweepcast_results``; a folder
    or a URI) as ``NAME`` or ``NAME_<YYYYmmdd-HHMMSS>``, the most recently started one winning.

    Raises:
        ResumeError: nothing resumable found (the message lists where it looked), or the
            object store cannot be used (the message names it, credentials masked).
    """
    from orchestrator.storage import is_uri
    from orchestrator.sweep import DEFAULT_STORAGE

    if is_uri(target):
        exp = _open_remote(target, "NAME_OR_PATH")
        if not exp.exists(MANIFEST_FILE):
            raise ResumeError(f"{exp.shown} is not a sweepcast experiment (no {MANIFEST_FILE})")
        return target
    storage_raw = storage_path or os.environ.get("SWEEPCAST_STORAGE_PATH") or DEFAULT_STORAGE
    if "/" not in target and not target.startswith(".") and is_uri(storage_raw):
        return _find_remote(target, storage_raw)
    p = Path(target).expanduser()
    if p.is_file() and p.name == MANIFEST_FILE:
        p = p.parent
    if p.is_dir():
        if (p / MANIFEST_FILE).is_file():
            return p.resolve()
        raise ResumeError(f"{p} is not a sweepcast experiment folder (no {MANIFEST_FILE})")
    if "/" in target or target.startswith("."):
        raise ResumeError(f"no experiment folder at {p}")
    storage = Path(storage_raw.removeprefix("file://")).expanduser().resolve()
    pat = _name_pattern(target)
    found = [d for d in storage.glob(f"{target}*")
             if pat.match(d.name) and (d / MANIFEST_FILE).is_file()]
    if not found:
        raise ResumeError(f"no resumable sweep {target!r} under {storage} "
                          f"(looked for {target}/ and {target}_<stamp>/ holding {MANIFEST_FILE})")
    return max(found, key=lambda d: _created(d)).resolve()


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}(_\d{{8}}-\d{{6}})?$")


def _created(d: Path) -> float:
    try:
        return float(json.loads((d / MANIFEST_FILE).read_text()).get("created_unix", 0))
    except (OSError, ValueError):
        return 0.0


def _open_remote(uri: str, what: str) -> Any:
    from orchestrator.storage import StorageError, open_remote

    try:
        return open_remote(uri)
    except StorageError as e:
        raise ResumeError(f"{what}: {e}") from None


def _find_remote(name: str, storage_uri: str) -> str:
    """The URI of the latest resumable sweep ``name`` under the object-store ``storage_uri``."""
    root = _open_remote(storage_uri, "storage_path")
    pat = _name_pattern(name)
    found: list[tuple[float, str]] = []
    try:
        for info in root.listdir():
            if not pat.match(info.base_name):
                continue
            data = root.child(info.base_name).read_bytes(MANIFEST_FILE)
            if data is None:
                continue
            try:
                created = float(json.loads(data).get("created_unix", 0))
            except ValueError:
                created = 0.0
            found.append((created, info.base_name))
    except OSError as e:
        raise ResumeError(f"storage_path: cannot list {root.shown}: "
                          f"{mask_uri(str(e))[:300]}") from None
    if not found:
        raise ResumeError(f"no resumable sweep {name!r} under {root.shown} (looked for {name}/ "
                          f"and {name}_<stamp>/ holding {MANIFEST_FILE})")
    return root.child(max(found)[1]).uri


def load_manifest(exp_dir: Path) -> Any:
    """The ``SweepConfig`` recorded in ``exp_dir`` (re-validated, trainable importable)."""
    from orchestrator.config import ConfigError, SweepConfig
    from orchestrator.config_errors import check_trainable

    path = Path(exp_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ResumeError(f"cannot read {path}: {e}") from None
    if data.get("version") != MANIFEST_VERSION:
        raise ResumeError(f"{path}: unsupported manifest version {data.get('version')!r}")
    from pydantic import ValidationError

    try:
        cfg = SweepConfig.model_validate_json(json.dumps(data["config"]))
    except (ValidationError, KeyError) as e:
        raise ResumeError(f"{path}: the recorded config no longer validates: {e}") from None
    try:
        probs = check_trainable(cfg, {})
    except ConfigError as e:  # pragma: no cover - defensive
        probs = e.problems
    if probs:
        raise ResumeError(f"{path}: " + "; ".join(str(p) for p in probs))
    return cfg


def reconcile_snapshot(exp_dir: Path, tracker_state: dict[str, Any]) -> dict[str, Any]:
    """Mark trials that the tracker saw end, but Tune's newest snapshot still holds as
    unfinished, as ended in that snapshot (TERMINATED, or ERROR for a failed trial).

    The snapshot is edited in place (the original kept as ``<name>.orig``); only the trials'
    ``status`` fields change. Returns ``{trial_id: (tracker status, last result or None)}`` for
    the trials changed.
    """
    statuses = {t: i.get("status") for t, i in (tracker_state.get("trials") or {}).items()}
    snaps = sorted(Path(exp_dir).glob("experiment_state-*.json"))
    if not snaps:
        return {}
    path = snaps[-1]
    data = json.loads(path.read_text())
    changed: dict[str, Any] = {}
    for entry in data.get("trial_data", []):
        state = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
        tid = state.get("trial_id")
        tracked = statuses.get(tid)
        if tracked in TERMINAL and state.get("status") not in ("TERMINATED", "ERROR"):
            state["status"] = "ERROR" if tracked == "failed" else "TERMINATED"
            entry[0] = json.dumps(state, indent=2) if isinstance(entry[0], str) else state
            meta = entry[1]
            if isinstance(meta, str):
                try:
                    meta = json.loads(meta)
                except ValueError:
                    meta = {}
            last = (meta or {}).get("last_result") if isinstance(meta, dict) else None
            changed[tid] = (tracked, last if isinstance(last, dict) else None)
    if changed:
        orig = path.with_name(path.name + ".orig")
        if not orig.exists():
            orig.write_text(path.read_text())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    return changed


def state_file_error(path: Path, kind: str) -> str | None:
    """Why Tune could not read ``path`` (a truncated or empty file), or None if it is whole.

    A pickle is walked opcode by opcode (``pickletools``), without importing the searcher's
    classes, so a file is judged on its bytes alone."""
    try:
        data = path.read_bytes()
        if not data:
            return "the file is empty"
        if kind == "json":
            json.loads(data)
        else:
            for _ in pickletools.genops(data):
                pass
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return f"{type(e).__name__}: {str(e)[:200]}"
    return None


def ray_temp_roots(extra: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """Folders that may hold Ray sessions (``session_*``) on this host: ``extra`` (e.g. the live
    session's parent), ``$RAY_TMPDIR/ray`` and the system temp folder's ``ray``."""
    roots = list(extra)
    if os.environ.get("RAY_TMPDIR"):
        roots.append(Path(os.environ["RAY_TMPDIR"]) / "ray")
    roots.append(Path(tempfile.gettempdir()) / "ray")
    return list(dict.fromkeys(roots))  # each once, in this order


def _live_session_root() -> list[Path]:
    """The parent folder of the connected Ray session's folder (a node started with
    ``--temp-dir`` keeps its sessions there); none if Ray does not say."""
    try:
        import ray

        node = ray._private.worker._global_node  # Ray 2.60: the connected node's paths
        return [Path(node.get_session_dir_path()).parent] if node is not None else []
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - a different Ray
        return []


def repair_tune_state(exp_dir: Path, roots: list[Path], name: str | None = None) -> list[str]:
    """Check the newest of each of Tune's state files in ``exp_dir`` (``TUNE_STATE_FILES``);
    replace a truncated one by a complete copy of the same name from a Ray driver staging folder
    of the experiment ``name`` (default the folder's name; an object-store experiment's local
    mirror has another) under ``roots``, the newest such copy. Returns one note per file
    repaired.

    Raises:
        ResumeError: a file is truncated and no complete copy is left; it names the file.
    """
    notes = []
    for pattern, kind in TUNE_STATE_FILES:
        found = sorted(Path(exp_dir).glob(pattern))
        if not found:
            continue
        path = found[-1]  # the one Tune reads (`_load_newest_checkpoint`: the greatest name)
        why = state_file_error(path, kind)
        if why is None:
            continue
        copies = []
        for root in roots:
            copies += root.glob(f"session_*/artifacts/*/{name or Path(exp_dir).name}/driver_artifacts/"
                                f"{path.name}")
        copies.sort(key=lambda c: c.stat().st_mtime, reverse=True)
        good = next((c for c in copies if state_file_error(c, kind) is None), None)
        if good is None:
            where = ", ".join(str(r) for r in roots)
            raise ResumeError(
                f"Tune's state file {path} cannot be read ({why}): the driver was most likely "
                "killed while Ray copied it into the experiment folder, and no complete copy of it "
                f"is left in a Ray staging folder under {where}. Tune cannot restore the sweep "
                "from it; nothing was resumed. Restore the file from a backup, or run the sweep "
                "again under a new name.")
        broken = path.with_name(path.name + ".truncated")
        broken.write_bytes(path.read_bytes())  # a copy: `path` exists throughout, as in reconcile
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(good.read_bytes())
        os.replace(tmp, path)
        notes.append(f"{path.name} was truncated ({why}); restored Ray's complete staging copy "
                     f"{good} (the broken file kept as {broken.name})")
    return notes


def searcher_live_ids(search_alg: Any) -> set[str] | None:
    """The trial ids a restored search algorithm counts as running (its concurrency slots):
    Ray 2.60's variant generator keeps them itself, a ``ConcurrencyLimiter`` around a searcher
    keeps them in the limiter. None if this search algorithm keeps no such set."""
    for obj, attr in ((search_alg, "_live_trials"),  # BasicVariantGenerator
                      (search_alg, "live_trials"),  # ConcurrencyLimiter
                      (getattr(search_alg, "searcher", None), "live_trials")):  # its generator
        live = getattr(obj, attr, None)
        if isinstance(live, set):
            return live
    return None


def _release_callback(search_alg: Any, ended: dict[str, Any]) -> Any:
    """A Tune callback for the first step of a resumed sweep: frees the searcher's concurrency
    slots held by trials that are not running in the restored trial table.

    Those are the trials :func:`reconcile_snapshot` ended (the searcher's state was saved while
    they were live), trials the table has as ended when the searcher state is older than it,
    and trials the table never had when the searcher state is newer (a snapshot whose files
    were not all written or uploaded: ``orchestrator.tune_snapshot`` puts one snapshot back
    when it can). A slot never freed is a slot the sweep never uses again; with
    ``max_concurrent: 1`` the sweep would wait forever.
    """
    from ray.tune import Callback

    class ReleaseSearcherSlots(Callback):
        def __init__(self) -> None:
            self._search_alg = search_alg
            self._ended = dict(ended)
            self._done = False

        def __getstate__(self) -> dict[str, Any]:  # never pickle the searcher twice
            return {"_search_alg": None, "_ended": {}, "_done": True}

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            if self._done or self._search_alg is None:
                return
            self._done = True
            table = {t.trial_id: t for t in trials}
            running = {tid for tid, t in table.items()
                       if tid not in self._ended and t.status not in ("TERMINATED", "ERROR")}
            live = searcher_live_ids(self._search_alg)
            stale = set(self._ended) | ((live or set()) - running)
            for tid in sorted(stale):
                if tid in self._ended:
                    status, last = self._ended[tid]
                    result, error = (last if status == "completed" else None), status == "failed"
                elif tid in table:
                    t = table[tid]
                    result, error = (t.last_result or None), t.status == "ERROR"
                else:
                    result, error = None, True
                    log.warning("trial %s held a slot of the searcher but is not in Tune's "
                                "restored trial table: slot released", tid)
                try:
                    self._search_alg.on_trial_complete(tid, result=result, error=error)
                except Exception:
                    log.warning("could not release %s in the searcher", tid, exc_info=True)
                if live is not None:
                    live.discard(tid)  # the slot goes even if the searcher refused the result

    return ReleaseSearcherSlots()


def _close_lost_callback(tracker: Any, lost: list[str]) -> Any:
    """A Tune callback that, as the resumed sweep ends, closes the runs of ``lost`` trials that
    Tune did not run again: trials that started after Tune's last snapshot (the tracker opened
    their run; Tune's snapshot has no record of them, so nothing can resume them). A grid
    searcher issues such a trial again under the same id, and its run continues instead."""
    from ray.tune import Callback

    from orchestrator.tracking.base import TAG_STOP_REASON

    class CloseLostTrials(Callback):
        def __init__(self, tracker: Any, lost: list[str]) -> None:
            self._tracker, self._lost = tracker, list(lost)

        def __getstate__(self) -> dict[str, Any]:  # holds the live tracker: never pickled
            return {"_tracker": None, "_lost": []}

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            ran = {t.trial_id for t in trials}
            for tid in self._lost:
                if tid in ran or self._tracker.trial_status(tid) != "running":
                    continue
                try:
                    self._tracker.set_tags(tid, {TAG_STOP_REASON: LOST_REASON})
                    self._tracker.end_trial(tid, "failed")
                except Exception:
                    log.warning("could not close the run of lost trial %s", tid, exc_info=True)

    return CloseLostTrials(tracker, lost)


LOST_REASON = ("lost: started after Tune's last snapshot, so Tune had no record of it to "
               "resume; the searcher did not issue it again")


def _own_files() -> tuple[str, ...]:
    """sweepcast's top-level state files that its own code rewrites during a sweep."""
    from orchestrator.scoring_tune import STATE_FILE as SCORING_STATE
    from orchestrator.sweep import LEDGER_FILE, TRACKER_STATE_FILE

    return (MANIFEST_FILE, TRACKER_STATE_FILE, LEDGER_FILE, SCORING_STATE)


def _unstage_callback(names: tuple[str, ...]) -> Any:
    """A Tune callback that, at the restored sweep's first step, deletes ``names`` from Tune's
    driver staging folder.

    ``Tuner.restore`` downloads every top-level ``*.json`` of the experiment into that folder
    and Tune then uploads the folder back to the experiment at every snapshot: without this,
    the copies of sweepcast's state files taken at restore would overwrite the ones sweepcast
    keeps writing (the tracker's run ids, the resume count). The first step begins before
    Tune's first snapshot. The curve scheduler's state is not in ``names``: it lives in the
    staging folder by design.
    """
    from ray.tune import Callback

    class UnstageSweepcastFiles(Callback):
        def __init__(self) -> None:
            self._names = tuple(names)
            self._done = False

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            if self._done or not trials:
                return
            self._done = True
            staging = getattr(getattr(trials[0], "storage", None),
                              "experiment_driver_staging_path", None)
            for name in self._names if staging else ():
                try:
                    (Path(staging) / name).unlink()
                except FileNotFoundError:
                    pass
                except OSError:
                    log.warning("could not remove %s from Tune's staging folder", name,
                                exc_info=True)

    return UnstageSweepcastFiles()


def _seed_ledger(ledger: Any, exp_dir: Path, tracker_state: dict[str, Any],
                 max_epochs: int, lasts: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Fill ``ledger`` with the trials Tune recorded (and ``lasts`` with the last result in
    Tune's snapshot of each one Tune resumes); return ids of the window mismatches."""
    from ray.tune import ExperimentAnalysis

    from orchestrator.callbacks import _error_text

    statuses = {t: i.get("status") for t, i in (tracker_state.get("trials") or {}).items()}
    try:
        ea = ExperimentAnalysis(str(exp_dir))
    except Exception as e:  # noqa: BLE001 - no snapshot yet: nothing to seed
        log.warning("no Tune snapshot to read trials from (%s)", e)
        return []
    mismatched = []
    for trial in ea.trials:
        tid = trial.trial_id
        rec = ledger.record(tid)
        rec.params = dict(trial.config or {})
        # Tune keeps per-metric max/min/last and the step count in its own trial state, so
        # this needs neither result.json nor progress.csv in the trial folders.
        stats = (trial.metric_analysis or {}).get(ledger.metric) or {}
        if stats:
            rec.last = stats.get("last")
            rec.best = stats.get("max" if ledger.mode == "max" else "min")
        last = trial.last_result or {}
        epoch = last.get("epoch", last.get("training_iteration"))
        if isinstance(epoch, (int, float)):
            rec.epochs = int(epoch)
        rec.results = int(last.get("training_iteration") or 0)
        tracked_step = (tracker_state.get("last_step") or {}).get(tid)
        if isinstance(tracked_step, int) and tracked_step > rec.epochs:
            rec.epochs = tracked_step  # the tracker saw epochs after Tune's snapshot
        tracked = statuses.get(tid)
        tune_done = trial.status in ("TERMINATED", "ERROR")
        if lasts is not None and last and not tune_done:
            lasts[tid] = dict(last)
        if tune_done:
            if trial.status == "ERROR":
                rec.status = "failed"
                rec.error = (_error_text(trial).strip().splitlines() or ["error"])[-1][:200]
            elif tracked in TERMINAL:
                rec.status = tracked
            else:
                rec.status = "completed" if rec.epochs >= max_epochs else "pruned"
            rec.stopped_by_scheduler = rec.status == "pruned"
        else:
            rec.status = "running"  # resumed from its checkpoint: "restart" in the progress
            if tracked in TERMINAL:
                mismatched.append(tid)
    return mismatched


def _reclose_lost_ends(inner: Any, tracker_state: dict[str, Any], cfg: Any,
                       ledger: Any) -> list[str]:
    """Re-record the end of trials that the tracker ended before the crash but whose end
    never reached MLflow (the driver died with it still queued); returns their ids.

    Each such trial's run is read back with the tracker's MLflow client: a run whose MLflow
    status is still RUNNING (whatever its tags say: the tag and the status are sent
    separately) is ended again with the recorded status and summary.
    """
    client = getattr(inner, "_client", None)
    if client is None:
        return []
    fixed = []
    for tid, info in sorted((tracker_state.get("trials") or {}).items()):
        status, run_id = info.get("status"), info.get("run_id")
        if status not in TERMINAL or not run_id:
            continue
        try:
            if client.get_run(run_id).info.status != "RUNNING":
                continue
        except Exception:
            log.warning("could not read run %s of trial %s", run_id, tid, exc_info=True)
            continue
        r = ledger.trials.get(tid)
        summary: dict[str, float] = {}
        if r is not None:
            summary["epochs"] = float(r.epochs)
            if r.best is not None:
                summary[f"best_{cfg.metric}"] = r.best
        with inner._lock:  # end_trial is idempotent per status: let it record this end again
            inner._trial_status[tid] = "running"
        inner.end_trial(tid, status, summary)
        fixed.append(tid)
    return fixed


def _backfill_last_points(inner: Any, tracker: Any, lasts: dict[str, dict[str, Any]],
                          metric: str, time_attr: str) -> list[tuple[str, int]]:
    """Record each trial's last result in Tune's snapshot whose point never reached MLflow;
    returns ``(trial id, step)`` of those recorded.

    A trial resumed from the checkpoint of epoch k does not report epoch k again, and the killed
    driver may not have sent it yet (a trial that had ended is covered by the tracker's
    write-ahead copy; one still running is not). Tune keeps that result in its snapshot: it is
    sent now, with its original time, if the run's history of ``metric`` has no point at that
    step. One history read per trial in ``lasts`` (the ones Tune resumes), with the tracker's
    MLflow client.
    """
    from orchestrator.callbacks import _scalar, user_metrics

    client = getattr(inner, "_client", None)
    if client is None:
        return []
    done = []
    for tid, last in sorted(lasts.items()):
        run_id = inner.trial_run_id(tid)
        step = last.get(time_attr, last.get("training_iteration"))
        metrics = user_metrics(last, time_attr)
        if not run_id or not _scalar(step) or metric not in metrics:
            continue
        try:
            history = client.get_metric_history(run_id, metric_key(metric))
            if any(m.step == int(step) for m in history):
                continue
        except Exception:
            log.warning("could not read the history of run %s of trial %s", run_id, tid,
                        exc_info=True)
            continue
        ts = last.get("timestamp")
        tracker.log_metrics(tid, int(step), metrics,
                            timestamp_ms=int(ts * 1000) if _scalar(ts) else None)
        done.append((tid, int(step)))
    return done


def _record_runless(tracker: Any, runless: dict[str, Any], cfg: Any, ledger: Any) -> list[str]:
    """Create and end the runs of trials that ended before the crash but whose run never
    reached MLflow (their points were still queued in the dead driver); returns their ids."""
    done = []
    for tid, status in sorted(runless.items()):
        if status not in TERMINAL:
            continue  # an unfinished one gets its run when Tune starts it again
        r = ledger.trials.get(tid)
        params = dict(r.params) if r is not None else {}
        summary: dict[str, float] = {}
        if r is not None:
            summary["epochs"] = float(r.epochs)
            if r.best is not None:
                summary[f"best_{cfg.metric}"] = r.best
        try:
            tracker.start_trial(tid, params)
            tracker.end_trial(tid, status, summary)
        except Exception:
            log.warning("could not record trial %s", tid, exc_info=True)
            continue
        done.append(tid)
    return done


def _bump_resumes(exp_dir: Path) -> int:
    path = exp_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["resumes"] = int(data.get("resumes", 0)) + 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return data["resumes"]


def _callbacks_of(tuner: Any) -> list[Any]:
    try:
        return tuner._local_tuner._run_config.callbacks  # Ray 2.60's TunerInternal
    except AttributeError as e:  # pragma: no cover - a different Ray
        raise ResumeError(f"cannot reach the restored Tuner's callbacks on this Ray ({e})") from e


def resume_sweep(exp_dir: Path | str, *, out: TextIO | None = sys.stdout,
                 ray_address: str | None = None, force: bool = False) -> Any:
    """Finish the sweep in ``exp_dir`` (a folder, or an object-store URI of one); returns the
    runner's ``SweepResult``.

    ``force`` takes over the driver lock of a driver that looks alive or ran on another host
    (:mod:`orchestrator.driver_lock`); a dead driver's lock on this host is taken over anyway.

    Raises:
        ResumeError: the folder is not resumable (missing state, config no longer valid).
        SweepError: another driver holds the sweep, tracking or Ray unavailable, or Tune failed
            as a whole.
    """
    from orchestrator.storage import Mirror, is_uri, mirror_path
    from orchestrator.sweep import driver_lock

    if isinstance(exp_dir, str) and is_uri(exp_dir):
        remote = _open_remote(exp_dir, "NAME_OR_PATH")
        mirror = Mirror(remote, mirror_path(remote))
        # Locked before the mirror is replaced: a live driver on this host keeps its files.
        with driver_lock(mirror.local, force=force, remote=remote):
            try:
                mirror.pull()
            except OSError as e:
                raise ResumeError(f"cannot download the sweep state from {remote.shown}: "
                                  f"{mask_uri(str(e))[:300]}") from None
            cfg = load_manifest(mirror.local)
            with mirror:
                return _resume_locked(cfg, mirror.local, out, ray_address, mirror)
    exp_dir = Path(exp_dir).resolve()
    cfg = load_manifest(exp_dir)
    with driver_lock(exp_dir, force=force):
        return _resume_locked(cfg, exp_dir, out, ray_address)


def _resume_locked(cfg: Any, exp_dir: Path, out: TextIO | None, ray_address: str | None,
                   mirror: Any = None) -> Any:
    from orchestrator.sweep import TRACKER_STATE_FILE, init_ray, make_tracker

    state_path = exp_dir / TRACKER_STATE_FILE
    try:
        tracker_state = json.loads(state_path.read_text())
    except (OSError, ValueError) as e:
        raise ResumeError(f"cannot read the tracker state {state_path}: {e}") from None
    if not (exp_dir / "tuner.pkl").is_file():
        raise ResumeError(f"{exp_dir} holds no Tune state (tuner.pkl): the sweep never started")
    why = state_file_error(exp_dir / "tuner.pkl", "pickle")
    if why is not None:  # written once, straight into the folder, as the sweep starts: no copy
        raise ResumeError(f"Tune's state file {exp_dir / 'tuner.pkl'} cannot be read ({why}): the "
                          "driver was most likely killed while the sweep started; nothing was "
                          "resumed. Run the sweep again.")

    tracker = make_tracker(cfg, exp_dir)  # checks MLflow answers before Ray starts
    try:
        tracker.restore(tracker_state)
        # Trials whose run was never created in MLflow (the driver died with the creation
        # queued) are forgotten, so that they get a proper run when they start again, or
        # below (_record_runless) when they had already ended.
        runless = {t: i.get("status") for t, i in (tracker_state.get("trials") or {}).items()
                   if not i.get("run_id")}
        with tracker._lock:
            for t in runless:
                tracker._trial_status.pop(t, None)
                tracker._last_step.pop(t, None)
        from orchestrator import sweep

        quiet = getattr(sweep, "quiet_tune", None)  # the runner's Tune output settings
        if quiet is not None:
            quiet()
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        where = init_ray(ray_address)
        return _resume(cfg, tracker, tracker_state, exp_dir, out, where, runless, mirror)
    finally:
        tracker.close(timeout=60)


def _resume(cfg: Any, tracker: Any, tracker_state: dict[str, Any], exp_dir: Path,
            out: TextIO | None, where: str, runless: dict[str, Any], mirror: Any = None) -> Any:
    from ray import tune

    from orchestrator.callbacks import Ledger, SweepCallback
    from orchestrator.sweep import _say, fit_and_finish, load_trainable, location
    from orchestrator.tracking.registry import register_tracker

    key = str(exp_dir)
    inner = tracker
    try:  # the runner's live status line and plot artifacts, as in `sweepcast run`
        from orchestrator.progress import attach_views
    except ImportError:  # pragma: no cover
        attach_views = None
    if attach_views is not None:
        tracker, out = attach_views(cfg, tracker, out)
    ledger = Ledger(cfg.metric, cfg.mode, cfg.max_epochs)
    remote = None if mirror is None else mirror.remote
    mixed = restore_snapshot(exp_dir)
    repaired = repair_tune_state(exp_dir, ray_temp_roots(_live_session_root()),
                                 None if remote is None else Path(remote.path).name)
    ended = reconcile_snapshot(exp_dir, tracker_state)
    if mirror is not None:  # Tune restores from the store: the reconciled snapshot goes there
        mirror.push(strict=True)
    lasts: dict[str, dict[str, Any]] = {}
    mismatched = _seed_ledger(ledger, exp_dir, tracker_state, cfg.max_epochs, lasts)
    lost = sorted(t for t, i in (tracker_state.get("trials") or {}).items()
                  if i.get("status") == "running" and i.get("run_id") and t not in ledger.trials)
    trainable = tune.with_resources(
        load_trainable(cfg), {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu}
    )
    where_tune: dict[str, Any] = ({"path": str(exp_dir)} if remote is None else
                                  {"path": remote.path, "storage_filesystem": remote.fs})
    tuner = tune.Tuner.restore(**where_tune, trainable=trainable, resume_unfinished=True,
                               resume_errored=False, restart_errored=False)
    callbacks = _callbacks_of(tuner)
    keys = {key}
    time_attr = "epoch"
    for i, cb in enumerate(list(callbacks)):
        if isinstance(cb, SweepCallback):
            keys.add(cb.sweep_key)  # the folder may have moved: the scheduler holds the old key
            time_attr = cb.time_attr
            callbacks[i] = SweepCallback(key, ledger, time_attr=cb.time_attr, out=out)
    callbacks.insert(0, _unstage_callback(_own_files()))
    if not any(type(cb).__name__ == "SnapshotCopy" for cb in callbacks):
        callbacks.append(snapshot_callback())  # a sweep started before sweepcast kept the copy
    if lost:
        callbacks.append(_close_lost_callback(tracker, lost))
    try:
        search_alg = tuner._local_tuner._tune_config.search_alg  # Ray 2.60's TunerInternal
    except AttributeError:  # pragma: no cover - a different Ray
        search_alg = None
    if search_alg is not None:
        callbacks.append(_release_callback(search_alg, ended))
    for k in keys:
        register_tracker(k, tracker)
    resumes = _bump_resumes(exp_dir)
    parent = tracker.start_sweep(
        cfg.name, cfg.model_dump(mode="json"), params=None,
        tags={"sweepcast.experiment_dir": location(exp_dir, remote), "sweepcast.ray": where,
              "sweepcast.resumes": str(resumes)},
    )
    reclosed = _reclose_lost_ends(inner, tracker_state, cfg, ledger)
    backfilled = _backfill_last_points(inner, tracker, lasts, cfg.metric, time_attr)
    recorded = _record_runless(tracker, runless, cfg, ledger)
    counts = ledger.counts()
    _say(out, f"resuming sweep {cfg.name} from {location(exp_dir, remote)} on {where}")
    _say(out, f"tracking: {getattr(tracker, 'masked_uri', '')}, parent run {parent} (reused)")
    _say(out, f"before the interruption: {counts['completed']} completed, {counts['pruned']} "
              f"pruned, {counts['failed']} failed; {counts['running']} to resume from their "
              "checkpoints")
    for note in ([mixed] if mixed else []) + repaired:
        _say(out, f"note: {note}")
    for tid, (st, _) in sorted(ended.items()):
        _say(out, f"note: {tid} ended ({st}) after Tune's last snapshot; kept as {st}")
    for tid in recorded:
        _say(out, f"note: {tid}: ended before the interruption but its run had not reached "
                  "MLflow; recorded now (its metric points were lost with the driver)")
    for tid in reclosed:
        _say(out, f"note: {tid}: its end had not reached MLflow before the interruption; "
                  "recorded now")
    for tid, step in backfilled:
        _say(out, f"note: {tid}: its point at step {step} had not reached MLflow before the "
                  "interruption; recorded now from Tune's snapshot")
    for tid in lost:
        _say(out, f"note: {tid} started after Tune's last snapshot: Tune has no record of it "
                  "and cannot resume it; its run continues if the searcher issues it again "
                  "(a grid does), else it is closed as failed when the sweep ends")
    for tid in mismatched:  # only if the snapshot could not be reconciled
        _say(out, f"warning: {tid} ended before the interruption but Tune resumes it")
    return fit_and_finish(tuner, cfg, tracker, ledger, exp_dir, out, keys=keys,
                          what="resumed sweep", location=location(exp_dir, remote))
