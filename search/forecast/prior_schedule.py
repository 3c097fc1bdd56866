"""A schedule-conditioned prior: learning curves whose shape follows a known learning-rate schedule.

Registered as ``"schedule"`` in :mod:`search.forecast.prior` (``n_covariates = 3``). Every curve
comes with the per-step features of its schedule (:func:`search.schedules.schedule_features`:
relative rate, forward area, annealing area), so a PFN trained on it learns how a trial's curve
bends when its rate decays (issue 8).

The curve model follows the learning-rate-annealing scaling law of Tissue et al. (2024),
``loss(s) = L0 + A * S1(s) ** -alpha - C * S2(s)``, generalised and mapped to the model's domain
(values about [0, 1], higher is better, 0 the worst end):

* **progress runs on the forward area**: a saturating family ``g`` (Weibull, MMF, power law,
  log-linear, exponential; Domhan et al. 2015, the families of ``"extended"``) is evaluated at the
  effective time ``tau(t) = 1 + sum_{1<i<=t} r_i ** rho`` (``r`` the rate relative to its peak,
  ``rho ~ U(0.3, 1)`` so a small rate slows progress but need not stop it), not at ``t``. With
  ``g`` the power law this is the paper's ``A * S1 ** -alpha`` term; a constant schedule gives
  ``tau = t`` and the families of the schedule-free prior.
* **annealing adds a bonus** ``beta * D(t)``, ``D = (1 - lam) * S2`` counted from the peak rate
  with a true lag ``lam = exp(-1 / (lag * m))``, ``lag ~ logU(0.003, 0.1)`` of the horizon (the
  network's features use the fixed lag 0.02: the true response speed is something it must infer).
  The total gain ``y_top - y0`` (``y_top = y0 + (1 - y0) Beta(1.5, 1.2)``) is split: a share
  ``Beta(1.2, 2)`` (mean 0.38) is ``beta``, reachable only by annealing, the rest is the
  no-annealing asymptote of ``g``; so a cosine run can look worse than a constant one for most of
  training and overtake it at the end.
* **shapes of real runs**: overfitting after a peak (10%), collapse to the worst end (4%),
  Gaussian noise ``ln sigma ~ N(-4.2, 1)`` (30% nearly noiseless, ``ln sigma ~ U(ln 1e-4,
  ln 3e-3)``, as in ``"extended-v2"``) scaled by ``0.4 + 0.6 r_t`` (annealed runs are less
  noisy), values below 0 clipped to 0 as the normaliser does.

Schedules are sampled from the families of :mod:`search.schedules` with broad parameters
(:func:`sample_schedules`): constant, step (size or milestones), cosine (to a floor, or ending
early), linear, exponential, one-cycle, warmup-stable-decay, TaskSet's linear x exponential decay,
cosine with warm restarts and random piecewise-constant drops, 25% of them with a linear warm-up.

``"schedule-v3"`` is the same with real curves' noise levels (as ``"sweepcast-v3"``): half of the
schedule-law curves quiet, down to ``sigma = 1e-5``, and ``"sweepcast-v3"`` as the schedule-free
base. ``"schedule-v4"`` (fifth session) is ``"schedule-v3"`` with 30% of the schedule-law curves
gaining only ``U(0, 0.3)`` of their annealing bonus and 20% (not 10%) overfitting: on validation
loss of the digits MLP the v3 model forecast more annealing gain than came (median forecast 0.02-0.03
below the final at 40% of training for decaying schedules, none for constant ones), which set
``incumbent: top_fraction``'s bar too strict for constant-rate trials.

Mixture (``SchedulePrior``): 65% schedule-law curves; 25% curves of the schedule-free
``"sweepcast-v2"`` prior with the features of a constant schedule (so the model keeps every shape it
knew for trials whose rate never changes); 10% ``"sweepcast-v2"`` curves paired with a random
schedule they ignore (a declared schedule that does not matter, e.g. a decay too small to show, so
the model never trusts the schedule blindly).
"""

from __future__ import annotations

import numpy as np

