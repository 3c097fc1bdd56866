"""The stateful curve-forecast stopper: curves, incumbent, batched forecasts, verdicts.

``CurveStopper`` is what both adapters (the Ray Tune scheduler and the Optuna pruner) and the
replay simulator drive. It is framework-free: trial ids are strings, steps are epochs, values
are in the user's units. It converts ``mode`` once (internal = higher is better) and hands the
pure :func:`search.policy.judge` plain arrays.

Amortised forecasting: results arrive one at a time, but the forecaster is called on a *batch*.
When a trial needs a forecast and its cached one is older than ``max_forecast_age`` steps, every
live trial that reported since its own last forecast is forecast in the same call, and each
row's quantile grid is cached. Other trials then decide from their cached grid (at most
``max_forecast_age`` steps old) at no forecast cost; p_beat is recomputed from the grid against
the *current* incumbent, so a new incumbent takes effect at once. With N live trials reporting
in turn, one result in about N * (max_forecast_age + 1) pays for a batch forecast.

State is data: :meth:`to_dict` / :meth:`from_dict` give JSON-able curves, incumbent and last
verdicts (no model, no pickle); forecasts are recomputed after a restore.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
from collections.abc import Callable

import numpy as np

from search.curvestore import CurveStore
from search.forecast.base import CurveModel
from search.policy import (
    QUANTILE_GRID,
    Mode,
    PolicyConfig,
    Reason,
    Verdict,
    bad_metric,
    is_due,
    judge,
    leads,
    sign_of,
)

log = logging.getLogger(__name__)
STATE_VERSION = 1


class _Top2:
    """The best two (value, owner) pairs, to get 'best among the others' in O(1)."""

    __slots__ = ("o1", "v1", "v2")

    def __init__(self) -> None:
        self.v1, self.o1, self.v2 = -math.inf, -1, -math.inf

    def push(self, v: float, owner: int) -> None:
        if owner == self.o1:
            self.v1 = max(self.v1, v)
        elif v > self.v1:
            self.v2, self.v1, self.o1 = self.v1, v, owner
        elif v > self.v2:
            self.v2 = v

    def other_than(self, owner: int) -> float:
        return self.v2 if owner == self.o1 else self.v1


class CurveStopper:
    """Decides, result by result, whether each trial should stop.

    Args:
        model: the forecaster (any ``CurveModel``).
        horizon: the final step every trial runs to (same unit as the steps).
        mode: ``"max"`` or ``"min"``, the user's direction.
        config: the rule's knobs.
        on_verdict: optional sink called with every verdict :meth:`observe` returns.
    """

    def __init__(
        self,
        model: CurveModel,
        *,
        horizon: float,
        mode: Mode,
        config: PolicyConfig | None = None,
        on_verdict: Callable[[Verdict], None] | None = None,
    ):
        if not isinstance(horizon, (int, float)) or not math.isfinite(horizon) or horizon <= 0:
            raise ValueError(f"horizon must be a finite number > 0, got {horizon!r}")
        self.sign = sign_of(mode)
        self.mode: Mode = mode
        self.horizon = float(horizon)
        self.model = model
        self.config = config or PolicyConfig()
        # the quantile-grid column a trial enters the top-fraction bar with (0.5: the median)
        self._ibar = int(np.argmin(np.abs(QUANTILE_GRID - (1.0 - self.config.bar_confidence))))
        self.on_verdict = on_verdict
        self.store = CurveStore()
        k = len(QUANTILE_GRID)
        cap = 64
        self._grid = np.full((cap, k), np.nan, dtype=np.float64)
        self._grid_step = np.full(cap, -np.inf)
        self._best = np.full(cap, -np.inf)  # internal best finite observed value
        self._sum = np.zeros(cap)  # sum and count of finite internal values (running mean)
        self._cnt = np.zeros(cap, dtype=np.int64)
        self._alive = np.zeros(cap, dtype=bool)
        self._dirty: set[int] = set()
        self._pending: dict[int, float] = {}  # row -> step since which it awaits a forecast
        self._completed_best = -math.inf
        self._n_completed = 0
        # sorted estimates of every decided trial's final value (internal): completed trials'
        # finals and, for trials this stopper stopped, their forecast median (-inf: diverged)
        self._pop: list[float] = []
        self._best_seen = _Top2()
        self._same_step: dict[float, _Top2] = {}
        self._step_vals: dict[float, list[float]] = {}  # sorted finite values per step
        # sorted running means (of each trial's finite values up to the step) per step
        self._step_means: dict[float, list[float]] = {}
        self._last: dict[str, Verdict | dict] = {}
        self.n_forecasts = 0  # curves forecast (for measurements)
        self.n_batches = 0

    # -- trials -------------------------------------------------------------------------------
    def _ensure(self, r: int) -> None:
        cap = self._grid.shape[0]
        if r < cap:
            return
        new = max(2 * cap, r + 1)
        g = np.full((new, self._grid.shape[1]), np.nan)
        g[:cap] = self._grid
        self._grid = g
        for name, fill in (("_grid_step", -np.inf), ("_best", -np.inf), ("_sum", 0.0),
                           ("_cnt", 0)):
            a = np.full(new, fill)
            a[:cap] = getattr(self, name)
            setattr(self, name, a)
        al = np.zeros(new, dtype=bool)
        al[:cap] = self._alive
        self._alive = al

    def add_trial(self, trial_id: str, alive: bool = True) -> None:
        """Register a trial; idempotent (a retried or restored trial keeps its curve).

        Args:
            trial_id: the trial.
            alive: False for a trial that is already finished (re-added after a restore).
        """
        tid = str(trial_id)
        r = self.store.row(tid)
        self._ensure(r)
        self._alive[r] = bool(alive)

    def remove_trial(self, trial_id: str) -> None:
        """Forget a trial's liveness (errored, removed, stopped); its curve stays for the record."""
        tid = str(trial_id)
        if tid in self.store:
            r = self.store.row(tid)
            self._alive[r] = False
            self._dirty.discard(r)
            self._pending.pop(r, None)

    def complete_trial(self, trial_id: str) -> None:
        """A trial ended. If it reached the horizon its last value is a final value and may
        become the incumbent; otherwise it ended early and only stops being live."""
        tid = str(trial_id)
        if tid not in self.store:
            return
        r = self.store.row(tid)
        self._alive[r] = False
        self._dirty.discard(r)
        n = self.store.length(tid)
        if n and self.store.last_step(tid) >= self.horizon:
            self._add_final(self.sign * float(self.store.values(tid)[-1]))

    def record_final(self, trial_id: str, value: float) -> None:
        """A trial finished with final ``value`` (user units), as reported by the framework
        (Optuna's objective value); it may become the incumbent."""
        tid = str(trial_id)
        self.add_trial(tid, alive=False)
        self._dirty.discard(self.store.row(tid))
        self._add_final(self.sign * float(value))

    def _add_final(self, v: float) -> None:
        if math.isfinite(v):
            self._completed_best = max(self._completed_best, v)
            self._n_completed += 1
            bisect.insort(self._pop, v)

    def record(self, trial_id: str, step: float, value: float) -> None:
        """Record a point without judging it (catching up on points seen elsewhere)."""
        tid = str(trial_id)
        if tid not in self.store:
            self.add_trial(tid)
        r = self.store.row(tid)
        if self.store.append(tid, float(step), float(value)):
            self._note(r, float(step), self.sign * float(value))
            self._dirty.add(r)

    def _note(self, r: int, step: float, v: float) -> None:
        """Book a new internal value of row ``r`` at ``step`` (finite values only)."""
        if not math.isfinite(v):
            return
        self._best[r] = max(self._best[r], v)
        self._best_seen.push(v, r)
        self._same_step.setdefault(step, _Top2()).push(v, r)
        bisect.insort(self._step_vals.setdefault(step, []), v)
        self._sum[r] += v
        self._cnt[r] += 1
        if self.config.rank_gate == "median_or":  # kept only where used (memory at scale)
            bisect.insort(self._step_means.setdefault(step, []), self._sum[r] / self._cnt[r])

    @property
    def last_verdict(self) -> dict[str, dict]:
        """The last verdict per trial id, as dicts (built on access)."""
        return {k: (v.to_dict() if isinstance(v, Verdict) else v) for k, v in self._last.items()}

    def last_verdict_of(self, trial_id: str) -> dict | None:
        v = self._last.get(str(trial_id))
        return v.to_dict() if isinstance(v, Verdict) else v

    @property
    def incumbent(self) -> float | None:
        """Best final value of completed trials in user units (None before any)."""
        return None if self._n_completed == 0 else self.sign * self._completed_best

    # -- results ------------------------------------------------------------------------------
    def observe(self, trial_id: str, step, value) -> Verdict:
        """Record one result and return the verdict for it.

        Args:
            trial_id: the trial (added implicitly if unknown).
            step: the epoch of the result (> 0, increasing per trial).
            value: the metric in user units; None or a non-number gives a ``bad_metric`` verdict.
        """
        tid = str(trial_id)
        try:
            st = float(step)
            v_user = float(value)  # type: ignore[arg-type]
            if isinstance(value, bool) or not math.isfinite(st) or st <= 0:
                raise TypeError
        except (TypeError, ValueError):
            vd = bad_metric(tid, step if isinstance(step, (int, float)) else None)
            return self._emit(vd)
        if tid not in self.store:
            self.add_trial(tid)
        r = self.store.row(tid)
        if not self.store.append(tid, st, v_user):
            # the trial restarted from an earlier step (a retry, a restore): forget the points
            # from this step on, then record
            self.store.truncate(tid, st)
            prev = self.sign * self.store.values(tid)
            prev = prev[np.isfinite(prev)]
            self._best[r] = float(prev.max()) if prev.size else -math.inf
            self._sum[r], self._cnt[r] = float(prev.sum()), prev.size
            self._grid_step[r] = -math.inf
            self.store.append(tid, st, v_user)
        self._alive[r] = True
        v = self.sign * v_user
        self._note(r, st, v)
        self._dirty.add(r)
        inc = self._incumbent_for(r, st)
        needs_forecast = (
            math.isfinite(v) and is_due(self.config, st) and st < self.horizon
            and math.isfinite(inc) and not leads(self.config, v, self._best[r], inc)
        )
        med = math.nan
        if self.config.rank_gate == "median" and needs_forecast:
            med = self._median_other(self._step_vals, st, v)
            needs_forecast = math.isfinite(med) and self._best[r] < med
        elif self.config.rank_gate == "median_or" and needs_forecast:
            # Ray's MedianStoppingRule's statistic: the others' running means
            med = self._median_other(self._step_means, st, self._sum[r] / self._cnt[r])
            p = self.store.prev_step_row(r)
            if math.isnan(med) and self._cnt[r] > 1 and math.isfinite(p):
                # the first trial to reach this step: judge it at its previous step, which
                # the others have reached (Ray's rule pauses such a trial instead)
                own = (self._sum[r] - v) / (self._cnt[r] - 1)
                med = self._median_other(self._step_means, p, own)
        if needs_forecast and self._grid_step[r] < st - self.config.max_forecast_age:
            w = self.config.batch_wait
            since = self._pending.setdefault(r, st)
            if w > 0 and st - since < w:
                vd = Verdict(tid, st, False, Reason.FORECAST_PENDING.value,
                             incumbent=self.sign * inc)
                return self._emit(vd)
            self._forecast_batch()
        grid = self._grid[r : r + 1] if needs_forecast else None
        vd = judge(
            self.config, trial_ids=[tid], steps=np.array([st]), latest=np.array([v]),
            best=self._best[r : r + 1], incumbent=np.array([inc]), grid=grid,
            horizon=self.horizon, mode=self.mode, forecast_steps=self._grid_step[r : r + 1],
            median_other=np.array([med]),
            incumbent_is_final=np.array([self._n_completed > 0 and self.config.incumbent != "best_seen"]),
        )[0]
        if (self.config.pause_ahead and not vd.stop and self.config.grace_epochs <= st < self.horizon
                and len(self._step_vals.get(st, ())) - 1 < self.config.min_samples):
            vd = dataclasses.replace(vd, wait=True)
        if vd.stop:
            est = self._grid[r, self._ibar] if vd.reason != Reason.DIVERGED.value else -math.inf
            bisect.insort(self._pop, float(est) if math.isfinite(est) else -math.inf)
            self._alive[r] = False
            self._dirty.discard(r)
            self._pending.pop(r, None)
        return self._emit(vd)

    def _emit(self, vd: Verdict) -> Verdict:
        self._last[vd.trial_id] = vd
        if self.on_verdict is not None:
            self.on_verdict(vd)
        return vd

    def _median_other(self, table: dict[float, list[float]], step: float, own: float) -> float:
        """Median of the other trials' entries of ``table`` at ``step`` (values or running
        means; NaN if fewer than min_samples)."""
        vals = table.get(step)
        if not vals:
            return math.nan
        n = len(vals) - 1  # without the trial's own value
        if n < self.config.min_samples:
            return math.nan
        j = bisect.bisect_left(vals, own)  # drop one copy of the own value
        def at(k: int) -> float:
            return vals[k if k < j else k + 1]
        return at(n // 2) if n % 2 else 0.5 * (at(n // 2 - 1) + at(n // 2))

    def _top_fraction_bar(self, r: int) -> float:
        """The final value a trial must beat to finish in the best ``top_fraction`` of the sweep:
        the k-th best of every estimate of a final value but ``r``'s own: completed trials'
        finals, stopped trials' forecasts at the stop, and the latest forecast of every other
        live trial (the median, or with ``bar_confidence`` c the value it reaches with
        probability c), or its best value so far if it has none (a trial that leads is
        not forecast); k = ceil(top_fraction x their number). NaN while there are fewer than
        ``1 / top_fraction`` estimates (too few to place a top fraction). Cost O(live trials +
        k): the k best of the live estimates (a partition) merged with the k best of the sorted
        decided ones."""
        live = self._alive.copy()
        if r < live.size:
            live[r] = False
        est = self._grid[live, self._ibar]
        est = np.where(np.isfinite(est), est, self._best[live])
        est = est[np.isfinite(est)]
        n = len(self._pop) + est.size
        if n < math.ceil(1.0 / self.config.top_fraction):
            return math.nan
        k = max(1, math.ceil(self.config.top_fraction * n))
        top_live = est if est.size <= k else np.partition(est, est.size - k)[est.size - k:]
        cand = np.concatenate([top_live, np.asarray(self._pop[-k:], dtype=np.float64)])
        return float(np.partition(cand, cand.size - k)[cand.size - k])

    def _incumbent_for(self, r: int, step: float) -> float:
        cfg = self.config
        if cfg.incumbent == "best_seen":
            return self._best_seen.other_than(r)
        if cfg.incumbent == "top_fraction":
            bar = self._top_fraction_bar(r)
            if not math.isnan(bar):
                return bar
        if self._n_completed:
            if cfg.incumbent == "top_fraction":  # too few estimates yet: the best final value
                return self._pop[-1]
            return self._completed_best
        if cfg.before_completion == "same_step":
            t = self._same_step.get(step)
            inc = -math.inf if t is None else t.other_than(r)
            p = self.store.prev_step_row(r)
            if inc == -math.inf and math.isfinite(p) and p < step:
                # the first trial to reach this step: the best other value at its previous step
                t = self._same_step.get(p)
                inc = -math.inf if t is None else t.other_than(r)
            return inc
        return -math.inf

    def _forecast_batch(self) -> None:
        # trials one step short of their first decision come along: their forecast is at most
        # max_forecast_age old when they need it
        st, g = self.store, self.config.grace_epochs - self.config.max_forecast_age
        # a trial that already beats its incumbent needs no forecast (it is never stopped)
        rows = sorted(
            r for r in self._dirty
            if self._alive[r] and g <= st.last_step_row(r) < self.horizon
            and math.isfinite(st.last_value_row(r))
            and not leads(self.config, st.last_value_row(r) * self.sign, self._best[r],
                          self._incumbent_for(r, st.last_step_row(r)))
        )
        if not rows:
            return
        curves = [st.curve_row(r) for r in rows]
        steps = np.array([c.steps[-1] for c in curves])
        try:
            fc = self.model.forecast(curves, self.horizon, mode=self.mode)
            q = np.asarray(fc.quantiles(QUANTILE_GRID), dtype=np.float64)
            if q.shape != (len(rows), len(QUANTILE_GRID)):
                raise ValueError(f"quantiles returned shape {q.shape}")
            q = np.sort(q, axis=1)  # guard against tiny non-monotonicity
            grid = q if self.sign > 0 else -q[:, ::-1]
        except Exception:  # the policy answers model_error, the sweep goes on
            log.exception("forecast of %d curves failed", len(rows))
            grid = np.full((len(rows), len(QUANTILE_GRID)), np.nan)
        idx = np.array(rows)
        self._grid[idx] = grid
        self._grid_step[idx] = steps
        self._dirty.difference_update(rows)
        for r in rows:
            self._pending.pop(r, None)
        self.n_forecasts += len(rows)
        self.n_batches += 1

    # -- state as data ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able state: curves, liveness, incumbent, last verdicts (no model, no grids)."""
        ids = self.store.ids
        return {
            "version": STATE_VERSION,
            "mode": self.mode,
            "horizon": self.horizon,
            "config": self.config.to_dict(),
            "curves": self.store.to_dict(),
            "alive": [ids[r] for r in range(len(ids)) if self._alive[r]],
            "completed_best": None if self._n_completed == 0 else self._completed_best,
            "n_completed": self._n_completed,
            "population": [v if math.isfinite(v) else None for v in self._pop],
            "last_verdict": {k: _json_safe(v) for k, v in self.last_verdict.items()},
        }

    def load_dict(self, data: dict) -> None:
        """Replace this stopper's state with ``data`` from :meth:`to_dict` (model and config of
        this object are kept; a mismatching mode or horizon is an error)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown stopper state version {data.get('version')!r}")
        if data["mode"] != self.mode or float(data["horizon"]) != self.horizon:
            raise ValueError(
                f"saved state is for mode={data['mode']!r}, horizon={data['horizon']!r}; this "
                f"stopper has mode={self.mode!r}, horizon={self.horizon!r}"
            )
        fresh = CurveStopper(self.model, horizon=self.horizon, mode=self.mode,
                             config=self.config, on_verdict=self.on_verdict)
        alive = set(data.get("alive", []))
        for tid, pts in data["curves"].items():
            fresh.add_trial(tid)
            r = fresh.store.row(tid)
            for step, value in pts:
                fresh.store.append(tid, float(step), float(value))
                fresh._note(r, float(step), fresh.sign * float(value))
            fresh._alive[r] = tid in alive
            if tid in alive:
                fresh._dirty.add(r)
        if data.get("completed_best") is not None:
            fresh._completed_best = float(data["completed_best"])
            fresh._n_completed = int(data.get("n_completed", 1))
        # (a state saved before the population was kept: its best final stands for it)
        old = [] if data.get("completed_best") is None else [data["completed_best"]]
        fresh._pop = sorted(-math.inf if v is None else float(v)
                            for v in data.get("population", old))
        fresh._last = dict(data.get("last_verdict", {}))
        self.__dict__.update(fresh.__dict__)

    @classmethod
    def from_dict(cls, data: dict, model: CurveModel, **kw) -> CurveStopper:
        cfg = PolicyConfig(**data["config"])
        s = cls(model, horizon=float(data["horizon"]), mode=data["mode"], config=cfg, **kw)
        s.load_dict(data)
        return s


def resolve_model(spec: str | CurveModel, **kwargs) -> CurveModel:
    """A ``CurveModel`` from an instance or a name known to ``search.forecast.get_model``
    (``kwargs``, e.g. ``weights``, go to its constructor; an instance takes none).

    ``"pfn"`` comes without its batch calibration (``calibration="none"``): a scheduler's batch is
    the handful of trials that reported since its last decision, so a temperature back-tested on
    it would move with that batch's make-up, and one trial's stop with the others that happened
    to report beside it; and the stopping policy's defaults were chosen on per-curve forecasts
    (with the calibration the issue-4 replay's default policy kills the best config in 23% of runs
    instead of 18%, BENCHMARKS.md). Pass a ``PFNModel`` instance to choose otherwise.
    """
    if isinstance(spec, CurveModel):
        if kwargs:
            raise ValueError(f"options {sorted(kwargs)} need a model name, got the instance {spec!r}")
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"model must be a CurveModel or a model name, got {spec!r}")  # noqa: TRY004 (a bad option value)
    try:
        from search.forecast import get_model
    except ImportError:
        get_model = None
    if get_model is not None:
        return get_model(spec, **({"calibration": "none"} | kwargs if spec == "pfn" else kwargs))
    if spec == "last-value" and not kwargs:
        from search.forecast.base import LastValueModel

        return LastValueModel()
    raise ValueError(f"unknown model {spec!r} (search.forecast.get_model is not available)")


def _json_safe(d: dict) -> dict:
    return {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
