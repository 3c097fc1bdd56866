"""The curve-forecast stopping policy: pure rules, no framework, higher is better inside.

The policy judges a *batch* of trials at once from plain arrays: each trial's latest observed
value, its best observed value, its step, the incumbent it must beat and a predictive
distribution of its final value (a grid of quantiles). It never forecasts and holds no state;
``search.stopper.CurveStopper`` owns the curves, the incumbent and the forecast cache and calls
it. All numbers handed to :func:`judge` are **internal** (higher is better); :class:`Verdict`
carries them back in the user's units (``mode`` converted once, here, at the edge).

Rule, in order (the first that applies gives the reason code):

==================  =====  ==============================================================
reason              stop   when
==================  =====  ==============================================================
``bad_metric``      no     the metric is missing or not a number (an error verdict)
``diverged``        yes    the latest value is NaN or +/-inf
``grace``           no     step < ``grace_epochs``
``horizon``         no     step >= the horizon (the trial is finishing anyway)
``not_due``         no     not a decision step (``decision_interval``)
``no_incumbent``    no     nothing to compare with yet
``beats_incumbent`` no     the trial already beats the incumbent: its latest value beats the best
                           completed final (a validation metric that has since got worse, an
                           overfitting run, is judged by the forecast), or with
                           ``incumbent="best_seen"`` its best value beats the best seen
``above_median``    no     (``rank_gate="median"``) at or above the other trials' median at this
                           step, or fewer than ``min_samples`` others reached it
``model_error``     no     the forecaster failed or returned NaN for this trial
``forecast_pending`` no    (``batch_wait`` > 0) waiting, at most ``batch_wait`` steps, for the
                           next batched forecast
``p_beat_low``      yes    P(final beats incumbent) < the effective threshold
``below_median``    yes    (``rank_gate="median_or"``) best value so far below the median of the
                           other trials' running means at this step (Ray's MedianStoppingRule;
                           at least ``min_samples`` of them) and P(final beats incumbent) <
                           ``veto_threshold``: median stopping whose stops the forecast can veto
                           (once a trial has completed: before that there is no final value to
                           weigh the forecast against, and the median rule alone decides)
``p_beat_ok``       no     otherwise
==================  =====  ==============================================================

The effective threshold is ``threshold * (remaining / horizon) ** compute_exponent``: with the
default exponent 0 this is the plain rule of Domhan et al. (2015); a positive exponent makes the
rule more careful as a trial nears the horizon, where stopping it saves little compute.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Literal

import numpy as np

Mode = Literal["min", "max"]


class Reason(str, Enum):
    """Stable reason codes of a verdict (the tracker logs ``.value`` as a tag)."""

    BAD_METRIC = "bad_metric"
    DIVERGED = "diverged"
    GRACE = "grace"
    HORIZON = "horizon"
    NOT_DUE = "not_due"
    NO_INCUMBENT = "no_incumbent"
    ABOVE_MEDIAN = "above_median"
    BEATS_INCUMBENT = "beats_incumbent"
    MODEL_ERROR = "model_error"
    FORECAST_PENDING = "forecast_pending"
    P_BEAT_LOW = "p_beat_low"
    BELOW_MEDIAN = "below_median"
    P_BEAT_OK = "p_beat_ok"


#: Reasons whose verdict is "stop".
STOP_REASONS = frozenset({Reason.DIVERGED, Reason.P_BEAT_LOW, Reason.BELOW_MEDIAN})
#: Reasons that mark an error rather than a decision.
ERROR_REASONS = frozenset({Reason.BAD_METRIC, Reason.MODEL_ERROR})

#: Quantile levels of the cached predictive distribution; dense in the tails, where the
#: threshold lives, and symmetric so that ``mode: min`` converts by reversal.
QUANTILE_GRID = np.array(
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4,
     0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99,
     0.995, 0.998, 0.999]
)
_I05, _I50, _I95 = (int(np.argmin(np.abs(QUANTILE_GRID - q))) for q in (0.05, 0.5, 0.95))


def sign_of(mode: str) -> float:
    """+1 for ``max``, -1 for ``min``: internal = sign * user value."""
    if mode == "max":
        return 1.0
    if mode == "min":
        return -1.0
    raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the stopping rule (validated here; the sweep config maps onto them).

    Attributes:
        threshold: stop when P(final beats incumbent) < threshold; in (0, 1).
        grace_epochs: no stop (except divergence) before this step.
        decision_interval: decide at steps grace, grace + k, grace + 2k, ...
        compute_exponent: >= 0; the threshold shrinks as ``(remaining/horizon)**exponent``.
        incumbent: ``completed`` (best final value of trials that reached the horizon),
            ``best_seen`` (best value any trial has reported at any step, Domhan's y_best) or
            ``top_fraction`` (the final value a trial must reach to end in the best
            ``top_fraction`` of the sweep: the k-th best of the estimates of final values so
            far, k = ceil(top_fraction x their number), where completed trials count with their
            final value, trials the rule stopped with their forecast median at the stop (so the
            survivors alone do not set the bar) and live trials with their latest forecast
            median (both: the ``bar_confidence`` quantile instead of the median when it is set),
            or their best value so far before their first forecast (so the bar exists
            before the first completion); with fewer than
            ``1 / top_fraction`` estimates, the ``completed`` / ``before_completion`` rule. The
            rule then keeps every trial with a real chance to finish near the top, not only
            those that may beat the best: for sweeps that want a good top-k, or that must not
            lose late bloomers).
        top_fraction: see ``incumbent="top_fraction"``; in (0, 1).
        bar_confidence: with ``incumbent="top_fraction"``, each live (and each stopped) trial
            enters the bar with the final value its forecast gives it with this probability:
            0.5, its median; 0.7, a value it beats with probability 0.7 (the 30% quantile on
            the better-is-higher scale, the nearest point of the quantile grid). The k-th best
            of medians leans optimistic before trials complete, as the trials that look best
            are partly those whose forecasts erred upwards (the winner's curse), so a
            confidence above 0.5 lets the bar sit nearer the true top-fraction line, which
            keeps late bloomers (issue 8; BENCHMARKS.md). In (0, 1).
        before_completion: with ``incumbent="completed"`` and no trial completed yet, compare
            with the best value other trials reported at the same step (``same_step``), or do
            not stop (``none``).
        max_forecast_age: a cached forecast made at most this many steps ago is reused; the
            batch forecast then covers every trial that reported since (amortised cost).
        rank_gate: ``"median"``: a trial may be stopped only if its best value so far is below
            the median of the other trials' values at the same step (at least
            ``min_samples`` of them); the forecast then decides. ``"median_or"``: the forecast
            rule, *or* stop a trial whose best value is below the median of the other trials'
            running means at this step (the statistic of Ray's ``MedianStoppingRule``) unless P(final beats incumbent) >=
            ``veto_threshold`` (median stopping with a forecast veto: fast like the median
            rule, while a trial whose forecast still gives it a real chance, a late bloomer
            whose schedule says it will improve, is kept). ``"none"``: the forecast alone.
        veto_threshold: see ``rank_gate="median_or"``; in (0, 1], and >= threshold there.
        min_samples: trials needed at a step for the median gate.
        batch_wait: a trial with no fresh forecast may continue up to this many steps until
            another trial triggers a batch (0: forecast at once). With many live trials this
            turns one forecast per trial into one batch per step.
        pause_ahead: a trial that continues past the grace period at a step fewer than
            ``min_samples`` other trials have reached gets ``wait=True`` in its verdict: the
            scheduler pauses it while other trials wait to run (pending or paused), so the
            sweep explores breadth-first and no trial races ahead unjudged (the pause rule of
            Ray's ``MedianStoppingRule``). Needs trials that checkpoint, as a paused trial
            resumes from its last checkpoint (without one it restarts from the beginning).
    """

    threshold: float = 0.05
    grace_epochs: int = 3
    decision_interval: int = 1
    compute_exponent: float = 0.0
    incumbent: Literal["completed", "best_seen", "top_fraction"] = "completed"
    top_fraction: float = 0.1
    bar_confidence: float = 0.5
    before_completion: Literal["same_step", "none"] = "same_step"
    max_forecast_age: int = 1
    rank_gate: Literal["none", "median", "median_or"] = "none"
    veto_threshold: float = 0.5
    min_samples: int = 3
    batch_wait: int = 0
    pause_ahead: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and 0.0 < self.threshold < 1.0):
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")
        for name in ("grace_epochs", "max_forecast_age", "batch_wait"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        di = self.decision_interval
        if isinstance(di, bool) or not isinstance(di, int) or di < 1:
            raise ValueError(f"decision_interval must be an integer >= 1, got {di!r}")
        ce = self.compute_exponent
        if not isinstance(ce, (int, float)) or not math.isfinite(ce) or ce < 0:
            raise ValueError(f"compute_exponent must be a finite number >= 0, got {ce!r}")
        if self.incumbent not in ("completed", "best_seen", "top_fraction"):
            raise ValueError(f"incumbent must be 'completed', 'best_seen' or 'top_fraction', "
                             f"got {self.incumbent!r}")
        tf = self.top_fraction
        if not (isinstance(tf, (int, float)) and 0.0 < tf < 1.0):
            raise ValueError(f"top_fraction must be in (0, 1), got {tf!r}")
        bc = self.bar_confidence
        if not (isinstance(bc, (int, float)) and not isinstance(bc, bool) and 0.0 < bc < 1.0):
            raise ValueError(f"bar_confidence must be in (0, 1), got {bc!r}")
        if self.rank_gate not in ("none", "median", "median_or"):
            raise ValueError(f"rank_gate must be 'none', 'median' or 'median_or', got "
                             f"{self.rank_gate!r}")
        vt = self.veto_threshold
        if not (isinstance(vt, (int, float)) and 0.0 < vt <= 1.0) or (
                self.rank_gate == "median_or" and vt < self.threshold):
            raise ValueError(f"veto_threshold must be in [threshold, 1] = [{self.threshold}, 1], "
                             f"got {vt!r}")
        ms = self.min_samples
        if not isinstance(self.pause_ahead, bool):
            raise ValueError(f"pause_ahead must be true or false, got {self.pause_ahead!r}")  # noqa: TRY004 (a bad option value)
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {ms!r}")
        if self.before_completion not in ("same_step", "none"):
            raise ValueError(
                f"before_completion must be 'same_step' or 'none', got {self.before_completion!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """One decision about one trial at one step, in the user's units.

    Attributes:
        trial_id: the trial's id (string).
        step: the step (epoch) the decision is about; NaN when unknown.
        stop: True to stop the trial.
        reason: a stable code (:class:`Reason` value).
        p_beat: P(final value beats the incumbent), or None when not computed.
        q05, q50, q95: forecast quantiles of the final value (user units), or None.
        incumbent: the value the trial had to beat (user units), or None.
        threshold: the effective threshold used (after the compute scaling), or None.
        forecast_step: the last step of the prefix the forecast was made from, or None.
        wait: the trial continues but is ahead of its peers (``pause_ahead``): a scheduler
            may pause it while other trials wait to run.
    """

    trial_id: str
    step: float
    stop: bool
    reason: str
    p_beat: float | None = None
    q05: float | None = None
    q50: float | None = None
    q95: float | None = None
    incumbent: float | None = None
    threshold: float | None = None
    forecast_step: float | None = None
    wait: bool = False

    @property
    def is_error(self) -> bool:
        return self.reason in {r.value for r in ERROR_REASONS}

    def to_dict(self) -> dict:
        """JSON-able dict (floats or None)."""
        return {k: getattr(self, k) for k in _VERDICT_FIELDS}

    def metrics(self) -> dict[str, float]:
        """The numbers a tracker logs as metrics at this step (absent ones left out)."""
        out = {}
        for k, name in (("p_beat", "p_beat"), ("q05", "forecast_q05"), ("q50", "forecast_q50"),
                        ("q95", "forecast_q95")):
            v = getattr(self, k)
            if v is not None:
                out[name] = float(v)
        return out


_VERDICT_FIELDS = ("trial_id", "step", "stop", "reason", "p_beat", "q05", "q50", "q95", "incumbent",
                   "threshold", "forecast_step", "wait")


def grid_cdf(grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(final <= x) from quantile grids (internal units), piecewise linear between levels.

    Args:
        grid: shape (n, K), non-decreasing rows, values at :data:`QUANTILE_GRID`.
        x: shape (n,).

    Returns:
        shape (n,); 0 below the lowest quantile, 1 at or above the highest (so a point-mass
        forecast equal to ``x`` gives P(final > x) = 0: strictly beating is required).
    """
    qs = QUANTILE_GRID
    k = grid.shape[1]
    idx = (grid <= x[:, None]).sum(axis=1)  # number of grid values <= x
    out = np.where(idx >= k, 1.0, 0.0)
    mid = (idx > 0) & (idx < k)
    if np.any(mid):
        r = np.nonzero(mid)[0]
        i = idx[r]
        lo, hi = grid[r, i - 1], grid[r, i]
        frac = (x[r] - lo) / (hi - lo)
        out[r] = qs[i - 1] + (qs[i] - qs[i - 1]) * frac
    return out


def leads(cfg: PolicyConfig, latest: float, best: float, incumbent: float) -> bool:
    """Whether a trial already beats its incumbent and is never stopped (internal units).

    A final-value incumbent (``completed``, ``top_fraction``) is compared with the trial's latest
    value, like with like: a run whose validation metric was once better than the best final
    but has since got worse (overfitting) is not protected by its past. Domhan's ``best_seen``
    incumbent is the best value at any step, so there the trial's best value counts.
    """
    own = best if cfg.incumbent == "best_seen" else latest
    return own > incumbent


def effective_threshold(cfg: PolicyConfig, step: np.ndarray, horizon: float) -> np.ndarray:
    """``threshold * (remaining / horizon) ** compute_exponent``, elementwise."""
    if cfg.compute_exponent == 0:
        return np.full(step.shape, cfg.threshold)
    rem = np.clip((horizon - step) / horizon, 0.0, 1.0)
    return cfg.threshold * rem**cfg.compute_exponent


def is_due(cfg: PolicyConfig, step: float) -> bool:
    """Whether ``step`` is a decision step: grace, grace + k, ... (non-integer steps: always)."""
    if step < cfg.grace_epochs:
        return False
    if cfg.decision_interval == 1:
        return True
    off = step - cfg.grace_epochs
    return float(off).is_integer() and int(off) % cfg.decision_interval == 0


def judge(
    cfg: PolicyConfig,
    *,
    trial_ids: list[str],
    steps: np.ndarray,
    latest: np.ndarray,
    best: np.ndarray,
    incumbent: np.ndarray,
    grid: np.ndarray | None,
    horizon: float,
    mode: Mode,
    forecast_steps: np.ndarray | None = None,
    median_other: np.ndarray | None = None,
    incumbent_is_final: np.ndarray | None = None,
) -> list[Verdict]:
    """Judge a batch of trials (internal units in, verdicts in user units out).

    Args:
        cfg: the rule's knobs.
        trial_ids: n ids.
        steps: shape (n,), the step each trial just reported.
        latest: shape (n,), internal latest value (NaN/inf allowed; ``None`` is not: a missing
            metric is handled by the caller with :func:`bad_metric`).
        best: shape (n,), internal best finite value observed so far (-inf if none).
        incumbent: shape (n,), internal value to beat; NaN where there is none.
        grid: shape (n, K) internal quantile grids of the final value (rows of NaN where the
            forecast failed), or None when no forecast was needed.
        horizon: the final step.
        mode: the user's direction (for converting back).
        forecast_steps: shape (n,), the prefix end each grid was made from.
        median_other: shape (n,), internal median of the other trials' values at each step
            (NaN: too few), used by ``rank_gate="median"`` and ``"median_or"``.
        incumbent_is_final: shape (n,), whether the incumbent is a completed trial's final
            value (else a same-step value before any completion); the ``median_or`` veto needs
            one (None: all final).

    Returns:
        n verdicts, in order.
    """
    s = sign_of(mode)
    n = len(trial_ids)
    thr = effective_threshold(cfg, steps, horizon)
    out: list[Verdict] = []
    pb = np.full(n, np.nan)
    if grid is not None:
        ok = np.all(np.isfinite(grid), axis=1) & np.isfinite(incumbent)
        if np.any(ok):
            pb[ok] = 1.0 - grid_cdf(grid[ok], incumbent[ok])
    for i in range(n):
        tid, st = trial_ids[i], float(steps[i])
        inc_u = None if not math.isfinite(incumbent[i]) else float(s * incumbent[i])
        if not math.isfinite(latest[i]):
            out.append(Verdict(tid, st, True, Reason.DIVERGED.value, incumbent=inc_u))
            continue
        if st < cfg.grace_epochs:
            out.append(Verdict(tid, st, False, Reason.GRACE.value, incumbent=inc_u))
            continue
        if st >= horizon:
            out.append(Verdict(tid, st, False, Reason.HORIZON.value, incumbent=inc_u))
            continue
        if not is_due(cfg, st):
            out.append(Verdict(tid, st, False, Reason.NOT_DUE.value, incumbent=inc_u))
            continue
        if inc_u is None:
            out.append(Verdict(tid, st, False, Reason.NO_INCUMBENT.value))
            continue
        if leads(cfg, float(latest[i]), float(best[i]), float(incumbent[i])):
            out.append(Verdict(tid, st, False, Reason.BEATS_INCUMBENT.value, incumbent=inc_u))
            continue
        if cfg.rank_gate == "median" and (
            median_other is None or not math.isfinite(median_other[i])
            or best[i] >= median_other[i]
        ):
            out.append(Verdict(tid, st, False, Reason.ABOVE_MEDIAN.value, incumbent=inc_u))
            continue
        if grid is None or not np.all(np.isfinite(grid[i])):
            out.append(Verdict(tid, st, False, Reason.MODEL_ERROR.value, incumbent=inc_u))
            continue
        g = grid[i]
        # user-unit quantiles: for min, the user's 5% quantile is -(internal 95% quantile)
        if s > 0:
            q05, q50, q95 = g[_I05], g[_I50], g[_I95]
        else:
            q05, q50, q95 = -g[_I95], -g[_I50], -g[_I05]
        p = float(pb[i])
        stop = p < thr[i]
        reason = Reason.P_BEAT_LOW if stop else Reason.P_BEAT_OK
        veto = incumbent_is_final is None or bool(incumbent_is_final[i])
        if (not stop and cfg.rank_gate == "median_or" and median_other is not None
                and math.isfinite(median_other[i]) and best[i] < median_other[i]
                and (not veto or p < cfg.veto_threshold)):
            stop, reason = True, Reason.BELOW_MEDIAN
        out.append(
            Verdict(
                tid, st, bool(stop), reason.value,
                p_beat=p, q05=float(q05), q50=float(q50), q95=float(q95), incumbent=inc_u,
                threshold=float(thr[i]),
                forecast_step=None if forecast_steps is None else float(forecast_steps[i]),
            )
        )
    return out


def bad_metric(trial_id: str, step: float | None, why: str = "") -> Verdict:
    """The error verdict for a missing or non-numeric metric (the trial continues)."""
    return Verdict(str(trial_id), float("nan") if step is None else float(step), False,
                   Reason.BAD_METRIC.value)
