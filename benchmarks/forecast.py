"""Benchmark the curve forecasters on recorded learning curves (issue 3).

    python benchmarks/forecast.py --curves ../shared/data/curves [--max-configs N] --json OUT

``--curves`` is a benchmark folder holding ``curves.csv.gz`` or a folder of such folders. For each
task and cutoff fraction (0.1, 0.2, 0.4, 0.8 of the curve's last epoch), over a seeded sample of
up to N configs per task, each model forecasts the final value from the prefix, and is scored in
the **normalised units of the PFN's normaliser** (``search.forecast.normalise``, fitted on the
prefix; the same map for every model):

* ``loglik``: log of the predictive probability of the bin of width ``H = 0.005`` centred on the
  true final value (a discretised density, so point-mass forecasts such as last-value get a
  finite score too); a true value at the worst end (worse than the reference start, NaN or
  divergent) is censored: its probability is that of the whole worst end ``y <= H/2``.
  Probabilities are floored at ``1e-6`` (``loglik >= log(1e-6 / H) = -8.5``).
* ``mae``: absolute error of the predictive median.
* ``coverage90``: whether the central 90% interval holds the true value.

Epoch 0 (before training) is dropped; steps are epochs; the target is the last epoch. A cell's
curves are forecast as one batch (chunks of 256), as a scheduler forecasts a sweep's running
trials, so the PFN's batch calibration (``search/forecast/pfn_model.py``) sees that cell's
prefixes and nothing else; ``pfn-uncalibrated`` is the same network forecasting each curve on its own.
Latency: forecasts per curve at batch 1 and batch 256 (wall clock, 1 torch thread; the process
CPU time as ``cpu_batch1`` / ``cpu_batch256``, which is what a shared machine's load does not
inflate, and the 1-minute load average while timing); a model
that is slow (the parametric baseline) is timed once per size, without a warm-up call, its
"batch256" on a batch of ``--slow-batch`` curves (8 by default; its numpy MCMC is vectorised over
the batch, so the per-curve cost falls with it: pass 256 for the like-for-like figure).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from search.forecast import Curve, get_model
from search.forecast.normalise import fit_value_map

CUTOFFS = (0.1, 0.2, 0.4, 0.8)
UNCALIBRATED = "pfn-uncalibrated"  # --models label: the PFN with calibration="none"
H = 0.005
P_FLOOR = 1e-6


def find_benchmarks(root: Path) -> list[Path]:
    if (root / "curves.csv.gz").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/curves.csv.gz"))
    if not found:
        raise SystemExit(f"--curves {root}: no curves.csv.gz in it or in its sub-folders")
    return found


def load_curves(folder: Path) -> dict:
    """{(benchmark, task): {config_id: (epochs, values, mode)}} from one curves.csv.gz."""
    raw: dict = defaultdict(lambda: defaultdict(list))
    modes = {}
    with gzip.open(folder / "curves.csv.gz", "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["benchmark"], row["task"])
            m = row["metric"]
            raw[key][row["config_id"]].append((float(row["epoch"]), float(m) if m not in ("", "nan", "NaN") else math.nan))
            modes[key] = "max" if row["higher_is_better"].strip() in ("1", "True", "true") else "min"
    out = {}
    for key, cfgs in raw.items():
        out[key] = {}
        for cid, pts in cfgs.items():
            pts.sort()
            e = np.array([p[0] for p in pts])
            v = np.array([p[1] for p in pts])
            keep = e > 0
            if keep.sum() >= 2:
                out[key][cid] = (e[keep], v[keep], modes[key])
    return out


def build_cases(configs: dict, frac: float):
    """(curves, final values, target steps, modes) for one cutoff fraction."""
    curves, finals, targets, modes = [], [], [], []
    for e, v, mode in configs:
        T = e[-1]
        k = int(np.searchsorted(e, max(e[0], round(frac * T)), side="right"))
        k = max(1, min(k, e.size - 1))
        curves.append(Curve.of(e[:k], v[:k]))
        finals.append(v[-1])
        targets.append(T)
        modes.append(mode)
    return curves, np.array(finals), np.array(targets), modes


def score_curves(forecast, curves, finals, mode) -> dict:
    """Per curve (arrays): loglik, |median - truth|, covered, the truth and the 5/50/95%
    quantiles, all in the normaliser's units (see the module docstring)."""
    n = len(curves)
    maps = [fit_value_map(c.values, mode) for c in curves]
    sign = np.array([vm.sign for vm in maps])
    yt = np.array([float(vm.forward(f)) for vm, f in zip(maps, finals)])

    def F(u: np.ndarray) -> np.ndarray:  # P(normalised value <= u_i) per curve
        v = np.array([vm.inverse(ui) for vm, ui in zip(maps, u)], dtype=np.float64)
        cu = forecast.cdf(v)
        return np.where(sign > 0, cu, 1.0 - cu)

    mass = np.where(yt <= 0.0, F(np.full(n, H / 2)), F(yt + H / 2) - F(yt - H / 2))
    ll = np.log(np.maximum(mass, P_FLOOR) / H)
    q = forecast.quantiles([0.05, 0.5, 0.95])
    qn = np.stack([vm.forward(q[i]) for i, vm in enumerate(maps)])
    lo = np.where(sign > 0, qn[:, 0], qn[:, 2])
    hi = np.where(sign > 0, qn[:, 2], qn[:, 0])
    return {"loglik": ll, "abs_err": np.abs(qn[:, 1] - yt), "covered": (lo <= yt) & (yt <= hi),
            "truth": yt, "q05": lo, "q50": qn[:, 1], "q95": hi}


