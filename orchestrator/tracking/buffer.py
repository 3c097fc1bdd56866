"""A FIFO of JSON-able operations, bounded in memory, that spills to a JSONL file.

The MLflow tracker's driver side puts operations here; its background sender takes them in
order. While the sender keeps up, everything stays in memory. When the memory share reaches
``max_weight`` (e.g. during an MLflow outage), new operations are appended to the spill file
instead, and keep going there until the sender has caught up with the file, so the order of
operations is preserved and memory stays bounded however long the outage lasts.

Replaying is idempotent on the MLflow side (metric points carry their client-side timestamp
and MLflow de-duplicates identical points), so a spill file that survives a crash can be
replayed whole by a later tracker (``SpillQueue(path)`` picks it up). :meth:`SpillQueue.unsent`
lists what is queued in memory or taken and not yet acknowledged, for a write-ahead copy
(:func:`write_ops`) that a later tracker replays after a crash (:func:`adopt_unsent`).
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_ops(path: Path, ops: list[dict[str, Any]], tail: bytes = b"", sync: bool = True) -> None:
    """Write ``ops`` (then the raw JSONL ``tail``) to ``path`` atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.writelines(json.dumps(op, separators=(",", ":")).encode() + b"\n" for op in ops)
        f.write(tail)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def read_ops(path: Path) -> list[dict[str, Any]]:
    """The ops of a JSONL file (none if it is missing); a line cut by a crash is skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    ops = []
    for line in raw.splitlines():
        try:
            op = json.loads(line) if line.strip() else None
        except ValueError:  # a partial last line
            continue
        if isinstance(op, dict):
            ops.append(op)
    return ops


def adopt_unsent(unsent_path: Path, spill_path: Path) -> int:
    """Move the ops of a write-ahead copy left by a crashed tracker to the head of the spill
    file (each marked ``"replayed": true``), ahead of what the spill file holds; return how
    many. The copy is older than anything still in the spill file's unread part, so the order
    of operations is kept; ops that were sent already are sent again, which is harmless (see
    the module docstring)."""
    ops = read_ops(unsent_path)
    if not ops:
        return 0
    try:
        tail = spill_path.read_bytes()
    except FileNotFoundError:
        tail = b""
    write_ops(spill_path, [{**op, "replayed": True} for op in ops], tail)
    unsent_path.write_bytes(b"")
    return len(ops)


def op_weight(op: dict[str, Any]) -> int:
    """Memory weight of an op: its number of values (metric points, params, tags), at least 1."""
    vals = op.get("values")
    return max(1, len(vals)) if isinstance(vals, dict) else 1


class SpillQueue:
    """Thread-safe FIFO of dict ops with a bounded in-memory part and a JSONL spill file.

    Args:
        spill_path: the JSONL file used when memory is full. If it exists and holds ops
            (left by an earlier tracker), they are queued first.
        max_weight: most total :func:`op_weight` kept in memory.
        on_spill: called (outside the lock) with the spill path the first time each overflow
            starts, for a warning.
    """

    def __init__(
        self,
        spill_path: Path,
        max_weight: int = 100_000,
        on_spill: Callable[[Path], None] | None = None,
    ) -> None:
        if max_weight < 1:
            raise ValueError(f"max_weight must be >= 1, got {max_weight!r}")
        self.spill_path = Path(spill_path)
        self.max_weight = int(max_weight)
        self._on_spill = on_spill
        self._cond = threading.Condition()
        self._mem: deque[tuple[dict[str, Any], int]] = deque()
        self._mem_weight = 0
        self._spill_offset = 0  # bytes of the spill file already taken
        self._spilled_ops = 0  # ops in the file not yet taken
        self.spilled_total = 0  # ops ever written to the spill file
        self._spilling = False
        self._taken: list[dict[str, Any]] = []  # taken by the consumer, not acknowledged
        if self.spill_path.exists() and self.spill_path.stat().st_size > 0:
            with open(self.spill_path, "rb") as f:
                self._spilled_ops = sum(1 for line in f if line.strip())
            self._spilling = self._spilled_ops > 0

    # ---- producer ---------------------------------------------------------------------
    def put(self, op: dict[str, Any]) -> None:
        """Append ``op`` (JSON-able) at the tail; never blocks on anything but local disk."""
        w = op_weight(op)
        started = False
        with self._cond:
            if self._spilling or self._mem_weight + w > self.max_weight and self._mem:
                started = not self._spilling
                self._spilling = True
                self._append_spill([op])
            else:
                self._mem.append((op, w))
                self._mem_weight += w
            self._cond.notify_all()
        if started and self._on_spill is not None:
            self._on_spill(self.spill_path)

    # ---- consumer ---------------------------------------------------------------------
    def take(self, max_weight: int, timeout: float | None = None) -> list[dict[str, Any]]:
        """Remove and return ops from the head, up to ``max_weight`` (at least one op).

        Waits up to ``timeout`` seconds for an op; returns ``[]`` if none came.
        """
        with self._cond:
            if not self._mem and not self._spilled_ops:
                self._cond.wait(timeout)
            if not self._mem and self._spilled_ops:
                self._load_spill(max_weight)
            out: list[dict[str, Any]] = []
            total = 0
            while self._mem and (not out or total + self._mem[0][1] <= max_weight):
                op, w = self._mem.popleft()
                self._mem_weight -= w
                total += w
                out.append(op)
            self._taken.extend(out)
            return out

    def requeue_front(self, ops: list[dict[str, Any]]) -> None:
        """Put ops back at the head, in order (used when a sender gives up before sending)."""
        with self._cond:
            back = {id(op) for op in ops}
            self._taken = [op for op in self._taken if id(op) not in back]
            for op in reversed(ops):
                w = op_weight(op)
                self._mem.appendleft((op, w))
                self._mem_weight += w
            self._cond.notify_all()

    def persist(self, head: list[dict[str, Any]] | None = None) -> int:
        """Write everything still queued (``head`` first) to the spill file; return op count.

        Used on close when the server cannot be reached: a later tracker replays the file.
        Memory is emptied.
        """
        with self._cond:
            ops = list(head or []) + [op for op, _ in self._mem]
            rest = b""
            if self._spilled_ops and self.spill_path.exists():
                with open(self.spill_path, "rb") as f:
                    f.seek(self._spill_offset)
                    rest = f.read()
            write_ops(self.spill_path, ops, rest)
            n = len(ops) + self._spilled_ops
            self._taken.clear()
            self._mem.clear()
            self._mem_weight = 0
            self._spill_offset = 0
            self._spilled_ops = n
            self._spilling = n > 0
            return n

    # ---- state --------------------------------------------------------------------------
    def unsent(self) -> list[dict[str, Any]]:
        """The ops taken and not yet acknowledged, then those queued in memory, in order (the
        spill file's unread part, on disk already, is not included)."""
        with self._cond:
            return list(self._taken) + [op for op, _ in self._mem]

    @property
    def pending(self) -> int:
        """Ops queued (memory + spill file), not counting ones a sender holds."""
        with self._cond:
            return len(self._mem) + self._spilled_ops

    @property
    def memory_weight(self) -> int:
        with self._cond:
            return self._mem_weight

    @property
    def spilled_pending(self) -> int:
        with self._cond:
            return self._spilled_ops

    def wake(self) -> None:
        """Wake a consumer blocked in :meth:`take`."""
        with self._cond:
            self._cond.notify_all()

    # ---- internals (lock held) ----------------------------------------------------------
    def _append_spill(self, ops: list[dict[str, Any]]) -> None:
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spill_path, "ab") as f:
            f.writelines(json.dumps(op, separators=(",", ":")).encode() + b"\n" for op in ops)
        self._spilled_ops += len(ops)
        self.spilled_total += len(ops)

    def _load_spill(self, max_weight: int) -> None:
        """Move ops from the file head into memory (up to ``max_weight``)."""
        loaded = 0
        with open(self.spill_path, "rb") as f:
            f.seek(self._spill_offset)
            while loaded < max_weight:
                line = f.readline()
                if not line:
                    break
                self._spill_offset = f.tell()
                if not line.strip():
                    continue
                op = json.loads(line)
                w = op_weight(op)
                self._mem.append((op, w))
                self._mem_weight += w
                self._spilled_ops -= 1
                loaded += w
        if self._spilled_ops <= 0:
            # Caught up with the file: new ops go to memory again. The file keeps the ops just
            # taken until the consumer acknowledges them (:meth:`ack`), so a crash before they
            # are sent loses nothing (a later tracker replays the file).
            self._spilled_ops = 0
            self._spilling = False

    def ack(self) -> None:
        """The consumer has sent (or given up on) everything it took: forget those ops, and
        drop the spill file's consumed part."""
        with self._cond:
            self._taken.clear()
            if self._spilled_ops == 0 and not self._spilling and self._spill_offset > 0:
                with open(self.spill_path, "wb"):
                    pass
                self._spill_offset = 0
