"""Where a sweep keeps its state: a folder, or an object store (``s3://``, ``gs://``, ...).

``storage_path`` (or ``SWEEPCAST_STORAGE_PATH``) is either a folder (local, or a shared volume
such as NFS) or a URI that ``pyarrow.fs.FileSystem.from_uri`` understands, e.g.
``s3://bucket/prefix`` or, for an S3-compatible store,
``s3://bucket/prefix?endpoint_override=host:port&scheme=http``.

With a URI, Tune writes its experiment state and the trials' checkpoints to
``<uri>/<name>`` through the pyarrow filesystem (workers upload their checkpoints directly).
sweepcast's own state files (the resume manifest, the tracker's run ids, the scoring state,
the ledger, the tracker's spill file) are written with plain file I/O to a local *mirror* of
the experiment folder, ``$SWEEPCAST_CACHE_DIR/mirrors/<hash of the root URI>/<name>`` (default
cache ``~/.cache/sweepcast``), which :class:`Mirror` uploads to ``<uri>/<name>``: every file
that changed, every ``period_s`` seconds while the sweep runs and once more at its end.
``sweepcast resume`` downloads the experiment's top-level files (sweepcast's and Tune's) and
``tracking/`` into a fresh mirror before anything else. Limits: the bucket may lag the mirror
by up to ``period_s`` (a driver killed in that window loses the last writes, as Tune's own
snapshot may lag by ``TUNE_GLOBAL_CHECKPOINT_S``); deletions in the mirror are not propagated
(sweepcast only rewrites its state files).

Credentials come from the store's usual sources (for S3: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``~/.aws``, an instance role), never from
the URI: pyarrow keeps credentials given in the URI inside the filesystem object, which Tune
pickles into its state files, so :func:`check_uri` refuses them. Every URI sweepcast prints or
records goes through :func:`~orchestrator.tracking.base.mask_uri`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from orchestrator.tracking.base import mask_uri

log = logging.getLogger("sweepcast.storage")

_URI_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
#: Schemes pyarrow.fs resolves to a remote filesystem (``file://`` is a local folder).
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
#: The driver lock's file name (:mod:`orchestrator.driver_lock` holds it; never uploaded as is).
LOCK_FILE = "sweepcast_driver.lock"
#: Files never uploaded: the lock (kept remotely by :mod:`orchestrator.driver_lock`), temp files,
#: and the tracker's staged artifacts (already sent to MLflow).
_NO_UPLOAD = re.compile(r"(^|/)(sweepcast_driver\.lock|\.tmp-[^/]*|[^/]*\.tmp|staged_artifacts/.*)$")
#: Subfolders of the experiment that belong to sweepcast (downloaded with the top-level files).
_OWN_DIRS = ("tracking",)


class StorageError(RuntimeError):
    """The storage location cannot be used; the message names it (credentials masked)."""


def is_uri(value: str) -> bool:
    """True for an object-store URI (``file://`` and plain paths are folders)."""
    m = _URI_RE.match(value)
    return bool(m) and m.group("scheme").lower() != "file"


def check_uri(value: str) -> None:
    """Static checks of a storage URI (no network): a known scheme, a bucket, no credentials.

    Raises:
        ValueError: naming the problem and the (masked) value.
    """
    shown = mask_uri(value)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unknown storage scheme {scheme + '://'!r} (use a folder or one of "
                         f"{', '.join(s + '://' for s in SCHEMES)}), got {shown!r}")
    if shown != value:
        raise ValueError(
            "storage_path must not carry credentials (Tune would store them in its state "
            "files); give them in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
            f"for s3://), got {shown!r}")
    if not parts.hostname and scheme not in ("hdfs", "viewfs"):
        raise ValueError(f"storage URI has no bucket, got {shown!r}")


@dataclass(frozen=True)
class Remote:
    """A folder on an object store: the URI (query kept), its filesystem and path on it."""

    uri: str
    fs: Any  # pyarrow.fs.FileSystem
    path: str  # the path on ``fs`` (e.g. ``bucket/prefix``), no trailing slash

    @property
    def shown(self) -> str:
        """The URI with any credentials masked (for messages, tags, params)."""
        return mask_uri(self.uri)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def child(self, name: str) -> Remote:
        """``<this>/<name>``, the URI's query (endpoint etc.) kept."""
        p = urlsplit(self.uri)
        uri = urlunsplit(p._replace(path=p.path.rstrip("/") + "/" + name))
        return Remote(uri, self.fs, f"{self.path}/{name}")

    def parent(self) -> Remote:
        p = urlsplit(self.uri)
        uri = urlunsplit(p._replace(path=p.path.rstrip("/").rsplit("/", 1)[0]))
        return Remote(uri, self.fs, self.path.rsplit("/", 1)[0])

    def key(self) -> str:
        """A stable short id of this location (scheme, host and path; the query left out)."""
        p = urlsplit(self.uri)
        return hashlib.sha1(f"{p.scheme}://{p.netloc}{p.path}".rstrip("/").encode()).hexdigest()[:12]

    # -- small file I/O ------------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes | None:
        """The content of ``<this>/<rel>``, None if there is no such file."""
        try:
            with self.fs.open_input_stream(f"{self.path}/{rel}") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{self.path}/{rel}") as f:
            f.write(data)

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(f"{self.path}/{rel}")
        except FileNotFoundError:
            pass

    def exists(self, rel: str) -> bool:
        from pyarrow.fs import FileType

        return self.fs.get_file_info(f"{self.path}/{rel}").type != FileType.NotFound

    def listdir(self) -> list[Any]:
        """The direct entries (``pyarrow.fs.FileInfo``) of this folder; [] if it is absent."""
        from pyarrow.fs import FileSelector

        return self.fs.get_file_info(FileSelector(self.path, allow_not_found=True))


def open_remote(value: str) -> Remote:
    """Check ``value`` (:func:`check_uri`), resolve it with pyarrow and check that its bucket
    answers, before anything is started.

    Raises:
        StorageError: unknown scheme, credentials in the URI, an endpoint that does not answer,
            a missing bucket, or refused credentials; the message holds the masked URI.
    """
    shown = mask_uri(value)
    try:
        check_uri(value)
    except ValueError as e:
        raise StorageError(str(e)) from None
    try:
        import pyarrow.fs as pafs
    except ImportError:  # pragma: no cover - pyarrow comes with ray[tune]
        raise StorageError(f"object-store storage needs pyarrow (pip install pyarrow), "
                           f"got {shown!r}") from None
    try:
        fs, path = pafs.FileSystem.from_uri(value)
    except (ValueError, OSError) as e:  # ArrowInvalid is a ValueError
        raise StorageError(f"cannot use {shown!r}: {mask_uri(str(e))[:300]}") from None
    path = path.rstrip("/")
    bucket = path.split("/", 1)[0]
    try:
        info = fs.get_file_info(bucket)
    except OSError as e:
        raise StorageError(f"cannot reach {shown!r}: {mask_uri(str(e))[:300]}") from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"bucket {bucket!r} does not exist (or is not visible with these "
                           f"credentials) at {shown!r}")
    return Remote(value, fs, path)