def _cell_means(s: dict) -> dict:
    """Mean loglik / MAE / coverage of per-curve scores (``score_curves``), and the mean batch
    temperature where the model has one (the PFN's batch calibration, ``temperature`` per curve
    from :func:`curve_scores`)."""
    out = {"loglik": float(s["loglik"].mean()), "mae": float(s["abs_err"].mean()),
           "coverage90": float(s["covered"].mean()), "n": int(s["loglik"].size)}
    if "temperature" in s:
        out["temperature"] = float(s["temperature"].mean())
    return out


def score(forecast, curves, finals, mode) -> dict:
    """Mean loglik / MAE / coverage in the normaliser's units (see the module docstring)."""
    return _cell_means(score_curves(forecast, curves, finals, mode))


def forecast_chunked(model, curves, targets, mode, chunk=256):
    """Forecast in chunks; returns a callable-free list of per-chunk forecasts glued by index."""
    return [(i, model.forecast(curves[i : i + chunk], targets[i : i + chunk], mode=mode)) for i in range(0, len(curves), chunk)]


def curve_scores(model, curves, finals, targets, mode) -> dict:
    """``score_curves`` of every curve, forecast in chunks of 256."""
    parts = []
    for i, fc in forecast_chunked(model, curves, targets, mode):
        part = score_curves(fc, curves[i : i + len(fc)], finals[i : i + len(fc)], mode)
        if hasattr(fc, "temperature"):  # the batch temperature the forecasts of this chunk got
            part["temperature"] = np.full(len(fc), float(fc.temperature))
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def cell_scores(model, curves, finals, targets, mode) -> dict:
    return _cell_means(curve_scores(model, curves, finals, targets, mode))


def sample_configs(cfgs: dict, max_configs: int, seed: int) -> tuple[list[str], list]:
    """The seeded sample of up to ``max_configs`` configs of one task: (their ids, their
    (epochs, values, mode) curves), in id order."""
    ids = sorted(cfgs)
    rng = np.random.default_rng([seed, len(ids)])
    pick = sorted(rng.choice(len(ids), size=min(max_configs, len(ids)), replace=False))
    return [ids[i] for i in pick], [cfgs[ids[i]] for i in pick]


