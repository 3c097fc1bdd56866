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

An object-store experiment (``storage_path: s3://...``, :mod:`orchestrator.storage`) is locked
in its local mirror as above and also by an object ``<uri>/<name>/sweepcast_driver.lock`` with
the same content, judged by the same rules. That remote lock is **not atomic**: pyarrow has no
conditional write (S3's ``If-None-Match``), so it is read, written, then read back after
``REMOTE_SETTLE_S``; two drivers on different hosts that both write within that window can both
believe they hold it. It guards against the common case (a second ``resume`` while a sweep runs,
or a driver on another host still alive), not against two drivers started at the same moment.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Self

from orchestrator.storage import LOCK_FILE
from orchestrator.sweep import SweepError
from orchestrator.tracking.base import mask_uri

log = logging.getLogger("sweepcast.lock")

#: Seconds between writing the remote lock and reading it back (see the module docstring).
REMOTE_SETTLE_S = 0.5


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
        exp_dir: the experiment folder (created if missing); for an object-store experiment,
            its local mirror.
        force: take the lock over even if its holder looks alive or is on another host.
        remote: the object-store experiment folder (an :class:`orchestrator.storage.Remote`),
            where the lock is also held (not atomically: see the module docstring).
    """

    def __init__(self, exp_dir: str | Path, *, force: bool = False, remote: Any = None) -> None:
        self.path = Path(exp_dir) / LOCK_FILE
        self.force = force
        self.remote = remote
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
            if self.remote is not None:
                try:
                    self._acquire_remote(me)
                except BaseException:
                    self.release()
                    raise
            return
        raise DriverLockError(f"could not take the driver lock {self.path}")

    def _remote_holder(self) -> dict[str, Any] | None:
        try:
            data = self.remote.read_bytes(LOCK_FILE)
            return None if data is None else json.loads(data)
        except ValueError:
            return {}  # garbage, or being written: judged as held
        except OSError as e:
            raise DriverLockError(f"cannot read the driver lock at {self.remote.shown}: "
                                  f"{mask_uri(str(e))[:300]}") from None

    def _acquire_remote(self, me: dict[str, Any]) -> None:
        where = f"{self.remote.shown} ({LOCK_FILE})"
        for _ in range(3):
            h = self._remote_holder()
            if h is not None and h != me:
                self._judge(h, where)
            try:
                self.remote.write_bytes(LOCK_FILE, json.dumps(me).encode())
            except OSError as e:
                raise DriverLockError(f"cannot write the driver lock at {where}: "
                                      f"{mask_uri(str(e))[:300]}") from None
            time.sleep(REMOTE_SETTLE_S)
            if self._remote_holder() == me:
                return
        raise DriverLockError(f"could not take the driver lock at {where}: another driver "
                              "keeps writing it")

    def _check_stale(self) -> None:
        self._judge(self.holder(), str(self.path.parent))
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _judge(self, h: dict[str, Any] | None, where: str) -> None:
        """Raise unless the holder ``h`` of the lock of ``where`` is gone (or ``force``)."""
        if h is None:  # being written this instant, or garbage: treat as held briefly
            h = {}
        host, pid = h.get("host"), h.get("pid")
        here = host == socket.gethostname()
        if isinstance(pid, int) and here and pid == os.getpid():
            raise DriverLockError(f"this process already drives the sweep ({where})")
        stale = here and isinstance(pid, int) and not _alive(pid, h.get("start"))
        if not (stale or self.force):
            holder = f"pid {pid} on {host}" if host else "another process"
            hint = ("stop that driver first (`sweepcast stop JOB_ID` for a submitted job, or "
                    "end its process)" if here else
                    "stop that driver first (or, if it is gone, `sweepcast resume --force`)")
            raise DriverLockError(
                f"the sweep in {where} is being driven by {holder} since "
                f"{h.get('since', '?')}: {hint}")
        log.warning("taking over the driver lock of %s (%s)", where,
                    "forced" if not stale else f"its driver, pid {pid}, is gone")

    def release(self) -> None:
        if self._mine is not None and self.remote is not None:
            try:
                if self._remote_holder() == self._mine:
                    self.remote.delete(LOCK_FILE)
            except (DriverLockError, OSError):
                log.warning("could not remove the driver lock at %s", self.remote.shown)
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
