"""Load recorded learning curves in the ``../shared/data/curves`` format.

A *benchmark folder* holds ``curves.csv.gz`` (one row per task, config_id, epoch; leading
columns ``benchmark, task, config_id, epoch, metric, metric_name, higher_is_better``; an empty
``metric`` is a diverged run) and optionally ``configs.json``. :func:`load_curves` accepts such
a folder, a folder of such folders, or a ``curves.csv[.gz]`` file. Epoch 0 (the evaluation
before training) is dropped: a replayed trial reports epochs 1..E. An optional ``epoch_seconds``
column gives per-epoch durations.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from search.replay.sim import Task

_REQUIRED = ("benchmark", "task", "config_id", "epoch", "metric", "metric_name",
             "higher_is_better")


def _open(path: Path):
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def _float(s: str) -> float:
    if s == "" or s is None:
        return math.nan
    try:
        return float(s)
    except ValueError:
        return math.nan


def load_csv(path: str | Path, tasks: set[str] | None = None) -> list[Task]:
    """Tasks from one ``curves.csv[.gz]`` file (only those named in ``tasks`` if given)."""
    path = Path(path)
    rows: dict[tuple[str, str], dict] = {}
    with _open(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; got {header}")
        col = {c: header.index(c) for c in header}
        ib, it, ic, ie, im = (col[c] for c in ("benchmark", "task", "config_id", "epoch", "metric"))
        imn, ih = col["metric_name"], col["higher_is_better"]
        isec = col.get("epoch_seconds")
        for line, row in enumerate(reader, start=2):
            key = (row[ib], row[it])
            if tasks is not None and row[it] not in tasks:
                continue
            d = rows.get(key)
            if d is None:
                hib = row[ih].strip().lower()
                if hib not in ("0", "1", "true", "false"):
                    raise ValueError(f"{path}:{line}: higher_is_better must be 0/1, got {row[ih]!r}")
                d = rows[key] = {"metric": row[imn], "mode": "max" if hib in ("1", "true") else "min",
                                 "pts": defaultdict(dict), "sec": defaultdict(dict)}
            try:
                ep = int(float(row[ie]))
            except ValueError:
                raise ValueError(f"{path}:{line}: epoch must be an integer, got {row[ie]!r}") from None
            if ep <= 0:
                continue
            d["pts"][row[ic]][ep] = _float(row[im])
            if isec is not None:
                d["sec"][row[ic]][ep] = _float(row[isec])
    out = []
    for (bench, task), d in rows.items():
        cids = sorted(d["pts"])
        E = max(max(p) for p in d["pts"].values())
        vals = np.full((len(cids), E), np.nan)
        for i, c in enumerate(cids):
            for ep, v in d["pts"][c].items():
                vals[i, ep - 1] = v
        dur = None
        if d["sec"]:
            dur = np.ones((len(cids), E))
            for i, c in enumerate(cids):
                for ep, v in d["sec"][c].items():
                    if math.isfinite(v) and v > 0:
                        dur[i, ep - 1] = v
        out.append(Task(bench, task, d["metric"], d["mode"], tuple(cids), vals, dur))
    out.sort(key=lambda t: (t.benchmark, t.task))
    return out


def load_curves(path: str | Path, tasks: set[str] | None = None) -> list[Task]:
    """All tasks under ``path`` (a benchmark folder, a folder of them, or a csv file)."""
    path = Path(path)
    if path.is_file():
        return load_csv(path, tasks)
    if not path.is_dir():
        raise ValueError(f"curves path {str(path)!r} is neither a folder nor a file")
    files = [path / "curves.csv.gz"] if (path / "curves.csv.gz").is_file() else sorted(
        path.glob("*/curves.csv.gz"))
    if not files:
        raise ValueError(f"no curves.csv.gz in {str(path)!r} or its subfolders")
    out: list[Task] = []
    for f in files:
        out.extend(load_csv(f, tasks))
    return out