def time_model(model, curves, targets, mode, batch, reps, warmup: bool = True) -> tuple[float, float]:
    """(wall, process CPU) milliseconds per curve; the batch repeats ``curves`` as needed."""
    cs = [curves[i % len(curves)] for i in range(batch)]
    ts = [targets[i % len(curves)] for i in range(batch)]
    if warmup:  # (the numpy MCMC has nothing to warm up; at Domhan's settings a call is minutes)
        model.forecast(cs, ts, mode=mode)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(reps):
        model.forecast(cs, ts, mode=mode)
    k = reps * batch
    return (time.perf_counter() - t) / k * 1e3, (time.process_time() - c) / k * 1e3


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--curves", required=True, type=Path)
    ap.add_argument("--max-configs", type=int, default=200)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="pfn,parametric,last-value",
                    help=f"comma-separated: pfn, {UNCALIBRATED} (the PFN without its batch "
                         "calibration), pfn-schedule, parametric, last-value")
    ap.add_argument("--slow-batch", type=int, default=8,
                    help="batch the parametric model is timed at (its per-curve cost falls with the batch: "
                         "256 measures what the PFN's batch256 figure measures, at minutes per call)")
    ap.add_argument("--parametric-steps", type=int, default=200)
    ap.add_argument("--parametric-walkers", type=int, default=12,
                    help="MCMC walkers (Domhan et al. 2015 used 100 walkers x 2,500 steps)")
    ap.add_argument("--parametric-seed", type=int, default=None,
                    help="seed of the MCMC's random stream (default --seed); the configs stay those "
                         "of --seed, so runs with other MCMC seeds score the same curves")
    ap.add_argument("--latency-only", action="store_true",
                    help="only time the models (on the first task's 40%% cutoff), no cells")
    ap.add_argument("--pfn-weights", type=Path, default=None, help="a .pt other than the shipped one")
    ap.add_argument("--per-curve", action="append", default=[], metavar="TASK:CUTOFF",
                    help="only this (task, cutoff) cell, every curve scored on its own (loglik, "
                         "interval, truth per model, sorted by the first two models' loglik "
                         "difference); repeatable; no latency")
    ap.add_argument("--cells-from", type=Path, action="append", default=[],
                    help="merge cells and latencies of other models from an earlier run's JSON "
                         "(same --curves, --max-configs and --seed), e.g. a slow baseline run apart")
    a = ap.parse_args(argv)
    if a.max_configs <= 0:
        raise SystemExit(f"--max-configs must be positive, got {a.max_configs}")
    import torch

    torch.set_num_threads(1)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    models = {}
    for nm in names:
        mcmc_seed = a.seed if a.parametric_seed is None else a.parametric_seed
        kw = ({"n_steps": a.parametric_steps, "n_walkers": a.parametric_walkers, "seed": mcmc_seed}
              if nm == "parametric" else {})
        if nm in ("pfn", UNCALIBRATED):
            kw = {} if a.pfn_weights is None else {"weights": a.pfn_weights}
            if nm == UNCALIBRATED:  # the same network, each curve on its own (no batch temperature)
                kw["calibration"] = "none"
        models[nm] = get_model("pfn" if nm == UNCALIBRATED else nm, **kw)

    if a.per_curve:
        per_curve(a, models)
        return
    cells = []
    timing_cases = None
    t_start = time.time()
    for folder in find_benchmarks(a.curves):
        data = load_curves(folder)
        for (bench, task), cfgs in sorted(data.items()):
            _, chosen = sample_configs(cfgs, a.max_configs, a.seed)
            mode = chosen[0][2]
            for frac in CUTOFFS:
                curves, finals, targets, _ = build_cases(chosen, frac)
                if timing_cases is None and frac == 0.4:
                    timing_cases = (curves, targets, mode)
                for nm, model in models.items():
                    if a.latency_only:
                        break
                    s = cell_scores(model, curves, finals, targets, mode)
                    cells.append({"benchmark": bench, "task": task, "cutoff": frac, "model": nm, **s})
                    print(f"[{time.time() - t_start:7.0f}s] {bench}/{task} cutoff {frac} {nm}: "
                          f"loglik {s['loglik']:.3f} mae {s['mae']:.4f} cov90 {s['coverage90']:.3f} n {s['n']}",
                          flush=True)
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps({"cells": cells, "partial": True}, indent=1))

    latency = {}
    curves, targets, mode = timing_cases
    for nm, model in models.items():
        if nm == "parametric":
            nb = a.slow_batch
            (w1, c1) = time_model(model, curves, targets, mode, 1, 2, warmup=False)
            (w2, c2) = time_model(model, curves, targets, mode, nb, 1, warmup=False)
            latency[nm] = {"batch1": w1, "batch256": w2, "cpu_batch1": c1, "cpu_batch256": c2,
                           "batch256_measured_on": nb}
        else:
            (w1, c1), (w2, c2) = time_model(model, curves, targets, mode, 1, 20), time_model(model, curves, targets, mode, 256, 5)
            latency[nm] = {"batch1": w1, "batch256": w2, "cpu_batch1": c1, "cpu_batch256": c2}
        latency[nm]["load_average_1min"] = os.getloadavg()[0]
        print(f"latency {nm}: {latency[nm]}", flush=True)

    for extra in a.cells_from:
        prev = json.loads(extra.read_text())
        cells += [c for c in prev["cells"] if c["model"] not in models]
        latency |= {k: v for k, v in prev.get("latency_ms_per_curve", {}).items() if k not in models}
    summary = summarise(cells, latency)
    out = {"cells": cells, "latency_ms_per_curve": latency, "summary": summary,
           "args": {k: str(v) for k, v in vars(a).items()},
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "torch_threads": 1}}
    a.json.write_text(json.dumps(out, indent=1))
    a.json.with_suffix(".md").write_text(render_markdown(out))
    print(json.dumps(summary, indent=1))


