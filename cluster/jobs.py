"""Ray Jobs API plumbing for ``sweepcast submit|status|logs|stop``.

* :func:`resolve_address`: ``--address`` > ``$RAY_API_SERVER_ADDRESS`` > ``$RAY_ADDRESS`` (when
  it is an ``http(s)://`` URL) > the dashboard of the local cluster ``sweepcast cluster up``
  recorded.
* :func:`split_credentials` / :func:`redact`: a dashboard URL may carry ``user:password@``; the
  credentials become an ``Authorization: Basic`` header and the client only ever sees (and
  Ray only ever logs) the bare URL. Every message we print goes through :func:`redact`.
* :func:`build_runtime_env`: the working dir (uploaded by Ray as a package), env vars, and
  the rules for what may be forwarded: the MLflow URI without credentials, never a secret.
* :func:`client`: a ``JobSubmissionClient`` built from the above.

Nothing here imports ``orchestrator`` (``cluster`` sits below it).
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_KEY_RE = re.compile(r"(password|passwd|secret|token|api_?key|credential|auth)", re.IGNORECASE)
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")

# Never uploaded with the working dir (Ray also honours .gitignore files in it).
DEFAULT_EXCLUDES = [
    ".git", ".venv", "venv", "__pycache__", "*.pyc", "mlruns", "mlartifacts", "mlflow.db",
    "sweepcast_results", ".sweepcast", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    "sweepcast.env",
]
# Forwarded from the submitting shell to the job when set there (credentials stripped).
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "SWEEPCAST_STORAGE_PATH")


class JobsError(RuntimeError):
    """A job command cannot proceed; the message is safe to print (credentials redacted)."""


def redact(text: str) -> str:
    """``text`` with the userinfo of every ``scheme://user:pass@`` URL replaced by ``***``."""
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}***@", str(text))


@dataclass(frozen=True)
class Endpoint:
    """A dashboard address split into the bare URL and an optional auth header."""

    url: str
    headers: dict[str, str] | None = None

    def __repr__(self) -> str:  # never show the header
        return f"Endpoint(url={self.url!r}, auth={'yes' if self.headers else 'no'})"


def split_credentials(address: str) -> Endpoint:
    """Turn ``http://user:pw@host:8265`` into ``http://host:8265`` plus a Basic auth header.

    Raises:
        JobsError: not an ``http(s)://`` URL with a host.
    """
    if "://" not in address:
        address = f"http://{address}"
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobsError(
            f"--address must be the dashboard's http(s)://HOST:PORT, got {redact(address)!r}"
        )
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    headers = None
    if parts.username is not None:
        from urllib.parse import unquote

        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return Endpoint(url=url, headers=headers)


def resolve_address(address: str | None, run_dir: Path | None = None) -> str:
    """The dashboard address to use (see module docstring for the order).

    Raises:
        JobsError: none could be found; the message says how to give one.
    """
    if address:
        return address
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        v = os.environ.get(var, "")
        if v.startswith(("http://", "https://")):
            return v
    from cluster.local import ClusterError, default_run_dir, load_state

    try:
        state = load_state(run_dir or default_run_dir())
    except ClusterError:
        state = None
    if state is not None and state.dashboard_url:
        return state.dashboard_url
    raise JobsError(
        "no Ray dashboard address: pass --address http://HOST:8265, set "
        "RAY_API_SERVER_ADDRESS, or start a local cluster with `sweepcast cluster up`"
    )


def _wants_ray_token(url: str, run_dir: Path | None) -> bool:
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return True
    from cluster.local import ClusterError, default_run_dir, load_state

    try:
        state = load_state(run_dir or default_run_dir())
    except ClusterError:
        return False
    return state.auth == "token" and state.dashboard_url.rstrip("/") == url


def client(address: str, run_dir: Path | None = None) -> Any:
    """A ``ray.job_submission.JobSubmissionClient`` for ``address``.

    Credentials in the URL become an ``Authorization: Basic`` header (for a proxy in front of
    the dashboard). When the cluster uses Ray token auth (``RAY_AUTH_MODE=token`` here, or the
    local cluster recorded in ``run_dir`` serves this address with token auth) Ray's token is
    sent in ``X-Ray-Authorization``. Neither is ever printed.

    Raises:
        JobsError: the dashboard cannot be reached (address redacted in the message).
    """
    from ray.job_submission import JobSubmissionClient

    from cluster.local import ray_token

    ep = split_credentials(address)
    headers = dict(ep.headers or {})
    if _wants_ray_token(ep.url, run_dir):
        tok = ray_token()
        if tok is None:
            raise JobsError("the cluster uses Ray token auth but no token was found "
                            "($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
        headers["X-Ray-Authorization"] = f"Bearer {tok}"
    try:
        return JobSubmissionClient(ep.url, headers=headers or None)
    except Exception as e:  # noqa: BLE001 - ConnectionError, requests errors, version mismatch
        raise JobsError(f"cannot reach the Ray Jobs API at {ep.url}: {redact(e)}") from None


def strip_credentials(uri: str) -> str:
    """``uri`` without ``user:password@`` (for forwarding a tracking URI to a job)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_env_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["K=V", ...]`` -> dict; secret-looking keys are refused.

    Raises:
        JobsError: a pair without ``=`` or a key that looks like a secret (a job's
            runtime_env is readable by anyone who can reach the dashboard).
    """
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise JobsError(f"--env must be KEY=VALUE, got {p.split('=')[0]!r} without '='")
        k, v = p.split("=", 1)
        if not k:
            raise JobsError(f"--env needs a key before '=', got {p[:1]!r}...")
        if SECRET_KEY_RE.search(k):
            raise JobsError(
                f"--env {k}: refusing to ship a secret in the job's runtime_env (visible on the "
                "dashboard); provide it in the cluster's environment instead"
            )
        out[k] = v
    return out


def build_runtime_env(
    working_dir: Path,
    *,
    env: dict[str, str] | None = None,
    excludes: list[str] | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The job's runtime_env and notes for the user.

    The working dir is shipped whole (minus :data:`DEFAULT_EXCLUDES` and ``.gitignore``d files);
    :data:`FORWARDED_ENV` variables set in ``environ`` (default ``os.environ``) are forwarded
    unless ``env`` sets them, ``MLFLOW_TRACKING_URI`` with its credentials stripped.
    ``OMP_NUM_THREADS=1`` unless given.

    Returns:
        ``(runtime_env, notes)``; notes are safe to print.
    """
    environ = dict(os.environ if environ is None else environ)
    env_vars = dict(env or {})
    notes: list[str] = []
    for var in FORWARDED_ENV:
        if var in env_vars or not environ.get(var):
            continue
        val = environ[var]
        if var == "MLFLOW_TRACKING_URI":
            bare = strip_credentials(val)
            if bare != val:
                notes.append(
                    "MLFLOW_TRACKING_URI carries credentials: forwarded without them; the "
                    "cluster must provide MLFLOW_TRACKING_USERNAME/PASSWORD in its environment"
                )
            val = bare
        env_vars[var] = val
    env_vars.setdefault("OMP_NUM_THREADS", "1")
    runtime_env: dict[str, Any] = {
        "working_dir": str(Path(working_dir).resolve()),
        "excludes": list(DEFAULT_EXCLUDES) + list(excludes or []),
        "env_vars": env_vars,
    }
    return runtime_env, notes


TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def status_name(status: Any) -> str:
    """``JobStatus.SUCCEEDED`` / ``"SUCCEEDED"`` -> ``"SUCCEEDED"``."""
    return str(getattr(status, "value", status)).split(".")[-1]