def cache_dir() -> Path:
    """``$SWEEPCAST_CACHE_DIR``, else ``~/.cache/sweepcast``."""
    return Path(os.environ.get("SWEEPCAST_CACHE_DIR") or "~/.cache/sweepcast").expanduser()


def mirror_path(exp: Remote) -> Path:
    """The local mirror of the remote experiment folder ``exp``."""
    return cache_dir() / "mirrors" / exp.parent().key() / exp.name


class Mirror:
    """A local folder kept uploaded to a remote one (see the module docstring).

    ``with Mirror(remote, local):`` uploads changed files every ``period_s`` from a background
    thread and once more on exit; :meth:`pull` downloads the remote state first (resume);
    :meth:`push` uploads now. Upload errors are logged, never raised into the sweep (the next
    round retries), except from :meth:`push` called with ``strict=True``.
    """

    def __init__(self, remote: Remote, local: Path, period_s: float = 1.0) -> None:
        self.remote = remote
        self.local = Path(local)
        self.period_s = period_s
        self._synced: dict[str, tuple[int, int]] = {}  # rel path -> (size, mtime_ns) uploaded
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reset_local(self) -> None:
        """Empty the local mirror (a stale one from an earlier sweep of the same name), all but
        the driver lock (taken before a resume pulls)."""
        import shutil

        self.local.mkdir(parents=True, exist_ok=True)
        for p in self.local.iterdir():
            if p.name == LOCK_FILE:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        self._synced.clear()

    def pull(self) -> list[str]:
        """Replace the local mirror (all but the driver lock) by the remote experiment's
        top-level files and its ``tracking/`` folder; returns the relative paths downloaded."""
        from pyarrow.fs import FileSelector, FileType

        self.reset_local()
        infos = [i for i in self.remote.listdir()
                 if i.type == FileType.File and i.base_name != LOCK_FILE]
        for d in _OWN_DIRS:
            infos += [i for i in self.remote.fs.get_file_info(FileSelector(
                f"{self.remote.path}/{d}", recursive=True, allow_not_found=True))
                if i.type == FileType.File]
        got = []
        for info in infos:
            rel = info.path[len(self.remote.path) + 1:]
            dest = self.local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self.remote.fs.open_input_stream(info.path) as src, open(dest, "wb") as out:
                out.write(src.read())
            st = dest.stat()
            self._synced[rel] = (st.st_size, st.st_mtime_ns)
            got.append(rel)
        return sorted(got)

    def _changed(self) -> list[tuple[str, tuple[int, int]]]:
        out = []
        if not self.local.is_dir():
            return out
        for p in self.local.rglob("*"):
            if not p.is_file():
                continue
            rel = p.relative_to(self.local).as_posix()
            if _NO_UPLOAD.search(rel):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:  # replaced this instant: the next round takes it
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if self._synced.get(rel) != sig:
                out.append((rel, sig))
        return out

    def push(self, strict: bool = False) -> list[str]:
        """Upload the files changed since the last upload; returns their relative paths."""
        done = []
        with self._lock:
            for rel, sig in self._changed():
                try:
                    data = (self.local / rel).read_bytes()
                    self.remote.write_bytes(rel, data)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if strict:
                        raise StorageError(f"cannot upload {rel} to {self.remote.shown}: "
                                           f"{mask_uri(str(e))[:300]}") from None
                    log.warning("cannot upload %s to %s (retried): %s", rel, self.remote.shown,
                                mask_uri(str(e))[:300])
                    continue
                self._synced[rel] = sig
                done.append(rel)
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.push()

    def start(self) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sweepcast-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background uploads and upload what changed since the last round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.push()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
