"""Compact per-trial learning-curve storage for the driver: numpy arrays, no per-point objects.

Every trial gets a row in two 2-D arrays (steps and values float64, user units) that grow
by doubling in both directions; a trial's prefix is a view of its row. 10,000 trials of 100
epochs take about 16 MB. Trial ids are strings mapped to rows; rows are never reused, so a row
index is a stable handle for the life of the store.
"""

from __future__ import annotations

import numpy as np

from search.forecast.base import Curve


class CurveStore:
    """Append-only curves keyed by trial id.

    Args:
        capacity: initial number of trial rows.
        length: initial points per row.
    """

    def __init__(self, capacity: int = 64, length: int = 64):
        if capacity < 1 or length < 1:
            raise ValueError(f"capacity and length must be >= 1, got {capacity!r}, {length!r}")
        self._steps = np.zeros((capacity, length), dtype=np.float64)
        self._values = np.zeros((capacity, length), dtype=np.float64)
        self._len = np.zeros(capacity, dtype=np.int32)
        self._row: dict[str, int] = {}
        self._ids: list[str] = []

    # -- rows ---------------------------------------------------------------------------------
    def __contains__(self, trial_id: str) -> bool:
        return trial_id in self._row

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def row(self, trial_id: str) -> int:
        """The row of ``trial_id``, adding an empty one if new (idempotent)."""
        r = self._row.get(trial_id)
        if r is None:
            r = len(self._ids)
            if r >= self._steps.shape[0]:
                self._grow(rows=2 * self._steps.shape[0])
            self._row[trial_id] = r
            self._ids.append(trial_id)
        return r

    def _grow(self, rows: int | None = None, cols: int | None = None) -> None:
        r0, c0 = self._steps.shape
        r1, c1 = rows or r0, cols or c0
        s = np.zeros((r1, c1), dtype=np.float64)
        v = np.zeros((r1, c1), dtype=np.float64)
        s[:r0, :c0] = self._steps
        v[:r0, :c0] = self._values
        ln = np.zeros(r1, dtype=np.int32)
        ln[:r0] = self._len
        self._steps, self._values, self._len = s, v, ln

    # -- points -------------------------------------------------------------------------------
    def append(self, trial_id: str, step: float, value: float) -> bool:
        """Record ``value`` at ``step``. Returns False (and records nothing) if ``step`` is not
        after the trial's last step (a replayed or duplicated result)."""
        r = self.row(trial_id)
        n = int(self._len[r])
        if n and step <= self._steps[r, n - 1]:
            return False
        if n >= self._steps.shape[1]:
            self._grow(cols=2 * self._steps.shape[1])
        self._steps[r, n] = step
        self._values[r, n] = value
        self._len[r] = n + 1
        return True

    def id_of(self, row: int) -> str:
        return self._ids[row]

    def last_step_row(self, row: int) -> float:
        n = int(self._len[row])
        return float(self._steps[row, n - 1]) if n else 0.0

    def prev_step_row(self, row: int) -> float:
        """The step before the last one (NaN with fewer than two points)."""
        n = int(self._len[row])
        return float(self._steps[row, n - 2]) if n >= 2 else float("nan")

    def last_value_row(self, row: int) -> float:
        n = int(self._len[row])
        return float(self._values[row, n - 1]) if n else float("nan")

    def curve_row(self, row: int) -> Curve:
        n = int(self._len[row])
        return Curve(self._steps[row, :n].astype(np.float64), self._values[row, :n])

    def truncate(self, trial_id: str, before_step: float) -> int:
        """Drop the trial's points at steps >= ``before_step`` (a trial restarted from an
        earlier step); returns the number of points kept."""
        r = self.row(trial_id)
        n = int(self._len[r])
        keep = int(np.searchsorted(self._steps[r, :n], float(before_step), side="left"))
        self._len[r] = keep
        return keep

    def length(self, trial_id: str) -> int:
        r = self._row.get(trial_id)
        return 0 if r is None else int(self._len[r])

    def last_step(self, trial_id: str) -> float:
        r = self._row[trial_id]
        n = int(self._len[r])
        return float(self._steps[r, n - 1]) if n else 0.0

    def curve(self, trial_id: str) -> Curve:
        """The trial's prefix as a ``Curve`` (views of the store; do not mutate)."""
        r = self._row[trial_id]
        n = int(self._len[r])
        if n == 0:
            raise ValueError(f"trial {trial_id!r} has no recorded points")
        return Curve(self._steps[r, :n].astype(np.float64), self._values[r, :n])

    def values(self, trial_id: str) -> np.ndarray:
        r = self._row[trial_id]
        return self._values[r, : int(self._len[r])]

    @property
    def nbytes(self) -> int:
        return int(self._steps.nbytes + self._values.nbytes + self._len.nbytes)

    # -- state as data ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able: ``{trial_id: [[step, value], ...]}`` (NaN/inf as strings)."""
        out = {}
        for tid, r in self._row.items():
            n = int(self._len[r])
            out[tid] = [[float(self._steps[r, j]), _enc(float(self._values[r, j]))] for j in range(n)]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> CurveStore:
        longest = max((len(p) for p in data.values()), default=1)
        st = cls(capacity=max(len(data), 1), length=max(longest, 1))
        for tid, pts in data.items():
            st.row(str(tid))
            for step, value in pts:
                st.append(str(tid), float(step), _dec(value))
        return st


def _enc(x: float) -> float | str:
    return x if np.isfinite(x) else repr(x)  # 'nan', 'inf', '-inf'


def _dec(x: float | str) -> float:
    return float(x)
