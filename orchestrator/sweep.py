"""Run a sweep: a validated ``SweepConfig`` -> a ``ray.tune.Tuner`` -> a recorded sweep.

Order of a run (nothing starts if an early step fails):

1. Tracking first: the MLflow URI (``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the
   working directory) must answer, else :class:`SweepError` naming the URI without credentials.
2. Ray: the cluster at ``RAY_ADDRESS`` if set, else a local Ray sized to the machine (no
   dashboard, worker logs not forwarded; a trial's traceback reaches the table and MLflow).
3. The Tuner: the trainable with its resources, the search space (+ ``max_epochs``), the
   searcher (Tune's variant generator for random/grid, ``OptunaSearch`` with TPE or CMA-ES and
   the seed, wrapped in a ``ConcurrencyLimiter``), the scheduler (:mod:`orchestrator.schedulers`),
   ``max_concurrent_trials``, ``FailureConfig(max_failures)``, stop at ``epoch >= max_epochs``,
   and the :class:`~orchestrator.callbacks.SweepCallback` feeding the tracker.
4. At the end: summary metrics on the parent run, a final table, the tracker flushed and closed.

Experiment folder: ``<storage_path>/<name>`` (``storage_path`` default ``./sweepcast_results``);
if that folder already holds a sweep, ``<name>_<UTC timestamp>``. It holds Tune's state and
checkpoints, ``sweepcast_tracker.json`` (the tracker's state: run ids, for ``resume``),
``sweepcast_ledger.json`` (per-trial outcomes) and ``tracking/`` (the tracker's spill file).
With an object-store ``storage_path`` (``s3://...``) Tune writes to ``<uri>/<name>`` and
sweepcast's files go to a local mirror uploaded there (:mod:`orchestrator.storage`).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from orchestrator.tracking.base import Tracker, mask_uri

log = logging.getLogger("sweepcast.sweep")

DEFAULT_STORAGE = "sweepcast_results"
TRACKER_STATE_FILE = "sweepcast_tracker.json"
LEDGER_FILE = "sweepcast_ledger.json"

# Exit codes of `sweepcast run` (and `resume`).
EXIT_OK = 0  # every trial completed or was pruned
EXIT_ERROR = 1  # the sweep could not start (tracking/Ray unavailable) or crashed
EXIT_INVALID = 2  # invalid config: nothing started
EXIT_TRIALS_FAILED = 3  # the sweep ran, but at least one trial failed for good


class SweepError(RuntimeError):
    """The sweep could not start or run; the message is for the user (no credentials)."""


class SweepConfigError(SweepError):
    """The config passed validation but cannot be run as given (exit 2; nothing started)."""


@dataclass
class SweepResult:
    """The outcome of a sweep (plain data)."""

    name: str
    experiment_path: str
    metric: str
    mode: str
    max_epochs: int
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)  # ledger records
    best_trial: str | None = None
    best_value: float | None = None
    parent_run_id: str | None = None
    wall_s: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        c = {"completed": 0, "pruned": 0, "failed": 0}
        for r in self.trials.values():
            if r["status"] in c:
                c[r["status"]] += 1
        return c

    @property
    def exit_code(self) -> int:
        return EXIT_TRIALS_FAILED if self.counts["failed"] else EXIT_OK


# ---------------------------------------------------------------------------- building blocks
def experiment_dir(cfg: Any, now: _dt.datetime | None = None) -> Path:
    """``<storage>/<name>``, or ``<storage>/<name>_<YYYYmmdd-HHMMSS>`` if that one is taken.

    For an object-store ``storage_path`` this is the local mirror of the remote experiment
    folder (:func:`locate_experiment` gives both).
    """
    return locate_experiment(cfg, now)[0]


def storage_setting(cfg: Any) -> tuple[str, str]:
    """``(where, value)``: the config's ``storage_path``, else ``SWEEPCAST_STORAGE_PATH`` (set by
    the cluster manifests, H6), else the default folder; ``where`` names the setting."""
    if cfg.storage_path:
        return "storage_path", cfg.storage_path
    env = os.environ.get("SWEEPCAST_STORAGE_PATH")
    return ("SWEEPCAST_STORAGE_PATH", env) if env else ("storage_path", DEFAULT_STORAGE)


def locate_experiment(cfg: Any, now: _dt.datetime | None = None) -> tuple[Path, Any]:
    """``(folder, remote)``: the experiment folder and, for an object-store storage path, its
    remote folder (an :class:`orchestrator.storage.Remote`; ``folder`` is then its local
    mirror), else ``None``. A remote storage path is checked reachable here, before anything
    starts.

    Raises:
        SweepConfigError: the storage path is invalid or its store does not answer.
    """
    from orchestrator.config import check_storage_path
    from orchestrator.storage import StorageError, is_uri, mirror_path, open_remote

    where, raw = storage_setting(cfg)
    try:
        check_storage_path(raw)
        root = open_remote(raw) if is_uri(raw) else None
    except (ValueError, StorageError) as e:
        raise SweepConfigError(f"{where}: {e}") from None
    stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%d-%H%M%S")
    if root is not None:
        try:
            taken = root.child(cfg.name).listdir()
        except OSError as e:
            raise SweepConfigError(f"{where}: cannot list {root.shown!r}: "
                                   f"{mask_uri(str(e))[:300]}") from None
        remote = root.child(cfg.name if not taken else f"{cfg.name}_{stamp}")
        return mirror_path(remote), remote
    storage = Path(raw.removeprefix("file://")).expanduser().resolve()
    path = storage / cfg.name
    if path.exists() and any(path.iterdir()):
        path = storage / f"{cfg.name}_{stamp}"
    return path, None


def load_trainable(cfg: Any) -> Any:
    """Import ``cfg.trainable`` (``module:function``)."""
    mod = importlib.import_module(cfg.trainable_module)
    fn = getattr(mod, cfg.trainable_function)
    if not callable(fn):
        raise SweepError(f"trainable {cfg.trainable!r} is not callable")
    return fn


def build_searcher(cfg: Any, max_concurrent: int) -> Any:
    """Tune search algorithm for ``cfg.search`` (``None`` would also mean Tune's default)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    algo, seed = cfg.search.algorithm, cfg.search.seed
    if algo in ("random", "grid"):
        return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from orchestrator.config_space import to_optuna_distributions

    if algo == "optuna-tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif algo == "optuna-cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    else:  # the config model only allows the four above
        raise SweepError(f"search.algorithm: unknown algorithm {algo!r}")
    from orchestrator.scoring_wiring import tune_objective  # H5: metric, or "score" (max)

    metric, mode = tune_objective(cfg)
    searcher = OptunaSearch(
        space=to_optuna_distributions(cfg.search.space),
        metric=metric,
        mode=mode,
        sampler=sampler,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def param_space(cfg: Any) -> dict[str, Any]:
    """Tune ``param_space``: the sampled entries (random/grid only) plus ``max_epochs``."""
    space: dict[str, Any] = {"max_epochs": int(cfg.max_epochs)}
    if cfg.search.algorithm in ("random", "grid"):
        from orchestrator.config_space import to_tune_space

        space.update(to_tune_space(cfg.search.space))
    return space


def sweep_params(cfg: Any) -> dict[str, Any]:
    """The sweep-level params recorded on the parent run."""
    return {
        "trainable": cfg.trainable,
        "metric": cfg.metric,
        "mode": cfg.mode,
        "max_epochs": cfg.max_epochs,
        "num_samples": cfg.num_samples,
        "max_concurrent": cfg.max_concurrent,
        "search.algorithm": cfg.search.algorithm,
        "search.seed": cfg.search.seed,
        "pruning": cfg.pruning.model_dump(mode="json"),
        "resources": cfg.resources.model_dump(mode="json"),
        "failure.max_failures": cfg.failure.max_failures,
    }


def init_ray(address: str | None = None) -> str:
    """Connect to ``address`` (or ``RAY_ADDRESS``) or start a local Ray; returns a description.

    Reuses an already initialised Ray (tests, notebooks).
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return "Ray (already initialised)"
    kw: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    try:
        if address:
            ray.init(address=address, **kw)
            where = f"Ray cluster at {mask_uri(address)}"
        else:
            ray.init(**kw)
            where = "local Ray"
    except Exception as e:  # noqa: BLE001 - any start failure is reported to the user
        target = mask_uri(address) if address else "a local Ray"
        raise SweepError(f"cannot start or reach {target}: {mask_uri(str(e))[:300]}") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    gpus = ray.cluster_resources().get("GPU", 0)
    return f"{where} ({cpus:g} CPU{'s' if cpus != 1 else ''}, {gpus:g} GPU)"


def quiet_tune() -> None:
    """Readable output: our own progress lines instead of Tune's tables and log lines.

    Set before Ray/Tune start; a user's own settings of these variables win.
    """
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # tracebacks go to MLflow/table
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass


def default_max_concurrent(cfg: Any) -> int:
    """``cfg.max_concurrent``, else as many trials as the cluster's CPUs (or GPUs) fit."""
    if cfg.max_concurrent:
        return int(cfg.max_concurrent)
    import ray

    res = ray.cluster_resources()
    fits = []
    if cfg.resources.cpu > 0:
        fits.append(res.get("CPU", 1) / cfg.resources.cpu)
    if cfg.resources.gpu > 0:
        fits.append(res.get("GPU", 0) / cfg.resources.gpu)
    return max(1, int(min(fits))) if fits else max(1, int(res.get("CPU", 1)))


def searcher_limit(cfg: Any, max_conc: int) -> int:
    """How many live trials (running, pending or paused) the searcher may create.

    ``max_conc`` normally: the searcher's concurrency limit is what bounds ``max_concurrent``,
    and under it Tune keeps no pending trial. The curve scheduler's ``pause_ahead`` pauses a
    trial ahead of its peers only while another trial waits to run, so when ``max_concurrent``
    is not set (the resources bound how many trials run at once) the searcher may create as
    many again as pending trials. With ``max_concurrent`` set there is no pending pool and
    ``pause_ahead`` has no effect (a paused trial would hold a slot of the limit).
    """
    p = cfg.pruning
    if (cfg.max_concurrent is None and getattr(p, "scheduler", None) == "curve"
            and getattr(p, "pause_ahead", False)):
        return 2 * max_conc
    return max_conc


def make_tracker(cfg: Any, exp_dir: Path) -> Tracker:
    """The sweep's MLflow tracker, checked reachable (raises :class:`SweepError` if not)."""
    from orchestrator.tracking.mlflow_tracker import MlflowTracker, TrackingUnavailableError

    tracker = MlflowTracker(
        experiment=cfg.experiment_name,
        spill_dir=exp_dir / "tracking",
        state_path=exp_dir / TRACKER_STATE_FILE,
    )
    try:
        tracker.check_reachable()
    except TrackingUnavailableError as e:
        raise SweepError(str(e)) from None
    return tracker


# ---------------------------------------------------------------------------- the run
def run_sweep(
    cfg: Any,
    *,
    tracker: Tracker | None = None,
    out: TextIO | None = sys.stdout,
    ray_address: str | None = None,
    exp_dir: Path | None = None,
    extra_callbacks: list[Any] | None = None,
) -> SweepResult:
    """Run the sweep ``cfg`` (a validated ``SweepConfig``) to the end and record it.

    Args:
        cfg: the sweep config.
        tracker: where to record (default: an :class:`MlflowTracker` on the default URI,
            checked reachable before Ray starts). The caller keeps ownership of a given tracker
            except that ``end_sweep`` is called; a default tracker is closed here.
        out: progress lines and the final table (``None``: silent).
        ray_address: overrides ``RAY_ADDRESS``.
        exp_dir: the experiment folder (default :func:`experiment_dir`).
        extra_callbacks: more Tune callbacks (called after sweepcast's own).

    Raises:
        SweepConfigError: the pruning config cannot be built (before anything starts).
        SweepError: tracking or Ray unavailable, or Tune failed as a whole.
    """
    remote = None
    if exp_dir is None:
        exp_dir, remote = locate_experiment(cfg)  # a remote store is checked reachable here
    exp_dir = Path(exp_dir)
    from orchestrator.schedulers import SchedulerConfigError, VerdictSink, build_scheduler

    try:  # a pruning config that cannot work is a config error: before anything starts
        scheduler = build_scheduler(cfg, VerdictSink(str(exp_dir)))
    except SchedulerConfigError as e:
        raise SweepConfigError(str(e)) from None
    mirror = start_mirror(remote, exp_dir, fresh=True)
    own_tracker = tracker is None
    if tracker is None:
        tracker = make_tracker(cfg, exp_dir)  # before Ray: an unreachable MLflow starts nothing
    try:
        # one driver per experiment folder (vs a `resume` of it)
        with driver_lock(exp_dir, remote=remote), mirror:
            quiet_tune()
            where = init_ray(ray_address)
            try:
                return _run(cfg, tracker, out, exp_dir, where, list(extra_callbacks or []),
                            scheduler, remote)
            finally:
                if own_tracker:  # closed inside the mirror: its last state write is uploaded
                    own_tracker = False
                    tracker.close(timeout=60)
    finally:
        if own_tracker:
            tracker.close(timeout=60)


def driver_lock(exp_dir: Path, force: bool = False, remote: Any = None) -> Any:
    """The experiment folder's :class:`~orchestrator.driver_lock.DriverLock` (a context
    manager; its refusal is a :class:`SweepError`: exit 1, nothing started); with ``remote``
    (an object-store experiment) also held there."""
    from orchestrator.driver_lock import DriverLock

    return DriverLock(exp_dir, force=force, remote=remote)


def start_mirror(remote: Any, exp_dir: Path, *, fresh: bool) -> Any:
    """A context manager keeping ``exp_dir`` uploaded to ``remote`` while a sweep runs
    (:class:`orchestrator.storage.Mirror`); a no-op one for a folder (``remote`` None).
    ``fresh`` empties a stale local mirror first (a new sweep; a resume pulls instead)."""
    import contextlib

    if remote is None:
        return contextlib.nullcontext()
    from orchestrator.storage import Mirror

    mirror = Mirror(remote, exp_dir)
    if fresh:
        mirror.reset_local()
    return mirror


def _run(
    cfg: Any, tracker: Tracker, out: TextIO | None, exp_dir: Path, where: str,
    extra_callbacks: list[Any], scheduler: Any, remote: Any = None,
) -> SweepResult:
    from ray import tune

    from orchestrator.callbacks import Ledger, SweepCallback
    from orchestrator.tracking.registry import register_tracker

    key = str(exp_dir)
    from orchestrator.progress import attach_views  # H7: live status line + plots in MLflow

    tracker, out = attach_views(cfg, tracker, out)
    max_conc = default_max_concurrent(cfg)
    ledger = Ledger(cfg.metric, cfg.mode, cfg.max_epochs)
    # H5: score every trial (reward - penalty); with objective: score Tune optimises the score
    from orchestrator.scoring_tune import attach_scoring

    scheduler, scoring_cb, (tune_metric, tune_mode) = attach_scoring(
        cfg, scheduler, key, exp_dir, out)
    trainable = tune.with_resources(
        load_trainable(cfg), {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu}
    )
    exp_dir.parent.mkdir(parents=True, exist_ok=True)
    from orchestrator.resume import prepare_resumable  # H6: config + snapshot period for resume
    from orchestrator.tune_snapshot import snapshot_callback

    prepare_resumable(exp_dir, cfg)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(cfg),
        tune_config=tune.TuneConfig(
            metric=tune_metric,
            mode=tune_mode,
            search_alg=build_searcher(cfg, searcher_limit(cfg, max_conc)),
            scheduler=scheduler,
            num_samples=cfg.num_samples,
            # The searcher enforces max_concurrent (ConcurrencyLimiter / variant generator);
            # setting it here too only makes Tune warn that it ignores it.
            trial_dirname_creator=lambda t: t.trial_id,
            # A fresh worker process per trial pays the torch import (30-45 s under load, 5-10 s
            # idle); reusing actors pays it once per worker. Trials still start from their own
            # config and checkpoint: the function trainable is re-entered, not continued.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=exp_dir.name,
            **tune_storage(exp_dir, remote),
            failure_config=tune.FailureConfig(max_failures=cfg.failure.max_failures),
            # Keep enough that the checkpoint the last experiment snapshot names still exists when
            # `sweepcast resume` restores it (2 lost it between snapshots under load).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=5),
            stop={"epoch": int(cfg.max_epochs)},
            callbacks=[
                SweepCallback(key, ledger, out=out, scheduler=cfg.pruning.scheduler),
                scoring_cb,
                snapshot_callback(),  # Tune's snapshot as one file, for `sweepcast resume`
                *extra_callbacks,
            ],
            verbose=0,
        ),
    )
    register_tracker(key, tracker)
    parent = tracker.start_sweep(
        cfg.name,
        cfg.model_dump(mode="json"),
        params=sweep_params(cfg),
        tags={"sweepcast.experiment_dir": location(exp_dir, remote), "sweepcast.ray": where},
    )
    uri = getattr(tracker, "masked_uri", type(tracker).__name__)
    _say(out, f"sweep {cfg.name}: {cfg.num_samples} sample(s), {cfg.search.algorithm} search, "
              f"{cfg.pruning.scheduler} pruning, up to {max_conc} at once on {where}")
    _say(out, f"tracking: {uri}, experiment {cfg.experiment_name!r}, parent run {parent}")
    _say(out, f"experiment folder: {location(exp_dir, remote)}"
              + (f" (local mirror {exp_dir})" if remote is not None else ""))
    return fit_and_finish(tuner, cfg, tracker, ledger, exp_dir, out, keys=[key], what="sweep",
                          location=location(exp_dir, remote))


def tune_storage(exp_dir: Path, remote: Any) -> dict[str, Any]:
    """``RunConfig`` storage arguments: the folder's parent, or the remote experiment's parent
    on its pyarrow filesystem (Tune then writes its state and checkpoints there)."""
    if remote is None:
        return {"storage_path": str(exp_dir.parent)}
    parent = remote.parent()
    return {"storage_path": parent.path, "storage_filesystem": parent.fs}


def location(exp_dir: Path, remote: Any) -> str:
    """Where the experiment is, as shown and recorded: the folder, or the masked remote URI."""
    return str(exp_dir) if remote is None else remote.shown


def fit_and_finish(tuner, cfg, tracker, ledger, exp_dir, out, *, keys, what: str,
                   location: str | None = None):
    """Run ``tuner.fit()``, then always record the sweep's end and unregister its trackers.

    Shared by a fresh run and ``sweepcast resume``. Tune's own failure becomes a ``SweepError``
    (its message with any tracking credentials masked); Ctrl-C is recorded as interrupted.
    """
    from orchestrator.tracking.registry import unregister_tracker

    t0 = time.monotonic()
    status = "failed"
    try:
        tuner.fit()
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as e:
        raise SweepError(f"the {what} failed: {mask_uri(str(e))[:500]}") from e
    finally:
        result = _finish(cfg, tracker, ledger, exp_dir, time.monotonic() - t0, status, location)
        for k in keys:
            unregister_tracker(k)
    if out is not None:
        print_table(result, out)
    return result


def _finish(
    cfg: Any, tracker: Tracker, ledger: Any, exp_dir: Path, wall_s: float, status: str,
    location: str | None = None,
) -> SweepResult:
    best = ledger.best_trial()
    result = SweepResult(
        name=cfg.name,
        experiment_path=location or str(exp_dir),
        metric=cfg.metric,
        mode=cfg.mode,
        max_epochs=cfg.max_epochs,
        trials=ledger.to_dict(),
        best_trial=best.trial_id if best else None,
        best_value=best.best if best else None,
        parent_run_id=tracker.parent_run_id,
        wall_s=wall_s,
    )
    c = result.counts
    epochs_used = sum(r["epochs"] for r in result.trials.values())
    epochs_full = cfg.max_epochs * max(1, len(result.trials))
    summary: dict[str, float] = {
        "trials_total": len(result.trials),
        "trials_completed": c["completed"],
        "trials_pruned": c["pruned"],
        "trials_failed": c["failed"],
        "epochs_used": epochs_used,
        "epochs_saved_fraction": 1.0 - epochs_used / epochs_full if result.trials else 0.0,
        "wall_s": wall_s,
    }
    if result.best_value is not None:
        summary[f"best_{cfg.metric}"] = result.best_value
    try:
        if result.best_trial:
            tracker.set_tags(None, {"sweepcast.best_trial": result.best_trial})
        tracker.end_sweep(summary, status=status)
    except Exception:
        log.warning("could not record the end of the sweep", exc_info=True)
    try:
        (exp_dir / LEDGER_FILE).write_text(json.dumps(result.trials, indent=1, default=str))
    except OSError:
        log.warning("could not write %s", exp_dir / LEDGER_FILE, exc_info=True)
    return result


def _say(out: TextIO | None, line: str) -> None:
    if out is not None:
        print(line, file=out, flush=True)


def print_table(result: SweepResult, out: TextIO) -> None:
    """The final table: one row per trial (status, best metric, epochs used), best first."""
    metric = result.metric
    rows = list(result.trials.values())
    sign = -1.0 if result.mode == "max" else 1.0

    def key(r: dict[str, Any]) -> tuple:
        b = r.get("best")
        return (b is None, sign * b if b is not None else 0.0, r["trial_id"])

    rows.sort(key=key)
    head = f"{'trial':<14} {'status':<10} {'best ' + metric:>18} {'epochs':>8}  params / error"
    print(file=out)
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        best = f"{r['best']:.4g}" if r.get("best") is not None else "-"
        mark = " *" if r["trial_id"] == result.best_trial else ""
        extra = r.get("error") if r["status"] == "failed" else _short_params(r.get("params", {}))
        print(
            f"{r['trial_id'] + mark:<14} {r['status']:<10} {best:>18} "
            f"{str(r['epochs']) + '/' + str(result.max_epochs):>8}  {extra or ''}",
            file=out,
        )
    c = result.counts
    print("-" * len(head), file=out)
    best = (
        f"best {metric} = {result.best_value:.4g} ({result.best_trial})"
        if result.best_trial else f"no trial reported {metric}"
    )
    print(
        f"{len(rows)} trials: {c['completed']} completed, {c['pruned']} pruned, "
        f"{c['failed']} failed; {best}; {result.wall_s:.0f} s",
        file=out,
    )
    out.flush()


def _short_params(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        if k == "max_epochs":
            continue
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    s = " ".join(parts)
    return s if len(s) <= 70 else s[:67] + "..."
