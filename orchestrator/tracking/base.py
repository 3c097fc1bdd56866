"""The ``Tracker`` seam: what the orchestrator records about a sweep.

A tracker receives the lifecycle of one sweep from the driver (the Tune callback and the
schedulers call it) and records it somewhere: MLflow (:class:`~orchestrator.tracking.mlflow.
MlflowTracker`) or memory (:class:`~orchestrator.tracking.memory.InMemoryTracker`, for tests).

Lifecycle contract (every implementation passes ``tests/unit/test_tracker_contract.py``):

1. ``start_sweep(name, config, params)`` once, first; returns the parent run id. After
   ``restore(state)`` it reuses the parent run named in the state instead of creating one.
2. ``start_trial(trial_id, params)`` before anything else about that trial. Idempotent: calling
   it again for a known trial (a retried or resumed trial) keeps the trial's run; params are
   logged once. Params pass through secret redaction before they are recorded.
3. ``log_metrics(trial_id, step, {name: value})``: every point is recorded with its step
   (``trial_id=None`` logs to the parent run). Non-finite values are recorded as given.
4. ``log_verdict(trial_id, step, verdict)``: a stopping policy's decision. Records metrics
   ``p_beat``, ``forecast.q05``, ``forecast.q50``, ``forecast.q95`` at ``step`` (those present),
   tag ``sweepcast.last_reason``, and when the decision is a stop, tag ``sweepcast.stop_reason``
   (and remembers the trial as stopped by its scheduler, see :meth:`Tracker.stop_reason`).
5. ``set_tags`` / ``log_artifact`` any time between start and end (``None`` = the parent run).
6. ``end_trial(trial_id, status, summary)`` with status ``completed`` | ``pruned`` | ``failed``;
   summary metrics are logged at the trial's last step, tag ``sweepcast.status`` = status.
7. ``end_sweep(summary, status)`` then ``close()``. ``flush(timeout)`` returns ``True`` once
   every call made before it is durably recorded.
8. ``state()`` returns plain JSON-able data (experiment id, parent run id, trial -> run id and
   status) and ``restore(state)`` on a fresh tracker continues the same runs.

Methods are called from the driver thread; implementations must not block it on the network.
Bad input raises ``ValueError`` naming the argument and the value.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import json
import math
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

TrialStatus = Literal["completed", "pruned", "failed"]
TRIAL_STATUSES: tuple[str, ...] = ("completed", "pruned", "failed")
SWEEP_STATUSES: tuple[str, ...] = ("completed", "failed", "interrupted")

#: An artifact is a local file path, or ``(file name, bytes)`` created in memory.
Artifact = str | Path | tuple[str, bytes]

# MLflow's limits (mlflow/utils/validation.py in mlflow 3.17.2), shared by all trackers so that
# every tracker records the same, truncated values.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
_URI_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")
# A query parameter that carries a secret (access_key=, secret_key=, token=, sig=, ...).
_URI_SECRET_PARAM = re.compile(
    r"(?P<key>[?&][A-Za-z0-9_.\-]*(?:key|secret|token|passw(?:or)?d|signature|sig|credential)"
    r"[A-Za-z0-9_.\-]*=)[^&#\s'\"]+", re.IGNORECASE)

#: The tags a verdict sets.
TAG_STOP_REASON = "sweepcast.stop_reason"
TAG_LAST_REASON = "sweepcast.last_reason"
TAG_STATUS = "sweepcast.status"


def mask_uri(text: str) -> str:
    """Hide credentials in every URI inside ``text``: basic-auth user info, and the values of
    query parameters that carry secrets (``access_key=``, ``secret_key=``, ``token=``, ...).

    >>> mask_uri("http://alice:s3cret@mlflow.example:5000/api")
    'http://***@mlflow.example:5000/api'
    >>> mask_uri("s3://bkt/sweeps?endpoint_override=h:9000&secret_key=abc&region=eu")
    's3://bkt/sweeps?endpoint_override=h:9000&secret_key=***&region=eu'
    >>> mask_uri("sqlite:///mlflow.db")
    'sqlite:///mlflow.db'
    """
    text = _URI_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", str(text))
    return _URI_SECRET_PARAM.sub(lambda m: f"{m.group('key')}***", text)


def metric_key(name: str) -> str:
    """A valid MLflow metric/param key for ``name``: bad characters become ``_``.

    >>> metric_key("val/acc@top1")
    'val/acc_top1'
    """
    key = _BAD_KEY_CHARS.sub("_", str(name)).strip("/") or "_"
    return key[:MAX_KEY_LENGTH]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings with dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, prefix=f"{key}."))
        else:
            out[key] = v
    return out


def param_value(v: Any) -> str:
    """The string recorded for a param value (JSON for containers), truncated to MLflow's limit."""
    if isinstance(v, str):
        s = v
    elif isinstance(v, (list, tuple, dict)):
        s = json.dumps(v, default=str, sort_keys=True)
    else:
        s = str(v)
    return s if len(s) <= MAX_PARAM_VALUE_LENGTH else s[: MAX_PARAM_VALUE_LENGTH - 3] + "..."