def parse_cells(specs: list[str]) -> list[tuple[str, float]]:
    """``TASK:CUTOFF`` strings -> (task, cutoff); the cutoff must be one of ``CUTOFFS``."""
    out = []
    for spec in specs:
        task, _, cut = spec.rpartition(":")
        try:
            frac = float(cut)
        except ValueError:
            frac = math.nan
        if not task or frac not in CUTOFFS:
            raise SystemExit(f"--per-curve {spec!r}: expected TASK:CUTOFF with CUTOFF one of "
                             f"{', '.join(map(str, CUTOFFS))}")
        out.append((task, frac))
    return out


def per_curve(a, models: dict) -> None:
    """The --per-curve mode: every curve of the named cells scored on its own, per model."""
    wanted = parse_cells(a.per_curve)
    found, rows = set(), []
    for folder in find_benchmarks(a.curves):
        for (bench, task), cfgs in sorted(load_curves(folder).items()):
            fracs = [f for t, f in wanted if t == task]
            if not fracs:
                continue
            ids, chosen = sample_configs(cfgs, a.max_configs, a.seed)  # the cell tables' configs
            mode = chosen[0][2]
            for frac in fracs:
                found.add((task, frac))
                curves, finals, targets, _ = build_cases(chosen, frac)
                per = {nm: curve_scores(m, curves, finals, targets, mode) for nm, m in models.items()}
                for i in range(len(curves)):
                    row = {"benchmark": bench, "task": task, "cutoff": frac,
                           "config_id": ids[i], "points": int(curves[i].values.size)}
                    for nm, sc in per.items():
                        row[nm] = {k: (bool(v[i]) if k == "covered" else float(v[i]))
                                   for k, v in sc.items()}
                    rows.append(row)
    missing = [f"{t}:{f}" for t, f in wanted if (t, f) not in found]
    if missing:
        raise SystemExit(f"--per-curve: no task named {', '.join(missing)} under {a.curves}")
    names = list(models)
    if len(names) >= 2:
        rows.sort(key=lambda r: (r["task"], r["cutoff"],
                                 r[names[0]]["loglik"] - r[names[1]]["loglik"]))
    for r in rows:
        parts = [f"{nm} ll {r[nm]['loglik']:6.2f} [{r[nm]['q05']:.4f}, {r[nm]['q50']:.4f}, "
                 f"{r[nm]['q95']:.4f}]" for nm in names]
        print(f"{r['task'][-30:]} {r['cutoff']} {r['config_id']} truth "
              f"{r[names[0]]['truth']:.4f} | " + " | ".join(parts))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"per_curve": rows, "args": {k: str(v) for k, v in vars(a).items()}},
                                 indent=1))


