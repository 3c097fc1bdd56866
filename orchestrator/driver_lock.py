"""One driver per sweep: a lock file in the experiment folder.

``sweepcast run`` and ``sweepcast resume`` hold ``<experiment>/sweepcast_driver.lock`` while they
drive a sweep. Two drivers on one experiment folder would both restore Tune's state, start the
same trials twice and write the same MLflow runs, so a second one is refused before it starts
anything (no tracker, no Ray), with who holds the lock.

The lock records the host, the pid and the process's start time (``/proc/<pid>/stat``, so a
recycled pid is not mistaken for the driver). A lock left by a driver that died (SIGKILL, a lost
node) is stale: on the same host that is detected and the lock taken over, which is what
``sweepcast resume`` after a crash needs. A lock from another host cannot be checked from here;
it is refused unless the caller forces it (``sweepcast resume --force``, after making sure that
driver is gone).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Self

from orchestrator.sweep import SweepError

log = logging.getLogger("sweepcast.lock")

LOCK_FILE = "sweepcast_driver.lock"


class DriverLockError(SweepError):
    """Another live driver holds the sweep (the message says which and what to do)."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22; the command name (field 2) may hold spaces, so split after its ")"
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    now = _start_time(pid)
    return not (start and now and now != start)  # same pid, different process: recycled


def _me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()),
            "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


class DriverLock:
    """``with DriverLock(exp_dir):`` holds the sweep for this process (see the module doc).

    Args:
        exp_dir: the experiment folder (created if missing).
        force: take the lock over even if its holder looks alive or is on another host.
    """

    def __init__(self, exp_dir: str | Path, *, force: bool = False) -> None:
        self.path = Path(exp_dir) / LOCK_FILE
        self.force = force
        self._mine: dict[str, Any] | None = None

    def holder(self) -> dict[str, Any] | None:
        """The lock's content, or None when there is no (readable) lock."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = _me()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_stale()
                continue  # stale or forced: removed, try again
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._mine = me
            return
        raise DriverLockError(f"could not take the driver lock {self.path}")

    def _check_stale(self) -> None:
        h = self.holder()
        if h is None:  # being written this instant, or garbage: treat as held briefly
            h = {}
        host, pid = h.get("host"), h.get("pid")
        here = host == socket.gethostname()
        if isinstance(pid, int) and here and pid == os.getpid():
            raise DriverLockError(f"this process already drives the sweep ({self.path})")
        stale = here and isinstance(pid, int) and not _alive(pid, h.get("start"))
        if not (stale or self.force):
            where = f"pid {pid} on {host}" if host else "another process"
            hint = ("stop that driver first (`sweepcast stop JOB_ID` for a submitted job, or "
                    "end its process)" if here else
                    "stop that driver first (or, if it is gone, `sweepcast resume --force`)")
            raise DriverLockError(
                f"the sweep in {self.path.parent} is being driven by {where} since "
                f"{h.get('since', '?')}: {hint}")
        log.warning("taking over the driver lock of %s (%s)", self.path.parent,
                    "forced" if not stale else f"its driver, pid {pid}, is gone")
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def release(self) -> None:
        if self._mine is not None and self.holder() == self._mine:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self._mine = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
