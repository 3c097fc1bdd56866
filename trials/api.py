"""The trial API: the only sweepcast module a training function needs.

The training-function contract
==============================

A trainable is a plain function ``train(config: dict) -> None`` named in the sweep config as
``trainable: package.module:function``. For each trial:

* ``config`` holds the trial's sampled hyperparameters (the keys of ``search.space``) plus
  ``max_epochs`` (the sweep's top-level ``max_epochs``), all plain Python scalars. A trainable
  should reject keys it does not know (raise ``ValueError`` naming them) rather than ignore them.
  It may declare the names it accepts as a ``hyperparameters`` attribute on the function
  (``train.hyperparameters = frozenset({...})``); ``sweepcast validate`` then checks the search
  space against it before anything runs.
* It trains for at most ``config["max_epochs"]`` epochs and calls ``report(epoch, **metrics)``
  once per epoch, with ``epoch`` counting from 1, including the sweep's ``metric``. Every result
  carries ``epoch``: that is the time attribute the schedulers use (``training_iteration`` is
  Ray's count of reports and equals ``epoch`` only if the trial reports once per epoch from 1).
* To survive a restart it passes its state to ``report(..., checkpoint=state)`` (or calls
  ``save_checkpoint(state)`` before ``report``) and, when it starts, calls
  ``load_checkpoint()``: ``None`` for a fresh trial, else the last state saved, from which it
  resumes (the state should contain the epoch it finished).
* It may be stopped at any ``report`` call (a scheduler's stop, or the end of the sweep): the
  call does not return. It must not catch ``SystemExit``.
* Metrics are finite or not (NaN is allowed, it is recorded as such) real numbers; tensors are
  converted with ``.item()``.
* Pipeline reads (optional, for the coupling penalty when the sweep declares ``pipeline:``):
  ``read_input(step, artifact)`` says that pipeline step ``step`` read ``artifact`` (an earlier
  step's name or an external input such as ``dataset``); the reads go to the driver with the
  next ``report``, and a read the pipeline did not declare counts as undeclared coupling.
* Resources: it gets the CPUs/GPUs of ``resources:``; it should use the GPU when
  ``torch.cuda.is_available()`` (Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPU it assigned).

Checkpoint state is a dict of tensors, numbers, strings, lists, tuples and dicts (what
``torch.load(..., weights_only=True)`` reads back; no pickled objects). It is written with
``torch.save`` into a directory that Ray Tune persists to the sweep's storage.

Outside Ray Tune (a unit test, a quick local run) the same calls work: inside
``with local_session() as s:`` the results go to ``s.results`` and checkpoints to
``s.checkpoints``; with no session at all, ``report`` prints one line per call to stderr and
the last checkpoint is kept in memory.

This module imports nothing from sweepcast; Ray and torch are imported only when used.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_FILE",
    "EPOCH_KEY",
    "LocalSession",
    "in_tune_session",
    "load_checkpoint",
    "local_session",
    "read_input",
    "report",
    "save_checkpoint",
]

EPOCH_KEY = "epoch"
CHECKPOINT_FILE = "state.pt"
# Result key carrying the pipeline reads since the last report: a list of "step<TAB>artifact".
READS_KEY = "sweepcast_reads"


@dataclass
class LocalSession:
    """Where reports and checkpoints go when a trainable runs outside Ray Tune.

    Attributes:
        results: every reported dict, in order (each has ``epoch``).
        checkpoints: every saved state, in order; ``(epoch, state)`` pairs.
        resume_from: the state ``load_checkpoint()`` returns (None: a fresh start).
        on_report: optional callback called with each result dict.
        echo: print one line per report to stderr.
    """

    results: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    resume_from: dict[str, Any] | None = None
    on_report: Callable[[dict[str, Any]], None] | None = None
    echo: bool = False

    @property
    def last_checkpoint(self) -> dict[str, Any] | None:
        return self.checkpoints[-1][1] if self.checkpoints else None


_default_local = LocalSession(echo=True)
_local_stack: list[LocalSession] = []
_pending_checkpoint: dict[str, Any] | None = None
_pending_reads: list[str] = []


@contextlib.contextmanager
def local_session(
    resume_from: dict[str, Any] | None = None,
    on_report: Callable[[dict[str, Any]], None] | None = None,
    echo: bool = False,
) -> Iterator[LocalSession]:
    """Run a trainable outside Ray Tune and collect what it reports.

    Example::

        with local_session() as s:
            train({"lr": 0.01, "max_epochs": 3})
        s.results[-1]["val_accuracy"]

    Args:
        resume_from: state that ``load_checkpoint()`` returns (e.g. ``s.last_checkpoint`` of an
            earlier session), to test resuming.
        on_report: called with each result dict.
        echo: also print one line per report to stderr.
    """
    global _pending_checkpoint
    _pending_reads.clear()
    s = LocalSession(resume_from=resume_from, on_report=on_report, echo=echo)
    _local_stack.append(s)
    _pending_checkpoint = None
    try:
        yield s
    finally:
        _local_stack.pop()
        _pending_checkpoint = None


def in_tune_session() -> bool:
    """True inside a function that Ray Tune runs as a trial."""
    if _local_stack:
        return False
    if "ray" not in sys.modules:  # a Tune worker has imported Ray before calling us
        return False
    from ray import tune

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tune.get_context().get_trial_id() is not None


def _local() -> LocalSession:
    return _local_stack[-1] if _local_stack else _default_local


def _as_number(name: str, v: Any) -> float | int:
    if hasattr(v, "item") and callable(v.item):  # torch / numpy scalars
        try:
            v = v.item()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"metric {name!r} must be a scalar, got {v!r}") from e
    if isinstance(v, bool) or not isinstance(v, Real):
        raise TypeError(f"metric {name!r} must be a real number, got {v!r}")
    return v if isinstance(v, int) else float(v)


def report(step: float, *, checkpoint: dict[str, Any] | None = None, **metrics: Any) -> None:
    """Report one epoch's metrics (and optionally a checkpoint) for the current trial.

    Args:
        step: the epoch just finished (1 for the first); reported as ``epoch``.
        checkpoint: state to save with this result (see the module docstring); also attached
            is any state staged earlier by ``save_checkpoint``.
        **metrics: metric name -> real number (NaN allowed). ``epoch`` may not be given.

    Raises:
        ValueError: a non-numeric or negative/non-finite ``step``, no metrics at all, or a
            metric named ``epoch``.
        TypeError: a metric that is not a real number, a checkpoint that is not a dict.
    """
    global _pending_checkpoint
    if isinstance(step, bool) or not isinstance(step, Real) or not math.isfinite(step) or step < 0:
        raise ValueError(f"step must be a finite number >= 0 (the epoch), got {step!r}")
    if EPOCH_KEY in metrics or READS_KEY in metrics:
        raise ValueError(f"{EPOCH_KEY!r} and {READS_KEY!r} are set by report(); do not pass "
                         f"them as metrics")
    if not metrics:
        raise ValueError("report() needs at least one metric, got none")
    result: dict[str, Any] = {k: _as_number(k, v) for k, v in metrics.items()}
    result[EPOCH_KEY] = step
    if _pending_reads:
        result[READS_KEY] = list(_pending_reads)
        _pending_reads.clear()
    state = checkpoint if checkpoint is not None else _pending_checkpoint
    _pending_checkpoint = None
    if state is not None and not isinstance(state, dict):
        raise TypeError(f"checkpoint must be a dict, got {type(state).__name__}")

    if in_tune_session():
        from ray import tune

        if state is None:
            tune.report(result)
            return
        with tempfile.TemporaryDirectory(prefix="sweepcast-ckpt-") as d:
            _write_state(Path(d), state)
            # Ray copies the directory into the trial's storage before report() returns.
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))
        return

    s = _local()
    s.results.append(dict(result))
    if state is not None:
        s.checkpoints.append((step, _roundtrip(state)))
    if s.on_report is not None:
        s.on_report(dict(result))
    if s.echo:
        shown = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result.items()
            if k != EPOCH_KEY
        )
        print(f"[trial] epoch {step}: {shown}", file=sys.stderr)


def read_input(step: str, artifact: str) -> None:
    """Record that pipeline step ``step`` read ``artifact`` (sent with the next ``report``).

    For the coupling penalty of a sweep that declares ``pipeline:`` (SCORING.md): a read that
    the step did not declare in its ``inputs`` is an undeclared dependency. Call it where the
    step actually opens the artifact, e.g. ``read_input("train", "dataset")``.

    Raises:
        ValueError: an empty name, or a tab or newline in one.
    """
    for what, v in (("step", step), ("artifact", artifact)):
        if not isinstance(v, str) or not v.strip() or any(c in v for c in "\t\n"):
            raise ValueError(f"read_input: {what} must be a non-empty name without tabs or "
                             f"newlines, got {v!r}")
    entry = f"{step}\t{artifact}"
    if entry not in _pending_reads:
        _pending_reads.append(entry)


def parse_reads(value: Any) -> list[tuple[str, str]]:
    """The ``(step, artifact)`` pairs of a result's ``sweepcast_reads`` entry ([] if absent)."""
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for e in value:
        if isinstance(e, str) and e.count("\t") == 1:
            step, artifact = e.split("\t")
            out.append((step, artifact))
    return out