def render_markdown(out: dict) -> str:
    """The per-(task, cutoff) table (loglik / MAE / coverage per model) and the latencies."""
    by = defaultdict(dict)
    for c in out["cells"]:
        by[(c["benchmark"], c["task"], c["cutoff"])][c["model"]] = c
    models = [m for m in ("pfn", UNCALIBRATED, "parametric", "last-value") if any(m in v for v in by.values())]
    head = "| benchmark | task | cutoff | n | " + " | ".join(f"{m} loglik / MAE / cov90" for m in models) + " |"
    lines = [head, "|" + "---|" * (4 + len(models))]
    for (b, t, cut), v in sorted(by.items()):
        n = next(iter(v.values()))["n"]
        cells = []
        for m in models:
            c = v.get(m)
            cells.append("-" if c is None else f"{c['loglik']:.2f} / {c['mae']:.3f} / {c['coverage90']:.2f}")
        best = max((v[m]["loglik"], m) for m in models if m in v)[1]
        cells = [f"**{x}**" if m == best else x for x, m in zip(cells, models)]
        lines.append(f"| {b} | {t} | {cut} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| model | ms/curve batch 1 (wall) | batch 256 (wall) | CPU batch 1 | CPU batch 256 | load avg |")
    lines.append("|---|---|---|---|---|---|")
    for m, l in out.get("latency_ms_per_curve", {}).items():
        lines.append(f"| {m} | {l['batch1']:.3g} | {l['batch256']:.3g} | {l.get('cpu_batch1', float('nan')):.3g} | "
                     f"{l.get('cpu_batch256', float('nan')):.3g} | {l.get('load_average_1min', float('nan')):.1f} |")
    lines.append("")
    lines.append("Summary: " + ", ".join(f"{k} = {v:.3g}" for k, v in out.get("summary", {}).items()))
    return "\n".join(lines) + "\n"


def summarise(cells, latency) -> dict:
    by = defaultdict(dict)
    for c in cells:
        by[(c["benchmark"], c["task"], c["cutoff"])][c["model"]] = c
    s: dict = {}
    if all("pfn" in v and "parametric" in v for v in by.values()) and by:
        wins = [v["pfn"]["loglik"] > v["parametric"]["loglik"] for v in by.values()]
        s["pfn_beats_parametric_loglik_frac"] = float(np.mean(wins))
        for cut in CUTOFFS:
            w = [v["pfn"]["loglik"] > v["parametric"]["loglik"] for k, v in by.items() if k[2] == cut]
            if w:
                s[f"pfn_beats_parametric_loglik_frac_cutoff{cut}"] = float(np.mean(w))
    for nm in {c["model"] for c in cells}:
        cs = [c for c in cells if c["model"] == nm]
        n = sum(c["n"] for c in cs)
        s[f"{nm}_coverage90_overall"] = float(sum(c["coverage90"] * c["n"] for c in cs) / n)
        s[f"{nm}_loglik_mean"] = float(np.mean([c["loglik"] for c in cs]))
        s[f"{nm}_mae_mean"] = float(np.mean([c["mae"] for c in cs]))
    if "pfn" in latency and "parametric" in latency:
        for k in ("batch1", "batch256", "cpu_batch1", "cpu_batch256"):
            if k in latency["parametric"] and k in latency["pfn"]:
                s[f"pfn_speedup_vs_parametric_{k}"] = latency["parametric"][k] / latency["pfn"][k]
    return s


if __name__ == "__main__":
    main()