from search.forecast.prior import (
    HORIZON,
    PriorBatch,
    _check_n,
    _check_share,
    get_prior,
    sample_cutoffs,
)
from search.schedules import Schedule, annealing_area, lag_to_lambda, rates_of, schedule_features

#: Schedule kinds drawn by :func:`sample_schedules`, with their probabilities.
SCHEDULE_KINDS = {
    "constant": 0.12, "step": 0.14, "cosine": 0.16, "linear": 0.09, "exponential": 0.07,
    "onecycle": 0.1, "wsd": 0.1, "taskset": 0.1, "restarts": 0.05, "drops": 0.07,
}
N_COVARIATES = 3


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _one_schedule(kind: str, m: int, rng: np.random.Generator) -> np.ndarray:
    """One sampled schedule of the given kind, as its per-step rate (m,)."""
    warm = int(rng.integers(1, max(2, m // 10) + 1)) if rng.random() < 0.25 else 0
    if kind == "constant":
        spec = {"name": "constant", "warmup_epochs": warm}
    elif kind == "step":
        spec = {"name": "step", "warmup_epochs": warm, "gamma": _logu(rng, 0.03, 0.7)}
        if rng.random() < 0.5:
            spec["step_size"] = int(rng.integers(max(1, m // 10), max(2, int(0.7 * m)) + 1))
        else:
            k = int(rng.integers(1, 4))
            ms = np.unique(rng.integers(max(1, m // 10), m, size=k))
            spec["milestones"] = [int(v) for v in ms]
    elif kind == "cosine":
        spec = {"name": "cosine", "warmup_epochs": warm,
                "min_factor": 0.0 if rng.random() < 0.6 else float(rng.uniform(0.0, 0.3))}
        if rng.random() < 0.15:
            spec["total_epochs"] = int(rng.integers(max(warm + 1, m // 2), m + 1))
    elif kind == "linear":
        spec = {"name": "linear", "warmup_epochs": warm,
                "end_factor": 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.6))}
    elif kind == "exponential":
        spec = {"name": "exponential", "warmup_epochs": warm,
                "gamma": _logu(rng, 1e-3, 0.7) ** (1.0 / m)}
    elif kind == "onecycle":
        spec = {"name": "onecycle", "pct_start": float(rng.uniform(0.1, 0.5)),
                "div_factor": _logu(rng, 5, 50), "final_div_factor": _logu(rng, 10, 1e4)}
    elif kind == "wsd":
        spec = {"name": "wsd", "warmup_epochs": warm,
                "decay_fraction": float(rng.uniform(0.05, 0.4)),
                "decay": str(rng.choice(["linear", "cosine", "sqrt"])),
                "min_factor": 0.0 if rng.random() < 0.6 else float(rng.uniform(0.0, 0.2))}
    elif kind == "taskset":
        # TaskSet's adam8p: exp(-E g) * max(1 - L g, 0) over the run; E, L per horizon from the
        # ranges of its wide grid (1e-6..1e-3 and 1e-7..1e-4 per step over 10k steps)
        e_tot, l_tot = _logu(rng, 1e-2, 10.0), _logu(rng, 1e-3, 1.0)
        g = (np.arange(m) + 0.5) / m
        return np.exp(-e_tot * g) * np.maximum(1.0 - l_tot * g, 0.0)
    elif kind == "restarts":
        cycles = int(rng.integers(2, 5))
        period = m / cycles
        ph = (np.arange(m) % period) / period
        floor = float(rng.uniform(0.0, 0.2))
        return floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * ph))
    elif kind == "drops":
        k = int(rng.integers(1, 5))
        at = np.sort(rng.integers(1, m, size=k))
        levels = np.cumprod([_logu(rng, 0.05, 0.9) for _ in range(k)])
        out = np.ones(m)
        for a, lv in zip(at, levels):
            out[a:] = lv
        return out
    else:
        raise ValueError(f"unknown schedule kind {kind!r}")
    name = spec.pop("name")
    spec.setdefault("lr", 1.0)
    if name == "step":
        spec.setdefault("gamma", 0.1)
        if "milestones" in spec:
            spec["milestones"] = tuple(spec["milestones"])
    return rates_of(Schedule(name, spec), m)  # every parameter given: no re-validation


def sample_schedules(n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` sampled schedules: per-step rates (n, m) with peak 1, and their kinds."""
    names = list(SCHEDULE_KINDS)
    p = np.array([SCHEDULE_KINDS[k] for k in names])
    kinds = rng.choice(len(names), size=n, p=p / p.sum())
    lr = np.empty((n, m))
    for i, k in enumerate(kinds):
        v = _one_schedule(names[k], m, rng)
        lr[i] = v / v.max()
    return lr, [names[k] for k in kinds]


def _families(tau: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Saturating shapes g(tau) in [0, 1], one family per curve; tau has shape (n, m), >= 1."""
    n, m = tau.shape
    kind = rng.integers(0, 5, n)[:, None]
    scale = np.exp(rng.uniform(np.log(0.5), np.log(3.0 * m), n))[:, None]
    d = np.exp(rng.normal(0.0, 0.4, n))[:, None]
    alpha = np.exp(rng.normal(-0.3, 0.7, n))[:, None]
    r = tau / scale
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        rd = r**d
        weib = 1.0 - np.exp(-rd)
        mmf = rd / (1.0 + rd)
        pw = 1.0 - (1.0 + r) ** (-alpha)
        loglin = np.clip(np.log1p(r) / np.log1p(3.0 * m / scale), 0.0, 1.0) ** d
        expo = 1.0 - np.exp(-r)
    g = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [weib, mmf, pw, loglin], expo)
    return np.clip(np.nan_to_num(g, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def sample_law_curves(lr: np.ndarray, rng: np.random.Generator,
                      low_noise: float = 0.3, quiet_lo: float = 1e-4,
                      weak_anneal: float = 0.0, overfit: float = 0.10) -> np.ndarray:
    """Noisy schedule-following curves (n, m) for per-step rates ``lr`` (n, m) with peak 1;
    a ``low_noise`` share is nearly noiseless, ``ln sigma ~ U(ln quiet_lo, ln 3e-3)`` (as
    ``"extended-v2"`` with the defaults, ``"extended-v3"`` with 0.5 and 1e-5).

    ``weak_anneal``: a share of curves whose annealing bonus ``beta`` is cut to ``U(0, 0.3)`` of
    its draw (a validation metric of a model that overfits gains little from the decay that
    lowers its training loss); ``overfit``: the share that declines after a peak. With the
    defaults (0, 0.10) no extra random numbers are drawn, so ``"schedule"`` and
    ``"schedule-v3"`` batches are unchanged."""
    n, m = lr.shape
    t = np.arange(1, m + 1, dtype=np.float64)
    rho = rng.uniform(0.3, 1.0, n)[:, None]
    rr = lr**rho
    tau = 1.0 + np.cumsum(rr, axis=1) - rr[:, :1]
    g = _families(tau, rng)
    y0 = np.where(rng.random(n) < 0.4, rng.uniform(0.0, 0.05, n), rng.uniform(0.0, 0.6, n))
    y_top = y0 + (1.0 - y0) * rng.beta(1.5, 1.2, n)
    beta = (y_top - y0) * rng.beta(1.2, 2.0, n)  # the share of the gain only annealing reaches
    if weak_anneal > 0.0:
        weak = rng.random(n) < weak_anneal
        beta = np.where(weak, beta * rng.uniform(0.0, 0.3, n), beta)
    y_inf = y_top - beta
    f = y0[:, None] + (y_inf - y0)[:, None] * g
    lam = lag_to_lambda(np.exp(rng.uniform(np.log(0.003), np.log(0.1), n)), m)
    d = (1.0 - lam)[:, None] * annealing_area(lr, lam, from_peak=True)
    f = f + beta[:, None] * d

    over = rng.random(n) < overfit
    tp = rng.uniform(0.05 * m, 0.8 * m, n)
    drop = rng.uniform(0.0, 0.25, n)
    rate = np.exp(rng.uniform(np.log(0.1 * m), np.log(2.0 * m), n))
    dt = np.clip(t[None, :] - tp[:, None], 0.0, None)
    f = f - np.where(over, drop, 0.0)[:, None] * f * (1.0 - np.exp(-dt / rate[:, None]))
    f = np.clip(f, 0.0, 1.0)

    ln_sigma = np.where(rng.random(n) < low_noise,
                        rng.uniform(np.log(quiet_lo), np.log(3e-3), n), rng.normal(-4.2, 1.0, n))
    sigma = np.exp(ln_sigma)[:, None] * (0.4 + 0.6 * lr)
    y = np.maximum(f + sigma * rng.standard_normal((n, m)), 0.0)
    coll = rng.random(n) < 0.04
    tc = rng.integers(2, m + 1, n)
    y[coll[:, None] & (t[None, :] >= tc[:, None])] = 0.0
    return y


class SchedulePrior:
    """The schedule-conditioned prior (see the module docstring); ``cov`` has 3 features per step.

    Args:
        horizon: steps per curve (the schedule ends at the last step).
        weights: shares of (schedule-law curves, schedule-free curves with a constant schedule,
            schedule-free curves with a random schedule they ignore).
        base: the registered schedule-free prior mixed in.
        low_noise, quiet_lo: the quiet share of the schedule-law curves and its lowest noise
            level (:func:`sample_law_curves`).
        weak_anneal, overfit: the shares of schedule-law curves with a weak annealing bonus and
            with a late decline (:func:`sample_law_curves`).
        name: the registered name.
    """

    n_covariates = N_COVARIATES

    def __init__(self, horizon: int = HORIZON, weights: tuple[float, float, float] = (0.65, 0.25, 0.10),
                 base: str = "sweepcast-v2", low_noise: float = 0.3, quiet_lo: float = 1e-4,
                 weak_anneal: float = 0.0, overfit: float = 0.10, name: str = "schedule"):
        _check_share(low_noise)
        _check_share(weak_anneal, "weak_anneal")
        _check_share(overfit, "overfit")
        self.weak_anneal, self.overfit = float(weak_anneal), float(overfit)
        if not 0.0 < quiet_lo < 3e-3:
            raise ValueError(f"quiet_lo must be in (0, 3e-3), got {quiet_lo!r}")
        self.name = name
        self.low_noise, self.quiet_lo = float(low_noise), float(quiet_lo)
        if horizon < 2:
            raise ValueError(f"horizon must be >= 2, got {horizon!r}")
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (3,) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be 3 non-negative shares, not all 0, got {weights!r}")
        self.horizon = int(horizon)
        self.p = w / w.sum()
        self.base = get_prior(base)
        if self.base.horizon != self.horizon or self.base.n_covariates != 0:
            raise ValueError(f"base prior {base!r} must be covariate-free with horizon {horizon}")

    def sample(self, n: int, rng: np.random.Generator) -> PriorBatch:
        _check_n(n)
        m = self.horizon
        n_law, n_const, n_ign = (int(k) for k in rng.multinomial(n, self.p))
        lr_law, _ = sample_schedules(n_law, m, rng)
        ys, lrs = [], []
        if n_law:
            ys.append(sample_law_curves(lr_law, rng, self.low_noise, self.quiet_lo,
                                        self.weak_anneal, self.overfit))
            lrs.append(lr_law)
        if n_const + n_ign:
            free = self.base.sample(n_const + n_ign, rng).y
            ys.append(free)
            lrs.append(np.ones((n_const, m)))
            if n_ign:
                lrs.append(sample_schedules(n_ign, m, rng)[0])
        y = np.concatenate(ys)
        cov = schedule_features(np.concatenate(lrs))
        perm = rng.permutation(n)
        x = np.broadcast_to(np.arange(1, m + 1, dtype=np.float64), (n, m)).copy()
        return PriorBatch(x=x, y=y[perm], cutoff=sample_cutoffs(n, m, rng), cov=cov[perm])