def save_checkpoint(state: dict[str, Any]) -> None:
    """Stage ``state`` to be saved with the next ``report`` call (Ray Tune stores a
    checkpoint together with a result). ``report(step, checkpoint=state, ...)`` does both."""
    global _pending_checkpoint
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint state must be a dict, got {type(state).__name__}")
    _pending_checkpoint = state


def load_checkpoint() -> dict[str, Any] | None:
    """The state of the trial's latest checkpoint, or None for a fresh trial.

    Inside Ray Tune this is the checkpoint Tune restores after a failure or a resumed sweep
    (``ray.tune.get_checkpoint()``); in a ``local_session`` it is ``resume_from``.
    """
    if in_tune_session():
        from ray import tune

        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return _read_state(Path(d))
    s = _local()
    return s.resume_from if s.resume_from is not None else None


def _write_state(d: Path, state: dict[str, Any]) -> None:
    import torch

    torch.save(state, d / CHECKPOINT_FILE)


def _read_state(d: Path) -> dict[str, Any]:
    import pickle

    import torch

    f = d / CHECKPOINT_FILE
    if not f.exists():
        raise FileNotFoundError(
            f"checkpoint {d} has no {CHECKPOINT_FILE} (not a sweepcast checkpoint)"
        )
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"checkpoint {f} holds objects other than tensors, numbers, strings and containers; "
            f"keep checkpoint state to those ({e})"
        ) from e
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint {f} does not hold a dict, got {type(state).__name__}")
    return state


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """Save and reload ``state`` so a local session behaves like Ray (a copy; same restrictions)."""
    with tempfile.TemporaryDirectory(prefix="sweepcast-ckpt-") as d:
        _write_state(Path(d), state)
        return _read_state(Path(d))
