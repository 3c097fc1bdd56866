"""One driver per sweep: the experiment folder's lock (orchestrator.driver_lock)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from orchestrator.driver_lock import LOCK_FILE, DriverLock, DriverLockError
from orchestrator.sweep import SweepError, driver_lock


def _write(tmp_path, **holder):
    (tmp_path / LOCK_FILE).write_text(json.dumps(holder))


def test_lock_is_taken_and_released(tmp_path):
    with DriverLock(tmp_path) as lock:
        h = lock.holder()
        assert h["pid"] == os.getpid() and h["host"] == socket.gethostname()
        with pytest.raises(DriverLockError, match="already drives"):
            DriverLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()


def test_live_driver_on_this_host_is_refused_with_its_pid(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write(tmp_path, host=socket.gethostname(), pid=p.pid, since="2026-01-01T00:00:00+00:00")
        with pytest.raises(SweepError, match=rf"driven by pid {p.pid} on .* since 2026-01-01"), \
                driver_lock(tmp_path):
            pass
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == p.pid  # untouched
        with driver_lock(tmp_path, force=True):  # --force takes it over
            assert DriverLock(tmp_path).holder()["pid"] == os.getpid()
    finally:
        p.kill()
        p.wait()


def test_dead_driver_lock_is_taken_over(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # its pid is now (almost certainly) free
    _write(tmp_path, host=socket.gethostname(), pid=p.pid)
    with driver_lock(tmp_path):
        assert DriverLock(tmp_path).holder()["pid"] == os.getpid()


def test_recycled_pid_is_not_the_driver(tmp_path):
    # a live pid whose start time differs from the one recorded is another process
    _write(tmp_path, host=socket.gethostname(), pid=os.getppid(), start="1")
    with driver_lock(tmp_path):
        assert DriverLock(tmp_path).holder()["pid"] == os.getpid()


def test_other_host_is_refused_unless_forced(tmp_path):
    _write(tmp_path, host="gpu-head-7", pid=4242, since="x")
    with pytest.raises(SweepError, match=r"pid 4242 on gpu-head-7.*resume --force"), \
            driver_lock(tmp_path):
        pass
    with driver_lock(tmp_path, force=True):
        pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    lock = DriverLock(tmp_path)
    lock.acquire()
    _write(tmp_path, host="elsewhere", pid=1)  # taken over by force from elsewhere
    lock.release()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["host"] == "elsewhere"
