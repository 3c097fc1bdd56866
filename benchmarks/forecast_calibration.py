"""How the PFN's batch calibration's settings move issue 3's scores (a design study, not a test).

    python benchmarks/forecast_calibration.py --curves ../shared/data/curves --max-configs 30 \
        --cells-from benchmarks/results/forecast/parametric_lastvalue_n30.json --json OUT

Scores, on the cells of ``benchmarks/forecast.py`` (same configs, cutoffs, normaliser and scoring),
the shipped PFN with a fixed temperature (1 = ``calibration="none"``) and with the batch
calibration (``search/forecast/pfn_model.py``) under other settings of its constants: the range
of temperatures searched, the shrinkage pseudo-count and the most curves back-tested. Each
variant runs the real ``PFNModel.forecast`` with the module's constants set for it. With
``--cells-from`` (an earlier ``forecast.py`` JSON holding ``parametric`` cells of the same
configs) it counts the cells whose loglik beats them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import forecast as fb  # benchmarks/forecast.py: the cells and their scoring

from search.forecast import pfn_model as pm

DEFAULT_VARIANTS = [
    {"temperature": 1.0}, {"temperature": 0.92}, {"temperature": 0.84},
    {"lo": 0.5, "hi": 2.0, "pseudo": 16, "cap": 32},  # the shipped setting
    {"lo": 0.5, "hi": 2.0, "pseudo": 0, "cap": 32}, {"lo": 0.5, "hi": 2.0, "pseudo": 32, "cap": 32},
    {"lo": 0.5, "hi": 2.0, "pseudo": 16, "cap": 64}, {"lo": 0.5, "hi": 2.0, "pseudo": 16, "cap": 128},
    {"lo": 0.7, "hi": 1.41, "pseudo": 16, "cap": 32}, {"lo": 0.6, "hi": 1.5, "pseudo": 16, "cap": 32},
]


def cells(roots: list[Path], max_configs: int) -> list[dict]:
    out = []
    for root in roots:
        for folder in fb.find_benchmarks(root):
            for (bench, task), cfgs in sorted(fb.load_curves(folder).items()):
                _, chosen = fb.sample_configs(cfgs, max_configs, 0)
                for frac in fb.CUTOFFS:
                    curves, finals, targets, _ = fb.build_cases(chosen, frac)
                    out.append({"benchmark": bench, "task": task, "cutoff": frac, "mode": chosen[0][2],
                                "curves": curves, "finals": finals, "targets": targets})
    return out


class _FixedTemperature(pm.PFNModel):
    """The shipped PFN with one temperature for every batch instead of a back-tested one."""

    def __init__(self, t: float):
        super().__init__()
        self.t = t

    def _batch_temperature(self, curves, mode) -> float:
        return self.t


def run_variant(v: dict, data: list[dict]) -> list[dict]:
    saved = (pm.CAL_GRID, pm.CAL_PSEUDO_CURVES, pm.CAL_MAX_CURVES)
    try:
        if "temperature" in v:
            model = _FixedTemperature(v["temperature"])
        else:
            k = round(8 * np.log2(v["hi"] / v["lo"])) + 1  # steps of 2^(1/8), as shipped
            pm.CAL_GRID = np.exp(np.linspace(np.log(v["lo"]), np.log(v["hi"]), k))
            pm.CAL_PSEUDO_CURVES, pm.CAL_MAX_CURVES = float(v["pseudo"]), int(v["cap"])
            model = pm.PFNModel()
        return [{k: c[k] for k in ("benchmark", "task", "cutoff")}
                | fb.cell_scores(model, c["curves"], c["finals"], c["targets"], c["mode"]) for c in data]
    finally:
        pm.CAL_GRID, pm.CAL_PSEUDO_CURVES, pm.CAL_MAX_CURVES = saved


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--curves", type=Path, action="append", required=True)
    ap.add_argument("--max-configs", type=int, default=30)
    ap.add_argument("--cells-from", type=Path, action="append", default=[])
    ap.add_argument("--variants", default="", help="JSON list of variants (default: the study's)")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    ref = {}
    for f in a.cells_from:
        ref |= {(c["task"], c["cutoff"]): c["loglik"] for c in json.loads(f.read_text())["cells"]
                if c["model"] == "parametric"}
    data = cells(a.curves, a.max_configs)
    rows = []
    for v in json.loads(a.variants) if a.variants else DEFAULT_VARIANTS:
        cs = run_variant(v, data)
        n = sum(c["n"] for c in cs)
        row = {"variant": v, "loglik_mean": float(np.mean([c["loglik"] for c in cs])),
               "coverage90": float(sum(c["coverage90"] * c["n"] for c in cs) / n),
               "mae_mean": float(np.mean([c["mae"] for c in cs]))}
        if ref:
            row["cells_beating_parametric"] = sum(c["loglik"] > ref[(c["task"], c["cutoff"])] for c in cs
                                                  if (c["task"], c["cutoff"]) in ref)
            row["cells_compared"] = sum((c["task"], c["cutoff"]) in ref for c in cs)
        rows.append(row)
        print(json.dumps(row), flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"rows": rows, "args": {k: str(v) for k, v in vars(a).items()}}, indent=1))


if __name__ == "__main__":
    main()