def tag_value(v: Any) -> str:
    s = str(v)
    return s if len(s) <= MAX_TAG_VALUE_LENGTH else s[: MAX_TAG_VALUE_LENGTH - 3] + "..."


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """Redact secret-looking keys (recursively) with the project's hygiene rules.

    Delegates to ``search.hygiene.redact`` (the single definition of what counts as a secret).
    """
    try:
        from search.hygiene import redact as _redact  # pure core, cheap
    except ModuleNotFoundError as e:  # hygiene module not in this checkout yet
        if e.name not in ("search.hygiene",):
            raise
        _redact = _fallback_redact
    return dict(_redact(dict(params)))


_SECRET_KEY = re.compile(
    r"(token|secret|passw(or)?d|passwd|api[_-]?key|apikey|credential|private[_-]?key|auth)",
    re.IGNORECASE,
)
REDACTED = "***REDACTED***"


def _fallback_redact(d: Any) -> Any:
    """Used only while ``search.hygiene`` is absent: same key families, recursive."""
    if isinstance(d, Mapping):
        return {
            k: (REDACTED if _SECRET_KEY.search(str(k)) else _fallback_redact(v))
            for k, v in d.items()
        }
    if isinstance(d, (list, tuple)):
        return type(d)(_fallback_redact(v) for v in d)
    return d


