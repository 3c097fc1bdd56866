"""What tracking costs a Tune sweep: none vs sweepcast's tracker vs Ray's MLflowLoggerCallback.

Usage::

    python benchmarks/tracking.py --trials 8 --results 100 --json OUT [--skip-ray-callback]
                                  [--repeats N] [--cpus 2]

Starts a real ``mlflow server`` on 127.0.0.1 (random port, SQLite store in a temp dir) and a
local Ray, then runs the same Tune workload (``--trials`` trials, each reporting ``--results``
results of 3 metrics as fast as it can, 1 CPU each) three ways, in one Ray session:

* ``none``: no tracking callback;
* ``sweepcast``: sweepcast's ``SweepCallback`` + ``MlflowTracker`` (parent run, nested trial
  runs, every point); the wall time runs until the tracker has flushed every point;
* ``ray_mlflow``: Ray's ``MLflowLoggerCallback`` (one run per trial, synchronous logging).

Warm-up runs (not timed) of ``none`` and ``sweepcast`` start Ray's workers and load MLflow's
client first. With ``--repeats N`` each variant runs N times, in alternating order, and the
median wall time is reported. Afterwards every variant's runs are
read back from the server and the user metric points counted.

Writes ``{"wall_s": {...}, "ratio_vs_none": {...}, "points_logged": {...},
"points_reported": n, ...}`` to ``--json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

METRICS = ("loss", "accuracy", "lr")


def bench_train(config: dict[str, Any]) -> None:
    """Reports ``results`` results of 3 metrics (plus ``epoch``) as fast as possible."""
    from ray import tune

    n = int(config["results"])
    seed = float(config["seed"])
    for epoch in range(1, n + 1):
        tune.report({
            "epoch": epoch,
            "loss": 1.0 / (epoch + seed),
            "accuracy": 1.0 - 1.0 / (epoch + 1 + seed),
            "lr": 0.1 / epoch,
        })


def run_variant(variant: str, args: argparse.Namespace, uri: str, storage: Path,
                tag: str) -> dict[str, Any]:
    """One Tune run; returns wall seconds and where its runs are."""
    from ray import tune

    callbacks: list[Any] = []
    tracker = None
    experiment = f"bench-{variant}-{tag}"
    key = str(storage / experiment)
    if variant == "sweepcast":
        from orchestrator.callbacks import Ledger, SweepCallback
        from orchestrator.tracking import MlflowTracker
        from orchestrator.tracking.registry import register_tracker

        tracker = MlflowTracker(uri, experiment=experiment, spill_dir=storage / experiment / "trk")
        register_tracker(key, tracker)
        callbacks.append(
            SweepCallback(key, Ledger("accuracy", "max", args.results), out=None)
        )
    elif variant == "ray_mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(
            MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment, save_artifact=False)
        )
    tuner = tune.Tuner(
        tune.with_resources(bench_train, {"cpu": 1}),
        param_space={"results": args.results, "seed": tune.grid_search(list(range(args.trials)))},
        tune_config=tune.TuneConfig(metric="accuracy", mode="max"),
        run_config=tune.RunConfig(
            name=experiment, storage_path=str(storage), callbacks=callbacks, verbose=0,
        ),
    )
    t0 = time.perf_counter()
    if tracker is not None:
        tracker.start_sweep(experiment, {"benchmark": "tracking"}, params={"trials": args.trials})
    t1 = time.perf_counter()
    tuner.fit()
    t2 = time.perf_counter()
    if tracker is not None:
        tracker.end_sweep({"trials": args.trials})
        if not tracker.flush(600):
            raise RuntimeError("sweepcast tracker did not flush within 600 s")
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "experiment": experiment}
    if tracker is not None:
        out["stats"] = dict(tracker.stats)
        # where the time went: synchronous parent-run start, the Tune run, the final flush
        out["phases_s"] = {"start_sweep": round(t1 - t0, 3), "fit": round(t2 - t1, 3),
                           "flush": round(t0 + wall - t2, 3)}
        tracker.close()
    return out


def count_points(uri: str, experiment: str) -> int:
    """User metric points (``METRICS``) stored for all runs of ``experiment``."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return 0
    n = 0
    for r in c.search_runs([exp.experiment_id], max_results=1000):
        for k in METRICS:
            if k in r.data.metrics:
                n += len(c.get_metric_history(r.info.run_id, k))
    return n


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--results", type=int, default=100)
    ap.add_argument("--json", type=Path, required=True, help="where to write the result")
    ap.add_argument("--skip-ray-callback", action="store_true",
                    help="leave out Ray's MLflowLoggerCallback (slow)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per variant (median reported)")
    ap.add_argument("--cpus", type=int, default=2, help="num_cpus for the local Ray")
    args = ap.parse_args(argv)
    for name in ("trials", "results", "repeats", "cpus"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from conftest import start_mlflow_server, stop_mlflow_server
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    variants = ["none", "sweepcast"] + ([] if args.skip_ray_callback else ["ray_mlflow"])
    with tempfile.TemporaryDirectory(prefix="sweepcast-bench-") as tmp:
        tmp_path = Path(tmp)
        proc, uri = start_mlflow_server(tmp_path / "mlflow")
        try:
            ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING")
            try:
                # Warm-up (not timed): Ray's workers, and the tracker's imports and connection.
                for v in ("none", "sweepcast"):
                    run_variant(v, args, uri, tmp_path / "tune", "warmup")
                walls: dict[str, list[float]] = {v: [] for v in variants}
                last: dict[str, dict[str, Any]] = {}
                for rep in range(args.repeats):
                    # alternate the order so that drifting machine load hits both alike
                    for v in (variants if rep % 2 == 0 else variants[::-1]):
                        r = run_variant(v, args, uri, tmp_path / "tune", f"r{rep}")
                        walls[v].append(r["wall_s"])
                        last[v] = r
                        print(f"rep {rep}: {v:<11} {r['wall_s']:8.2f} s", file=sys.stderr)
            finally:
                ray.shutdown()
            points = {v: count_points(uri, last[v]["experiment"]) for v in variants if v != "none"}
        finally:
            stop_mlflow_server(proc)
    wall = {v: statistics.median(w) for v, w in walls.items()}
    result: dict[str, Any] = {
        "wall_s": {v: round(wall[v], 3) for v in variants},
        "ratio_vs_none": {v: round(wall[v] / wall["none"], 3) for v in variants if v != "none"},
        "points_logged": points,
        "points_reported": args.trials * args.results * len(METRICS),
        "runs_s": {v: [round(x, 3) for x in w] for v, w in walls.items()},
        "sweepcast_tracker_stats": last["sweepcast"].get("stats"),
        "sweepcast_phases_s": last["sweepcast"].get("phases_s"),
        "args": {"trials": args.trials, "results": args.results, "repeats": args.repeats,
                 "cpus": args.cpus, "skip_ray_callback": args.skip_ray_callback},
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
