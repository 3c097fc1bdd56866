"""How good is ``incumbent: top_fraction``'s bar when every config is judged at one cutoff? (issue 8)

    python benchmarks/bar_diagnostic.py --curves benchmarks/data/schedule_curves [--cutoffs 0.2,0.4]

A diagnostic, not a replay: for each task, every config (up to ``--max-configs``, the replays'
seed-0 sample) is forecast from the first ``cutoff`` of its curve by the schedule-free PFN and the
schedule-aware PFN (``--schedule-weights``, default the shipped ones). Printed per task, cutoff
and model:

* ``bias``: the median of (forecast median - true final), apart for constant and decaying
  schedules (for a loss, negative = the forecast expects a better final than came);
* ``bar``: the k-th best forecast median, k = ceil(top_fraction x configs) -- what the stopper's
  top-fraction bar is when every trial has a forecast -- next to the true top-fraction line of
  the finals;
* ``mc_bar``: the k-th best of draws from every config's predictive distribution (median and
  10-90% over 400 draws): the bar a distribution-based rule would use;
* ``conf_bars``: the bar the stopper builds with ``bar_confidence`` c (the k-th best of every
  config's forecast quantile that it reaches with probability c; c = 0.5 is ``bar``), for each c
  of ``--confidences``;
* the late bloomers' P(final beats the bar) under each.

Writes the same as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules import late_bloomers, load, load_models, shuffled

QS = np.linspace(0.005, 0.995, 101)  # QS[50] = 0.5, the median


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:+.4f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--curves", action="append", required=True)
    ap.add_argument("--cutoffs", default="0.2,0.4")
    ap.add_argument("--top-fraction", type=float, default=0.1)
    ap.add_argument("--max-configs", type=int, default=200)
    ap.add_argument("--schedule-weights", default=None)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--confidences", default="0.6,0.7,0.8",
                    help="bar_confidence values whose bars are printed too")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    cutoffs = [float(c) for c in a.cutoffs.split(",")]
    confs = [float(c) for c in a.confidences.split(",") if c.strip()]
    if not all(0.5 <= c < 1.0 for c in confs):
        raise SystemExit(f"--confidences must be in [0.5, 1), got {a.confidences!r}")
    if not all(0.0 < c < 1.0 for c in cutoffs) or not 0.0 < a.top_fraction < 1.0:
        raise SystemExit(f"--cutoffs and --top-fraction must be in (0, 1), got {a.cutoffs!r}, "
                         f"{a.top_fraction!r}")
    import torch

    torch.set_num_threads(1)
    from search.schedule_stopper import ScheduledCurve

    models = load_models(["pfn", "pfn-schedule"], a.schedule_weights)
    rng = np.random.default_rng(0)
    out = []
    for task, lr in load(a.curves):
        sub = shuffled(task, 0, a.max_configs)
        n, E = sub.values.shape
        sign = 1.0 if sub.mode == "min" else -1.0  # sign * value: lower is better
        fin = sub.values[:, -1]
        ok = np.isfinite(fin)
        lb = late_bloomers(sub)
        line = float(sign * np.quantile(sign * fin[ok], a.top_fraction))
        print(f"{task.task}: true top-{a.top_fraction:.0%} line {line:.4f}, late bloomers "
              f"{[sub.config_ids[i] for i in np.nonzero(lb)[0]]}")
        for cut in cutoffs:
            k = max(1, round(cut * E))
            rows = [i for i in range(n) if ok[i] and np.isfinite(sub.values[i, :k]).all()]
            steps = np.arange(1, k + 1, dtype=np.float64)
            kk = int(np.ceil(a.top_fraction * len(rows)))
            const = np.array([sub.config_ids[i] not in lr or np.ptp(lr[sub.config_ids[i]]) < 1e-12
                              for i in rows])
            for label in ("pfn", "pfn-schedule"):
                sch = [lr.get(sub.config_ids[i]) if label == "pfn-schedule" else None for i in rows]
                fc = models[label].forecast([ScheduledCurve(steps, sub.values[i, :k], s)
                                             for i, s in zip(rows, sch)], float(E), mode=sub.mode)
                Q = sign * fc.quantiles(QS)  # lower is better, increasing in the quantile
                if sign < 0:
                    Q = Q[:, ::-1]
                med = Q[:, len(QS) // 2]
                err = sign * med - fin[rows]
                bar = float(np.sort(med)[kk - 1])
                # lower is better here: reached with probability c = the c-quantile
                conf_bars = {c: float(np.sort(Q[:, int(np.argmin(np.abs(QS - c)))])[kk - 1])
                             for c in confs}
                u = rng.integers(0, len(QS), (a.draws, len(rows)))
                bars = np.sort(Q[np.arange(len(rows))[None, :], u], axis=1)[:, kk - 1]

                def p_beat(b: float, j: int, Q: np.ndarray = Q) -> float:
                    return float(np.interp(b, Q[j], QS, left=0.0, right=1.0))

                lbj = [j for j, i in enumerate(rows) if lb[i]]
                rec = {
                    "task": task.task, "cutoff": cut, "model": label, "configs": len(rows),
                    "true_line": line,
                    "bias_constant": float(np.median(err[const])) if const.any() else None,
                    "bias_decaying": float(np.median(err[~const])) if (~const).any() else None,
                    "bar": float(sign * bar),
                    "mc_bar_median": float(sign * np.median(bars)),
                    "mc_bar_10_90": [float(sign * np.quantile(bars, 0.1)),
                                     float(sign * np.quantile(bars, 0.9))],
                    "late_bloomer_p_beat_bar": [p_beat(bar, j) for j in lbj],
                    "late_bloomer_p_beat_mc_bar": [float(np.mean([p_beat(b, j) for b in bars]))
                                                   for j in lbj],
                    "conf_bars": {str(c): float(sign * b) for c, b in conf_bars.items()},
                    "late_bloomer_p_beat_conf_bars": {str(c): [p_beat(b, j) for j in lbj]
                                                      for c, b in conf_bars.items()},
                }
                out.append(rec)
                print(f"  cutoff {cut:.0%} {label:<12} bias const {fmt(rec['bias_constant'])} "
                      f"decaying {fmt(rec['bias_decaying'])} | bar {rec['bar']:.4f} mc_bar "
                      f"{rec['mc_bar_median']:.4f} [{rec['mc_bar_10_90'][0]:.4f}, "
                      f"{rec['mc_bar_10_90'][1]:.4f}] | late bloomers' P(beat bar) "
                      f"{[round(p, 3) for p in rec['late_bloomer_p_beat_bar']]} vs mc "
                      f"{[round(p, 3) for p in rec['late_bloomer_p_beat_mc_bar']]}", flush=True)
                for c in map(str, confs):
                    print(f"      bar_confidence {c}: bar {rec['conf_bars'][c]:.4f} | late "
                          f"bloomers' P(beat) "
                          f"{[round(p, 3) for p in rec['late_bloomer_p_beat_conf_bars'][c]]}")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": "python benchmarks/bar_diagnostic.py "
                                            + " ".join(sys.argv[1:] if argv is None else argv),
                                            "rows": out}, indent=1))


if __name__ == "__main__":
    main()