def _as_mapping(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    raise ValueError(f"verdict must be a mapping or an object with fields, got {obj!r}")


def _finite_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


_QUANTILE_NAMES = {"q05": 0.05, "q50": 0.5, "q95": 0.95}


@dataclasses.dataclass(frozen=True)
class VerdictRecord:
    """A stopping decision normalised for recording.

    Attributes:
        decision: ``"stop"`` or ``"continue"`` (an enum's value/name, lower-cased).
        reason: the policy's stable reason code (``grace``, ``p_beat_low``, ...).
        metrics: ``{"p_beat": p, "forecast.q05": ..., "forecast.q50": ..., "forecast.q95": ...}``,
            only those the verdict carried.
    """

    decision: str
    reason: str
    metrics: dict[str, float]

    @property
    def stops(self) -> bool:
        return self.decision == "stop"


def normalise_verdict(verdict: Any) -> VerdictRecord:
    """Read a verdict-like object (mapping, dataclass, named tuple).

    Understood fields: ``decision`` (str, bool ``stop``, or an enum), ``reason``, ``p_beat`` (or
    ``p_beat_incumbent``), quantiles as ``q05/q50/q95`` at the top level, inside a ``forecast``
    mapping/object, or as ``quantiles`` ``{0.05: x, 0.5: y, 0.95: z}``.

    Raises:
        ValueError: if it has neither a ``decision`` nor a ``stop`` field.
    """
    d = _as_mapping(verdict)
    if "decision" in d:
        dec = d["decision"]
        if isinstance(dec, enum.Enum):
            dec = dec.value if isinstance(dec.value, str) else dec.name
        decision = str(dec).strip().lower()
    elif "stop" in d:
        decision = "stop" if d["stop"] else "continue"
    else:
        raise ValueError(f"verdict has no 'decision' field: {verdict!r}")
    if decision not in ("stop", "continue"):
        raise ValueError(f"verdict decision must be 'stop' or 'continue', got {decision!r}")
    reason = str(d.get("reason", "") or "")
    if isinstance(d.get("reason"), enum.Enum):
        r = d["reason"]
        reason = str(r.value if isinstance(r.value, str) else r.name)
    metrics: dict[str, float] = {}
    p = _finite_number(d.get("p_beat", d.get("p_beat_incumbent")))
    if p is not None:
        metrics["p_beat"] = p
    sources: list[dict[str, Any]] = [d]
    if d.get("forecast") is not None:
        try:
            sources.append(_as_mapping(d["forecast"]))
        except ValueError:
            pass
    for src in sources:
        for name in _QUANTILE_NAMES:
            v = _finite_number(src.get(name))
            if v is not None:
                metrics.setdefault(f"forecast.{name}", v)
    qs = d.get("quantiles")
    if isinstance(qs, Mapping):
        for name, level in _QUANTILE_NAMES.items():
            for k, v in qs.items():
                try:
                    if math.isclose(float(k), level):
                        fv = _finite_number(v)
                        if fv is not None:
                            metrics.setdefault(f"forecast.{name}", fv)
                except (TypeError, ValueError):
                    continue
    return VerdictRecord(decision=decision, reason=reason, metrics=metrics)


def _check_trial_id(trial_id: Any) -> str:
    if not isinstance(trial_id, str) or not trial_id:
        raise ValueError(f"trial_id must be a non-empty string, got {trial_id!r}")
    return trial_id


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step):
        raise ValueError(f"step must be a finite number, got {step!r}")
    if step < 0 or int(step) != step:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    return int(step)


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Keep the numeric entries (bools and non-numbers dropped), keys made MLflow-valid."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            try:
                import numpy as np  # numpy scalars from trainables

                if isinstance(v, np.generic) and np.issubdtype(type(v), np.number):
                    v = float(v)
                else:
                    continue
            except ImportError:  # pragma: no cover
                continue
        out[metric_key(k)] = float(v)
    return out


