"""The MLflow :class:`Tracker`: nested runs, batched asynchronous logging, outage-proof buffer.

Layout in MLflow: one experiment (``tracking.experiment`` or the sweep name); one parent run per
sweep (``mlflow.runName`` = sweep name, tag ``sweepcast.kind=sweep``, the redacted config as
the artifact ``sweep_config.yaml``, sweep params, summary metrics at the end); one child run per
trial (tags ``mlflow.parentRunId``, ``sweepcast.trial_id``, ``sweepcast.kind=trial``), the
trial's redacted params, every metric point with its step, and at the end MLflow status
``FINISHED`` (completed), ``KILLED`` (pruned) or ``FAILED`` (failed) plus tag ``sweepcast.status``.

How it never blocks the driver: every call turns into a JSON-able operation put on a
:class:`~orchestrator.tracking.buffer.SpillQueue` and returns. One background thread takes
operations in order, merges consecutive metrics/params/tags of a run into ``log_batch`` calls
chunked to MLflow's limits (1000 metrics, 100 params, 100 tags, 1000 entities per batch), and
sends them with a :class:`mlflow.MlflowClient` (no global ``mlflow.start_run`` state).

When the server cannot be reached the thread keeps the unsent operations, retries with
exponential backoff (``0.2 s`` doubling up to ``max_backoff_s``), logs one warning per outage and
one when the server is back. New operations keep queueing; past ``max_buffer_points`` in memory
they spill to a JSONL file under ``spill_dir`` and are replayed in order once the server is
back. On :meth:`MlflowTracker.close` whatever cannot be sent in time stays in that file (the
warning says where) and a tracker restored from :meth:`state` replays it. Replays are safe:
metric points carry their client-side timestamp and MLflow de-duplicates identical points;
run creation looks for an existing run of the trial first.

A killed driver (SIGKILL, a lost head node) loses what is only in memory. Whenever a trial ends,
before the state file records the end, everything not yet confirmed sent (in memory or held by
the sender) is copied to ``tracking_unsent.jsonl`` beside the spill file; the copy is emptied
once the sender has sent past it. A tracker started on the same folder puts a copy it finds
ahead of the spill file and replays it, so the points of trials that ended before a crash (a
resume does not run them again) reach MLflow. Points of trials still running are reported again
from their checkpoints.

Only the sweep's start talks to MLflow synchronously (:meth:`check_reachable`, experiment and
parent run), so a sweep with an unreachable server fails before anything starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.tracking.base import Tracker, mask_uri
from orchestrator.tracking.buffer import SpillQueue, adopt_unsent, op_weight, write_ops

log = logging.getLogger("sweepcast.tracking")

# Batch limits of mlflow 3.17.2 (mlflow/utils/validation.py: MAX_METRICS_PER_BATCH,
# MAX_PARAMS_TAGS_PER_BATCH, MAX_ENTITIES_PER_BATCH); tests check they match the installed mlflow.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000

_MLFLOW_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
_SWEEP_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
UNSENT_FILE = "tracking_unsent.jsonl"
PARENT_KEY = ""  # the operations' key for the parent run


class TrackingUnavailableError(RuntimeError):
    """The tracking backend cannot be used (unreachable, refused). Message has no credentials."""


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def fail_fast_on_http(uri: str) -> None:
    """For an HTTP tracking server, make MLflow's client fail in seconds instead of retrying for
    minutes (no retries, a 10 s timeout), unless the user set ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
    or ``MLFLOW_HTTP_REQUEST_TIMEOUT`` already: an outage is reported, not hidden."""
    if _is_http(uri):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


class _Transient(Exception):
    """A send failed in a way worth retrying (no answer, or a 5xx / 429 answer)."""

    def __init__(self, cause: BaseException, answered: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.answered = answered


def _classify(e: BaseException) -> _Transient | None:
    """``_Transient`` if ``e`` is worth retrying, ``None`` if it is a permanent rejection."""
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(e, RestException):  # the server answered
        code = e.get_http_status_code()
        return _Transient(e, answered=True) if code >= 500 or code == 429 else None
    if isinstance(e, MlflowException):
        code = e.get_http_status_code()
        if code >= 500 or code == 429:  # connection failures are wrapped as INTERNAL_ERROR
            return _Transient(e, answered=False)
        return None
    return _Transient(e, answered=False)  # requests/OS/sqlite errors: retry


class _NoRunError(Exception):
    """A unit for a run whose creation MLflow rejected: nothing to send it to."""


@dataclass
class _Unit:
    """One call to MLflow, planned from one or more queued ops."""

    kind: str  # batch | create | reopen | end | artifact
    key: str
    ops: list[dict[str, Any]] = field(default_factory=list)  # the source ops completed by it
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    op: dict[str, Any] | None = None
    attempts_answered: int = 0

    def room(self, m: int, p: int, t: int) -> bool:
        return (
            len(self.metrics) + m <= MAX_METRICS_PER_BATCH
            and len(self.params) + p <= MAX_PARAMS_PER_BATCH
            and len(self.tags) + t <= MAX_TAGS_PER_BATCH
            and len(self.metrics) + len(self.params) + len(self.tags) + m + p + t
            <= MAX_ENTITIES_PER_BATCH
        )


def plan_units(ops: list[dict[str, Any]]) -> list[_Unit]:
    """Turn ops (in order) into MLflow calls, merging a run's metrics/params/tags into batches.

    Order is kept per run: a run's batch never moves past its create/end/artifact ops. A single
    op larger than a batch is split over several batches; every op is attached to exactly one
    unit (the last one carrying its values), so completing all units completes all ops.
    """
    units: list[_Unit] = []
    open_batch: dict[str, _Unit] = {}
    for op in ops:
        kind, key = op["op"], op["key"]
        if kind in ("metrics", "params", "tags"):
            items = list(op["values"].items())
            if not items:
                u = open_batch.get(key) or _Unit("batch", key)
                if key not in open_batch:
                    open_batch[key] = u
                    units.append(u)
                u.ops.append(op)
                continue
            i = 0
            while i < len(items):
                u = open_batch.get(key)
                need = {"metrics": (1, 0, 0), "params": (0, 1, 0), "tags": (0, 0, 1)}[kind]
                if u is None or not u.room(*need):
                    u = _Unit("batch", key)
                    open_batch[key] = u
                    units.append(u)
                # take as many items as fit
                while i < len(items):
                    name, value = items[i]
                    if kind == "metrics":
                        if not u.room(1, 0, 0):
                            break
                        u.metrics.append((name, float(value), int(op["ts"]), int(op["step"])))
                    elif kind == "params":
                        if name not in u.params and not u.room(0, 1, 0):
                            break
                        u.params[name] = value
                    else:
                        if name not in u.tags and not u.room(0, 0, 1):
                            break
                        u.tags[name] = value
                    i += 1
            u.ops.append(op)
        else:
            open_batch.pop(key, None)
            units.append(_Unit(kind, key, ops=[op], op=op))
    return units


class MlflowTracker(Tracker):
    """Records a sweep in MLflow through a background sender (see module docstring).

    Args:
        tracking_uri: MLflow URI; default :func:`default_tracking_uri`. May carry basic-auth
            credentials; they are masked in every message and never recorded.
        experiment: MLflow experiment name (created if missing); default: the sweep name.
        spill_dir: folder for the spill file ``tracking_spill.jsonl`` and staged artifacts
            (normally the sweep's experiment folder under ``storage_path``); default a temp dir.
        state_path: if set, :meth:`state` is written there (atomically, JSON) whenever a run is
            created or a trial ends, for ``sweepcast resume``.
        max_buffer_points: metric points (and other values) kept in memory before spilling.
        linger_s: how long the sender waits to gather more ops into one batch.
        max_backoff_s: the longest wait between retries during an outage.
        client: an ``MlflowClient``-like object (tests inject a fake); default a real one.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        *,
        spill_dir: str | Path | None = None,
        state_path: str | Path | None = None,
        max_buffer_points: int = 100_000,
        linger_s: float = 0.25,
        max_backoff_s: float = 5.0,
        max_answered_retries: int = 5,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.masked_uri = mask_uri(self.tracking_uri)
        self.experiment_name = experiment
        self.experiment_id: str | None = None
        # Our sender retries with its own backoff; MLflow's own (7 tries, up to minutes) would
        # hide outages and hold the queue.
        fail_fast_on_http(self.tracking_uri)
        # MLflow prints "View run <name> at: <URL>" on every terminated run: noise from our
        # sender thread, and the URL would carry basic-auth credentials from the URI.
        if mask_uri(self.tracking_uri) != self.tracking_uri:
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        else:
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
        self._client = client
        self._clock = clock
        self.spill_dir = Path(spill_dir) if spill_dir else Path(
            tempfile.mkdtemp(prefix="sweepcast-tracking-")
        )
        # created on first use (staged artifact, spill, state): a sweep that cannot start
        # leaves nothing behind
        self.state_path = Path(state_path) if state_path else None
        self._unsent_path = self.spill_dir / UNSENT_FILE
        spill_path = self.spill_dir / "tracking_spill.jsonl"
        adopted = adopt_unsent(self._unsent_path, spill_path)
        self._queue = SpillQueue(
            spill_path,
            max_weight=max_buffer_points,
            on_spill=self._warn_spill,
        )
        self.linger_s = float(linger_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_answered_retries = int(max_answered_retries)
        self._runs: dict[str, str] = {}  # key -> run id ("" = parent)
        self._maybe_created: set[str] = set()
        self._search_before_create = False
        self._progress = threading.Condition()
        # ops left by an earlier tracker are sent first: flush() waits for them too
        self._enqueued = self._queue.pending
        self._unsent_upto = 0  # ops queued when the write-ahead copy was written
        self._done = 0
        self._flush_waiters = 0
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self.stats: dict[str, int] = {
            "points_enqueued": 0,
            "points_sent": 0,
            "batches_sent": 0,
            "ops_dropped": 0,
            "retries": 0,
            "outages": 0,
        }
        self._outage_since: float | None = None
        if self._queue.pending:
            self._search_before_create = True
            log.warning(
                "replaying %d tracking operations left in %s by an earlier run%s",
                self._queue.pending, self._queue.spill_path,
                f" ({adopted} of them not confirmed sent when it stopped)" if adopted else "",
            )

    # ---- synchronous start -------------------------------------------------------------
    def check_reachable(self) -> None:
        """Raise :class:`TrackingUnavailableError` (URI masked) unless MLflow answers now."""
        try:
            self._client.search_experiments(max_results=1)
        except Exception as e:  # noqa: BLE001 - any failure means "cannot track"
            raise TrackingUnavailableError(
                f"MLflow tracking at {self.masked_uri} is not reachable: "
                f"{mask_uri(_short(e))}"
            ) from None

    def _experiment(self, name: str) -> str:
        exp_name = self.experiment_name or name
        self.experiment_name = exp_name
        try:
            exp = self._client.get_experiment_by_name(exp_name)
            if exp is not None and getattr(exp, "lifecycle_stage", "active") == "deleted":
                raise TrackingUnavailableError(
                    f"MLflow experiment {exp_name!r} at {self.masked_uri} is deleted; restore it "
                    f"(mlflow experiments restore) or choose another tracking.experiment"
                )
            if exp is None:
                try:
                    return str(self._client.create_experiment(exp_name))
                except Exception:  # created concurrently by another sweep
                    exp = self._client.get_experiment_by_name(exp_name)
                    if exp is None:
                        raise
            return str(exp.experiment_id)
        except TrackingUnavailableError:
            raise
        except Exception as e:  # noqa: BLE001
            raise TrackingUnavailableError(
                f"cannot open MLflow experiment {exp_name!r} at {self.masked_uri}: "
                f"{mask_uri(_short(e))}"
            ) from None

    def _record_start_sweep(self, name, config, params, tags) -> str:
        if self.experiment_id is None:
            self.experiment_id = self._experiment(name)
        run_tags = {
            "mlflow.runName": name,
            "sweepcast.kind": "sweep",
            "sweepcast.sweep": name,
            "sweepcast.status": "running",
            **tags,
        }
        try:
            if self._parent_run_id:  # restored: reuse the same parent run
                run_id = self._parent_run_id
                self._client.update_run(run_id, status="RUNNING")
            else:
                run = self._client.create_run(
                    self.experiment_id,
                    start_time=int(self._clock() * 1000),
                    tags=run_tags,
                    run_name=name,
                )
                run_id = run.info.run_id
        except Exception as e:  # noqa: BLE001
            raise TrackingUnavailableError(
                f"cannot create the sweep's parent run at {self.masked_uri}: "
                f"{mask_uri(_short(e))}"
            ) from None
        self._runs[PARENT_KEY] = run_id
        self._parent_run_id = run_id
        self._start_thread()
        self._put({"op": "tags", "key": PARENT_KEY, "values": run_tags})
        if params:
            self._put({"op": "params", "key": PARENT_KEY, "values": params})
        import yaml

        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
        self._record_artifact(None, ("sweep_config.yaml", mask_uri(text).encode()), None)
        self._save_state()
        return run_id

    # ---- driver-side hooks: enqueue only --------------------------------------------------
    def _record_start_trial(self, trial_id, params, tags) -> None:
        run_tags = {
            "mlflow.runName": trial_id,
            "sweepcast.kind": "trial",
            "sweepcast.trial_id": trial_id,
            "sweepcast.sweep": self._sweep_name or "",
            "sweepcast.status": "running",
            **tags,
        }
        self._put({"op": "create", "key": trial_id, "tags": run_tags, "ts": self._now_ms()})
        if params:
            self._put({"op": "params", "key": trial_id, "values": params})

    def _record_reopen_trial(self, trial_id) -> None:
        self._put({"op": "reopen", "key": trial_id})
        self._put({"op": "tags", "key": trial_id, "values": {"sweepcast.status": "running"}})

    def _record_metrics(self, key, step, values, timestamp_ms) -> None:
        ts = int(timestamp_ms) if timestamp_ms is not None else self._now_ms()
        self.stats["points_enqueued"] += len(values)
        self._put(
            {"op": "metrics", "key": key or PARENT_KEY, "step": step, "ts": ts, "values": values}
        )

    def _record_tags(self, key, tags) -> None:
        self._put({"op": "tags", "key": key or PARENT_KEY, "values": tags})

    def _record_artifact(self, key, artifact, artifact_path) -> None:
        stage = self.spill_dir / "staged_artifacts" / uuid.uuid4().hex
        stage.mkdir(parents=True)
        if isinstance(artifact, tuple):
            name, data = artifact
            (stage / name).write_bytes(data)
        else:
            name = Path(artifact).name
            shutil.copyfile(artifact, stage / name)
        self._put(
            {
                "op": "artifact",
                "key": key or PARENT_KEY,
                "path": str(stage / name),
                "artifact_path": artifact_path,
            }
        )

    def _record_end_trial(self, trial_id, status) -> None:
        self._put({"op": "end", "key": trial_id, "status": _MLFLOW_STATUS[status],
                   "ts": self._now_ms()})
        self._write_unsent()
        self._save_state()

    def _write_unsent(self) -> None:
        """Copy what is not confirmed sent to the write-ahead file (see the module docstring).

        No fsync: it guards against the driver's death, not the machine's; the page cache
        survives a killed process."""
        with self._progress:
            ops = self._queue.unsent()
            if not ops and not self._unsent_upto:
                return
            try:
                write_ops(self._unsent_path, ops, sync=False)
            except OSError as e:
                log.warning("could not write %s (%s): a driver killed now would lose the "
                            "points not yet sent", self._unsent_path, e)
                return
            self._unsent_upto = self._enqueued if ops else 0

    def _forget_unsent(self) -> None:
        """The sender has sent everything it took: empty the write-ahead file once that covers
        every op queued when it was written (ops are sent in the order they were queued)."""
        with self._progress:
            if self._unsent_upto and self._done >= self._unsent_upto:
                try:
                    self._unsent_path.write_bytes(b"")
                except OSError:
                    return
                self._unsent_upto = 0

    def _record_end_sweep(self, status) -> None:
        self._put({"op": "end", "key": PARENT_KEY, "status": _SWEEP_STATUS[status],
                   "ts": self._now_ms()})

    # ---- flush / close ------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every op queued before this call was sent (or dropped as rejected)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            target = self._enqueued
            self._flush_waiters += 1
            self._queue.wake()
            try:
                while self._done < target:
                    if self._thread is None or not self._thread.is_alive():
                        return False
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._progress.wait(0.2 if left is None else min(left, 0.2))
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush up to ``timeout`` s, stop the sender; unsent ops stay in the spill file."""
        if self._closed:
            return
        ok = self.flush(timeout) if self._thread is not None else True
        if not ok:
            self._abort.set()
        self._stop.set()
        self._queue.wake()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._thread is None or not self._thread.is_alive():
            # whatever is left (in memory too) goes to the spill file, which then holds all
            # that was not sent: the write-ahead copy is superseded
            if self._queue.pending:
                self._queue.persist()
            with self._progress:
                if self._unsent_upto:
                    self._unsent_path.write_bytes(b"")
                    self._unsent_upto = 0
        left = self._queue.pending
        if left:
            log.warning(
                "MLflow at %s: %d tracking operations could not be sent before shutdown; they "
                "are kept in %s and replayed when this sweep is resumed",
                self.masked_uri, left, self._queue.spill_path,
            )
        self._save_state()
        super().close()

    # ---- state ---------------------------------------------------------------------------
    def trial_run_id(self, trial_id: str) -> str | None:
        return self._runs.get(trial_id)

    def state(self) -> dict[str, Any]:
        s = super().state()
        s.update(
            kind="mlflow",
            tracking_uri=self.masked_uri,
            experiment_id=self.experiment_id,
            experiment_name=self.experiment_name,
            spill_path=str(self._queue.spill_path),
        )
        return s

    def restore(self, state) -> None:
        super().restore(state)
        self.experiment_id = state.get("experiment_id") or self.experiment_id
        self.experiment_name = state.get("experiment_name") or self.experiment_name
        if state.get("parent_run_id"):
            self._runs[PARENT_KEY] = state["parent_run_id"]
        for t, info in (state.get("trials") or {}).items():
            if info.get("run_id"):
                self._runs[t] = info["run_id"]
        self._search_before_create = True

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        # Lock order: the tracker's lock, then the state file's. The caller thread saves while
        # holding the tracker's lock (end_trial) and the sender thread saves after creating a
        # run (holding neither); state() takes the tracker's lock, so taking the file's lock
        # first in the sender would deadlock against the caller (seen in CI: a sweep hung in
        # end_trial). Holding both also keeps an older snapshot from overwriting a newer one.
        with self._lock, self._state_lock:
            data = json.dumps(self.state(), indent=1, sort_keys=True)
            tmp = self.state_path.with_suffix(".tmp")
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(data)
            os.replace(tmp, self.state_path)

    # ---- the sender thread -----------------------------------------------------------------
    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._sender, name="sweepcast-mlflow-sender", daemon=True
            )
            self._thread.start()

    def _put(self, op: dict[str, Any]) -> None:
        with self._progress:
            self._enqueued += 1
        self._queue.put(op)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sender(self) -> None:
        inflight: list[_Unit] = []
        backoff = 0.2
        while True:
            if not inflight:
                if self._stop.is_set() and (self._abort.is_set() or self._queue.pending == 0):
                    return
                # What the sender holds counts against the memory bound too.
                room = min(MAX_METRICS_PER_BATCH * 5, self._queue.max_weight)
                ops = self._queue.take(room, timeout=0.2)
                if not ops:
                    continue
                if self.linger_s > 0 and not self._flush_waiters and not self._stop.is_set():
                    time.sleep(self.linger_s)
                    ops += self._queue.take(max(1, room - sum(map(op_weight, ops))), timeout=0)
                inflight = plan_units(ops)
            try:
                while inflight:
                    self._send(inflight[0])
                    if self._outage_since is not None:
                        log.warning(
                            "MLflow at %s is reachable again after %.1f s; sending the %d "
                            "buffered tracking operations",
                            self.masked_uri, self._clock() - self._outage_since,
                            self._queue.pending + sum(len(u.ops) for u in inflight),
                        )
                        self._outage_since = None
                    unit = inflight.pop(0)
                    if not inflight:  # all taken ops sent: the spill file may forget them
                        self._queue.ack()
                    self._complete(unit)
                    if not inflight:
                        self._forget_unsent()
                backoff = 0.2
            except _Transient as t:
                unit = inflight[0]
                if t.answered:
                    unit.attempts_answered += 1
                    if unit.attempts_answered > self.max_answered_retries:
                        self._drop(inflight.pop(0), t.cause)
                        if not inflight:
                            self._queue.ack()
                            self._forget_unsent()
                        continue
                self.stats["retries"] += 1
                if self._outage_since is None:
                    self._outage_since = self._clock()
                    self.stats["outages"] += 1
                    log.warning(
                        "MLflow at %s is unreachable (%s); buffering tracking data and retrying "
                        "with backoff (every <= %.1f s); no points are dropped",
                        self.masked_uri, mask_uri(_short(t.cause)), self.max_backoff_s,
                    )
                if self._abort.is_set():
                    self._queue.persist([op for u in inflight for op in u.ops])
                    return
                self._abort.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                if self._abort.is_set():
                    self._queue.persist([op for u in inflight for op in u.ops])
                    return

    def _complete(self, unit: _Unit) -> None:
        if unit.kind == "batch":
            self.stats["points_sent"] += len(unit.metrics)
            self.stats["batches_sent"] += 1
        with self._progress:
            self._done += len(unit.ops)
            self._progress.notify_all()

    def _drop(self, unit: _Unit, cause: BaseException) -> None:
        self.stats["ops_dropped"] += len(unit.ops)
        log.error(
            "MLflow at %s rejected %s for %s; dropped it: %s",
            self.masked_uri, unit.kind, unit.key or "the parent run", mask_uri(_short(cause)),
        )
        with self._progress:
            self._done += len(unit.ops)
            self._progress.notify_all()

    def _send(self, unit: _Unit) -> None:
        """Perform one unit; raise ``_Transient`` to retry it, drop it if rejected."""
        try:
            self._send_unchecked(unit)
        except _NoRunError as e:
            self._drop_inline(unit, e)
        except Exception as e:  # noqa: BLE001
            t = _classify(e)
            if t is None:
                # Let the caller count it as done: a permanent rejection is logged, not retried.
                self._drop_inline(unit, e)
                return
            if unit.kind == "create":
                self._maybe_created.add(unit.key)
            raise t from None

    def _drop_inline(self, unit: _Unit, cause: BaseException) -> None:
        self.stats["ops_dropped"] += len(unit.ops)
        log.error(
            "MLflow at %s rejected %s for %s; dropped it: %s",
            self.masked_uri, unit.kind, unit.key or "the parent run", mask_uri(_short(cause)),
        )
        unit.metrics.clear()  # not counted as sent

    def _send_unchecked(self, unit: _Unit) -> None:
        c = self._client
        if unit.kind == "create":
            self._ensure_run(unit.key, unit.op or {})
            return
        run_id = self._runs.get(unit.key)
        if run_id is None:
            raise _NoRunError(f"no MLflow run for trial {unit.key!r} (its creation was rejected)")
        if unit.kind == "batch":
            if unit.metrics or unit.params or unit.tags:
                from mlflow.entities import Metric, Param, RunTag

                c.log_batch(
                    run_id,
                    metrics=[Metric(k, v, ts, s) for k, v, ts, s in unit.metrics],
                    params=[Param(k, v) for k, v in unit.params.items()],
                    tags=[RunTag(k, v) for k, v in unit.tags.items()],
                    synchronous=True,
                )
        elif unit.kind == "end":
            op = unit.op or {}
            c.set_terminated(run_id, status=op["status"], end_time=op.get("ts"))
        elif unit.kind == "reopen":
            c.update_run(run_id, status="RUNNING")
        elif unit.kind == "artifact":
            op = unit.op or {}
            path = Path(op["path"])
            if path.exists():
                c.log_artifact(run_id, str(path), op.get("artifact_path"))
                shutil.rmtree(path.parent, ignore_errors=True)
            elif op.get("replayed"):  # from a write-ahead copy: uploaded before the crash
                log.debug("staged artifact %s was uploaded already", path)
            else:
                log.error("staged artifact %s is gone; not uploaded", path)
        else:  # pragma: no cover - plan_units only makes the kinds above
            raise ValueError(f"unknown unit kind {unit.kind!r}")

    def _ensure_run(self, key: str, op: dict[str, Any]) -> None:
        if key in self._runs:
            return
        parent = self._runs.get(PARENT_KEY)
        if self._search_before_create or key in self._maybe_created:
            found = self._find_run(key, parent)
            if found is not None:
                self._runs[key] = found
                self._save_state()
                return
        tags = dict(op.get("tags") or {})
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = self._client.create_run(
            self.experiment_id, start_time=op.get("ts"), tags=tags, run_name=key
        )
        self._runs[key] = run.info.run_id
        self._maybe_created.discard(key)
        self._save_state()

    def _find_run(self, trial_id: str, parent: str | None) -> str | None:
        q = trial_id.replace("'", "\\'")
        flt = f"tags.`sweepcast.trial_id` = '{q}'"
        if parent:
            flt += f" and tags.`mlflow.parentRunId` = '{parent}'"
        runs = self._client.search_runs([self.experiment_id], filter_string=flt, max_results=1)
        return runs[0].info.run_id if runs else None

    def _warn_spill(self, path: Path) -> None:
        log.warning(
            "tracking buffer holds %d points in memory; spilling further tracking data to %s "
            "until MLflow at %s catches up",
            self._queue.max_weight, path, self.masked_uri,
        )


def _short(e: BaseException, limit: int = 300) -> str:
    s = f"{type(e).__name__}: {e}"
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."