class Tracker(abc.ABC):
    """Base class: validates arguments, keeps the lifecycle bookkeeping, delegates recording.

    Subclasses implement the ``_record_*`` hooks, ``flush``, ``close``, and extend
    ``state``/``restore``. Public methods are thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sweep_name: str | None = None
        self._parent_run_id: str | None = None
        self._trial_status: dict[str, str] = {}  # trial -> running|completed|pruned|failed
        self._last_step: dict[str, int] = {}
        self._stop_reasons: dict[str, str] = {}
        self._closed = False

    # ---- public lifecycle -------------------------------------------------------------
    def start_sweep(
        self,
        name: str,
        config: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Open (or, after ``restore``, reuse) the sweep's parent run; return its id.

        Args:
            name: the sweep name (parent run name).
            config: the full sweep config as plain data; recorded (redacted) as an artifact.
            params: sweep-level params (redacted, flattened with dotted keys).
            tags: extra tags on the parent run.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"sweep name must be a non-empty string, got {name!r}")
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        self._check_open()
        with self._lock:
            if self._parent_run_id is not None and self._sweep_name not in (None, name):
                raise ValueError(
                    f"tracker holds sweep {self._sweep_name!r}, cannot start sweep {name!r}"
                )
            self._sweep_name = name
            safe_params = {
                metric_key(k): param_value(v) for k, v in flatten(redact(params or {})).items()
            }
            safe_config = redact(config)
            run_id = self._record_start_sweep(
                name, safe_config, safe_params, {k: tag_value(v) for k, v in (tags or {}).items()}
            )
            self._parent_run_id = run_id
            return run_id

    def start_trial(
        self, trial_id: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None
    ) -> None:
        """Open the trial's run (nested under the parent). Idempotent per ``trial_id``.

        A second call for a trial that ended (a retried trial) reopens the same run as running.
        """
        _check_trial_id(trial_id)
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(params).__name__}")
        self._check_started()
        with self._lock:
            known = trial_id in self._trial_status
            prev = self._trial_status.get(trial_id)
            self._trial_status[trial_id] = "running"
            self._stop_reasons.pop(trial_id, None)
            if known:
                if prev != "running":
                    self._record_reopen_trial(trial_id)
                return
            safe = {metric_key(k): param_value(v) for k, v in flatten(redact(params)).items()}
            self._record_start_trial(
                trial_id, safe, {k: tag_value(v) for k, v in (tags or {}).items()}
            )

    def log_metrics(
        self,
        trial_id: str | None,
        step: int,
        metrics: Mapping[str, Any],
        timestamp_ms: int | None = None,
    ) -> None:
        """Record every numeric entry of ``metrics`` at ``step`` (``trial_id=None``: parent)."""
        step = _check_step(step)
        key = self._key(trial_id)
        values = numeric_metrics(metrics)
        if not values:
            return
        with self._lock:
            if key is not None:
                self._last_step[key] = max(step, self._last_step.get(key, step))
            self._record_metrics(key, step, values, timestamp_ms)

    def log_verdict(self, trial_id: str, step: int, verdict: Any) -> VerdictRecord:
        """Record a stopping decision (see module docstring, item 4); returns the normalised one."""
        step = _check_step(step)
        key = self._key(trial_id)
        if key is None:
            raise ValueError("log_verdict needs a trial_id, got None")
        rec = normalise_verdict(verdict)
        with self._lock:
            if rec.metrics:
                self._last_step[key] = max(step, self._last_step.get(key, step))
                self._record_metrics(key, step, dict(rec.metrics), None)
            tags = {TAG_LAST_REASON: rec.reason or rec.decision}
            if rec.stops:
                tags[TAG_STOP_REASON] = rec.reason or "stop"
                tags["sweepcast.stopped_at_step"] = str(step)
                self._stop_reasons[key] = rec.reason or "stop"
            self._record_tags(key, tags)
        return rec

    def set_tags(self, trial_id: str | None, tags: Mapping[str, Any]) -> None:
        """Set string tags on a trial's run (``None``: the parent run)."""
        key = self._key(trial_id)
        if not isinstance(tags, Mapping):
            raise TypeError(f"tags must be a mapping, got {type(tags).__name__}")
        if tags:
            with self._lock:
                self._record_tags(key, {str(k): tag_value(v) for k, v in tags.items()})

    def log_artifact(
        self, trial_id: str | None, artifact: Artifact, artifact_path: str | None = None
    ) -> None:
        """Attach a file (a local path, or ``(name, bytes)``) to a trial's run or the parent."""
        key = self._key(trial_id)
        if isinstance(artifact, tuple):
            if len(artifact) != 2 or not isinstance(artifact[0], str) or not artifact[0]:
                raise ValueError(f"artifact tuple must be (name, bytes), got {artifact!r:.80}")
            name, data = artifact
            if "/" in name or name in (".", ".."):
                raise ValueError(f"artifact name must be a plain file name, got {name!r}")
            if isinstance(data, str):
                data = data.encode()
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"artifact data must be bytes, got {type(data).__name__}")
            artifact = (name, bytes(data))
        else:
            p = Path(artifact)
            if not p.is_file():
                raise ValueError(f"artifact path is not a file: {str(p)!r}")
            artifact = p
        with self._lock:
            self._record_artifact(key, artifact, artifact_path)

    def end_trial(
        self, trial_id: str, status: str, summary: Mapping[str, Any] | None = None
    ) -> None:
        """Close the trial's run with ``status`` (completed | pruned | failed).

        Summary metrics are logged at the trial's last recorded step (0 if none).
        """
        _check_trial_id(trial_id)
        if status not in TRIAL_STATUSES:
            raise ValueError(f"status must be one of {TRIAL_STATUSES}, got {status!r}")
        with self._lock:
            if trial_id not in self._trial_status:
                raise ValueError(f"unknown trial {trial_id!r}: start_trial was not called")
            if self._trial_status[trial_id] == status:
                return  # already recorded (idempotent)
            self._trial_status[trial_id] = status
            values = numeric_metrics(summary or {})
            if values:
                self._record_metrics(trial_id, self._last_step.get(trial_id, 0), values, None)
            self._record_tags(trial_id, {TAG_STATUS: status})
            self._record_end_trial(trial_id, status)

    def end_sweep(
        self, summary: Mapping[str, Any] | None = None, status: str = "completed"
    ) -> None:
        """Close the parent run: summary metrics (step 0), tag ``sweepcast.status``."""
        if status not in SWEEP_STATUSES:
            raise ValueError(f"status must be one of {SWEEP_STATUSES}, got {status!r}")
        self._check_started()
        with self._lock:
            values = numeric_metrics(summary or {})
            if values:
                self._record_metrics(None, 0, values, None)
            self._record_tags(None, {TAG_STATUS: status})
            self._record_end_sweep(status)

    @abc.abstractmethod
    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything recorded so far is durable; ``False`` if ``timeout`` passed."""

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout``) and release resources. Further calls raise."""
        self._closed = True

    # ---- state ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain JSON-able state: enough for a fresh tracker to continue the same runs."""
        with self._lock:
            return {
                "version": 1,
                "sweep_name": self._sweep_name,
                "parent_run_id": self._parent_run_id,
                "trials": {
                    t: {"run_id": self.trial_run_id(t), "status": s}
                    for t, s in self._trial_status.items()
                },
                "last_step": dict(self._last_step),
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state()`` of an earlier tracker; call before ``start_sweep``."""
        if not isinstance(state, Mapping) or state.get("version") != 1:
            raise ValueError(f"unsupported tracker state: {str(state)[:120]!r}")
        with self._lock:
            self._sweep_name = state.get("sweep_name")
            self._parent_run_id = state.get("parent_run_id")
            for t, info in (state.get("trials") or {}).items():
                self._trial_status[t] = str(info.get("status", "running"))
            self._last_step.update({k: int(v) for k, v in (state.get("last_step") or {}).items()})

    # ---- queries ----------------------------------------------------------------------
    @property
    def parent_run_id(self) -> str | None:
        return self._parent_run_id

    def trial_status(self, trial_id: str) -> str | None:
        """``running`` | ``completed`` | ``pruned`` | ``failed``, or ``None`` if unknown."""
        return self._trial_status.get(trial_id)

    def last_step(self, trial_id: str | None) -> int:
        """The highest step recorded for a trial (``None``: the parent), 0 if none yet."""
        return self._last_step.get(trial_id, 0) if trial_id is not None else 0

    def stop_reason(self, trial_id: str) -> str | None:
        """The reason of the last stop verdict logged for this trial (since it last started)."""
        return self._stop_reasons.get(trial_id)

    @abc.abstractmethod
    def trial_run_id(self, trial_id: str) -> str | None:
        """The trial's run id once its run exists (``None`` while pending or unknown)."""

    # ---- hooks for implementations (called with the lock held) -----------------------
    @abc.abstractmethod
    def _record_start_sweep(
        self, name: str, config: dict[str, Any], params: dict[str, str], tags: dict[str, str]
    ) -> str: ...

    @abc.abstractmethod
    def _record_start_trial(
        self, trial_id: str, params: dict[str, str], tags: dict[str, str]
    ) -> None: ...

    @abc.abstractmethod
    def _record_reopen_trial(self, trial_id: str) -> None: ...

    @abc.abstractmethod
    def _record_metrics(
        self, key: str | None, step: int, values: dict[str, float], timestamp_ms: int | None
    ) -> None: ...

    @abc.abstractmethod
    def _record_tags(self, key: str | None, tags: dict[str, str]) -> None: ...

    @abc.abstractmethod
    def _record_artifact(
        self, key: str | None, artifact: Path | tuple[str, bytes], artifact_path: str | None
    ) -> None: ...

    @abc.abstractmethod
    def _record_end_trial(self, trial_id: str, status: str) -> None: ...

    @abc.abstractmethod
    def _record_end_sweep(self, status: str) -> None: ...

    # ---- helpers ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("tracker is closed")

    def _check_started(self) -> None:
        self._check_open()
        if self._parent_run_id is None:
            raise RuntimeError("start_sweep must be called first")

    def _key(self, trial_id: str | None) -> str | None:
        self._check_started()
        if trial_id is None:
            return None
        _check_trial_id(trial_id)
        if trial_id not in self._trial_status:
            raise ValueError(f"unknown trial {trial_id!r}: start_trial was not called")
        return trial_id
