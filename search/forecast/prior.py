"""Priors over learning curves for training the PFN forecaster (LC-PFN, Adriaensen et al. 2023).

A prior draws a batch of synthetic curves on the model's domain: steps ``x = 1..m`` (the horizon,
``m = 100`` by default) and values ``y`` in about ``[0, 1]``, higher is better, plus a per-curve
cutoff (the number of observed points, ``1..m-1``) and optional per-step covariates ``cov`` of
shape ``(n, m, k)`` (for example a learning-rate schedule, see issue 8). Every sampler is
vectorised numpy and takes an injected ``numpy.random.Generator``: the same generator state gives
the same batch, bit for bit.

Priors are chosen by name through a small registry::

    prior = get_prior("sweepcast")
    batch = prior.sample(100, np.random.default_rng(0))   # PriorBatch(x, y, cutoff, cov)

Registered here:

* ``"lcpfn"``: the published LC-PFN prior (pow3 + ilog2 + Janoschek with unnormalised
  ``U(0, 1)`` weights, the paper's parameter priors, rejection of curves that leave ``[0, 1]`` or
  do not improve overall, Gaussian noise with ``ln sigma ~ N(-4, 1)``).
* ``"sweepcast"``: a mixture, half ``"lcpfn"`` and half ``"extended"``.
* ``"sweepcast-v2"``: half ``"lcpfn"``, half ``"extended-v2"`` (``"extended"`` plus 30% nearly
  noiseless curves: real curves averaged over seeds or measured on big test sets are far smoother
  than the LC-PFN noise prior, where sigma < 0.002 has probability 1.4%).
* ``"sweepcast-v3"``: ``"sweepcast-v2"`` with half of *every* component's curves quiet,
  ``ln sigma ~ U(ln 1e-5, ln 3e-3)`` (the other half keeps the paper's ``N(-4, 1)``): measured on
  the development curves (a robust noise estimate from second differences, in the normaliser's
  units) real noise has a median sigma of about 9e-4 on both benchmarks and a quarter of the
  curves are below 2e-4, while ``"sweepcast-v2"`` draws a median of 1.3e-2 (``MODEL.md``).
* ``"sweepcast-v4"``: ``"sweepcast-v3"`` whose extended half (``"extended-v4"``) makes a late
  extra gain proportional to the progress a run has made when it comes (a run stuck at its start
  gets none) and most overfitting declines small (``0.25 * U^2`` of the value instead of
  ``0.25 * U``). Motivated by the v3 model's lost cells against Domhan's MCMC (runs stuck at
  their start and runs on a plateau, where it kept a few percent of its mass on a late
  break-out or a large decline). A sixth-session CPU fine-tune of the shipped weights on it
  (1.46 M curves) did not help on the development curves (mean log-likelihood 3.10 vs 3.13, the
  same 41 of 52 cells against Domhan's MCMC; ``BENCHMARKS.md``, issue 3), so it is not the
  shipped model's prior; it stays registered so that the run can be reproduced.
* ``"extended"``: shapes real sweeps produce and the LC-PFN prior under-represents (see
  ``search/forecast/MODEL.md``): more of Domhan et al.'s saturating families with time scales up
  to beyond the horizon (slow, late-improving curves), flat curves (no progress, a run stuck at
  chance), late extra gains (a learning-rate step or annealing), overfitting (a peak followed by a
  decline), and collapses (a run diverges at some step and stays at the worst end, 0).

A new prior registers itself with :func:`register_prior`; one that returns covariates sets
``n_covariates`` so the network can be built to match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

HORIZON = 100


@dataclass(frozen=True)
class PriorBatch:
    """A batch of synthetic curves on the model domain.

    Attributes:
        x: shape (n, m), float steps ``1..m`` (the same grid for every curve).
        y: shape (n, m), noisy values, about [0, 1], higher is better; 0 is the worst end.
        cutoff: shape (n,), int in ``1..m-1``: points ``x <= cutoff`` are the observed prefix.
        cov: shape (n, m, k) per-step covariates, or None (k = 0).
    """

    x: np.ndarray
    y: np.ndarray
    cutoff: np.ndarray
    cov: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


class Prior(Protocol):
    """What the trainer needs from a prior."""

    name: str
    n_covariates: int
    horizon: int

    def sample(self, n: int, rng: np.random.Generator) -> PriorBatch: ...


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n (number of curves) must be a positive int, got {n!r}")


def sample_cutoffs(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Per-curve cutoffs ``T' ~ U{1..m-1}`` (at least one observed and one held-out point)."""
    return rng.integers(1, m, size=n)


# ---------------------------------------------------------------------------------------------
# The published LC-PFN prior
# ---------------------------------------------------------------------------------------------


def _lcpfn_candidates(k: int, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noiseless candidate curves, shape (k, m), before rejection."""
    col = lambda a: a[:, None]
    # pow3: c - a * t^-alpha
    a = rng.uniform(-0.6, 0.6, k)
    c = rng.uniform(0.0, 1.25, k)
    alpha = np.exp(rng.normal(0.0, 2.0, k))
    with np.errstate(over="ignore", under="ignore"):
        pow3 = col(c) - col(a) * np.exp(-col(alpha) * np.log(t)[None, :])
    # ilog2: c - a / ln(t + 1)
    c2 = rng.uniform(0.0, 1.0, k)
    a2 = rng.uniform(-0.5, 0.5, k)
    ilog2 = col(c2) - col(a2) / np.log(t + 1.0)[None, :]
    # Janoschek: alpha - (alpha - beta) * exp(-kappa * t^delta)
    ja = rng.uniform(0.0, 1.0, k)
    jb = rng.uniform(0.0, 2.0, k)
    kappa = np.exp(rng.normal(-2.0, 1.0, k))
    delta = np.exp(rng.normal(0.0, 0.5, k))
    with np.errstate(over="ignore", under="ignore"):
        jan = col(ja) - col(ja - jb) * np.exp(-col(kappa) * t[None, :] ** col(delta))
    w = rng.uniform(0.0, 1.0, (k, 3))
    return w[:, 0:1] * pow3 + w[:, 1:2] * ilog2 + w[:, 2:3] * jan


def sample_lcpfn_noiseless(n: int, rng: np.random.Generator, m: int = HORIZON) -> np.ndarray:
    """Noiseless LC-PFN curves accepted by the paper's rejection rule, shape (n, m)."""
    t = np.arange(1, m + 1, dtype=np.float64)
    out = np.empty((n, m))
    filled = 0
    while filled < n:
        k = max(64, int((n - filled) * 6))  # about 21% are accepted
        f = _lcpfn_candidates(k, t, rng)
        ok = (f[:, -1] > f[:, 0]) & np.all((f >= 0.0) & (f <= 1.0), axis=1)
        good = f[ok][: n - filled]
        out[filled : filled + good.shape[0]] = good
        filled += good.shape[0]
    return out


def _noise(n: int, rng: np.random.Generator, mu: float = -4.0, sd: float = 1.0) -> np.ndarray:
    return np.exp(rng.normal(mu, sd, n))


def _quiet(sigma: np.ndarray, share: float, rng: np.random.Generator,
           lo: float, hi: float) -> np.ndarray:
    """Replace a ``share`` of the noise levels by nearly nil ones, ``ln sigma ~ U(ln lo, ln hi)``."""
    if share <= 0:
        return sigma
    n = sigma.shape[0]
    quiet = rng.random(n) < share
    return np.where(quiet, np.exp(rng.uniform(np.log(lo), np.log(hi), n)), sigma)


def _check_share(value: float, name: str = "low_noise") -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


class LCPFNPrior:
    """The LC-PFN paper's prior, vectorised (about 1.5 ms for 100 curves of 100 points).

    Args:
        horizon: curve length m.
        low_noise: share of curves made quiet, ``ln sigma ~ U(ln 1e-5, ln 3e-3)`` (0: the paper's
            noise prior alone; 0.5 in ``"sweepcast-v3"``).
    """

    name = "lcpfn"
    n_covariates = 0

    def __init__(self, horizon: int = HORIZON, low_noise: float = 0.0):
        if horizon < 2:
            raise ValueError(f"horizon must be >= 2, got {horizon!r}")
        _check_share(low_noise)
        self.horizon = int(horizon)
        self.low_noise = float(low_noise)

    def sample(self, n: int, rng: np.random.Generator) -> PriorBatch:
        _check_n(n)
        m = self.horizon
        f = sample_lcpfn_noiseless(n, rng, m)
        # _quiet draws nothing at share 0: the paper's prior keeps its random stream
        sigma = _quiet(_noise(n, rng), self.low_noise, rng, 1e-5, 3e-3)
        y = f + sigma[:, None] * rng.standard_normal((n, m))
        x = np.broadcast_to(np.arange(1, m + 1, dtype=np.float64), (n, m)).copy()
        return PriorBatch(x=x, y=y, cutoff=sample_cutoffs(n, m, rng))


# ---------------------------------------------------------------------------------------------
# Extensions for real sweeps
# ---------------------------------------------------------------------------------------------


def _saturating(kind: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shapes g(t) rising from 0 (at t = 0) towards 1, one family per curve, shape (n, m).

    Families (Domhan et al. 2015), each with a time scale ``tau`` whose log is uniform between
    0.5 and 3x the horizon, so some curves are still improving at the end:
      0 weibull  1 - exp(-(t/tau)^d)
      1 mmf      (t/tau)^d / (1 + (t/tau)^d)
      2 pow      1 - (1 + t/tau)^-alpha                  (pow3 / log-power-like)
      3 loglin   (ln(1 + t/tau) / ln(1 + 3 m/tau))^d      (never saturates in the horizon)
    """
    n = kind.shape[0]
    m = t.shape[0]
    tau = np.exp(rng.uniform(np.log(0.5), np.log(3.0 * m), n))[:, None]
    d = np.exp(rng.normal(0.0, 0.4, n))[:, None]
    alpha = np.exp(rng.normal(-0.3, 0.7, n))[:, None]
    r = t[None, :] / tau
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        weib = 1.0 - np.exp(-(r**d))
        rd = r**d
        mmf = rd / (1.0 + rd)
        pw = 1.0 - (1.0 + r) ** (-alpha)
        loglin = np.clip(np.log1p(r) / np.log1p(3.0 * m / tau), 0.0, 1.0) ** d
    g = np.select(
        [kind[:, None] == 0, kind[:, None] == 1, kind[:, None] == 2],
        [weib, mmf, pw],
        loglin,
    )
    return np.nan_to_num(g, nan=0.0, posinf=1.0, neginf=0.0)


def sample_extended_noiseless(n: int, rng: np.random.Generator, m: int = HORIZON, *,
                              gain_by_progress: bool = False,
                              drop_power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless extended curves (n, m) and a mask (n, m) of collapsed (diverged) points.

    Args:
        gain_by_progress: scale a late extra gain by the progress the run has made when it
            comes, ``min(1, 2 * (f(t_d) - y0) / (1 - y0))``: an annealing step sharpens what a run
            has learnt, it does not rescue a run that is stuck at its start (``"extended-v4"``).
            Off in the earlier priors, whose batches are unchanged by the option.
        drop_power: an overfitting run loses ``0.25 * U^drop_power`` of its value after its
            peak; 1 (uniform, the earlier priors) or 2 (``"extended-v4"``: the same range, most
            declines small, as for validation accuracy; the median drop 6% instead of 12.5%).
    """
    t = np.arange(1, m + 1, dtype=np.float64)
    kind = rng.integers(0, 4, n)
    g = _saturating(kind, t, rng)
    # start level: many real normalised curves start at the worst end (0), others anywhere
    y0 = np.where(rng.random(n) < 0.4, rng.uniform(0.0, 0.05, n), rng.uniform(0.0, 0.7, n))
    y_inf = y0 + (1.0 - y0) * rng.beta(1.5, 1.2, n)
    flat = rng.random(n) < 0.06  # no progress at all (stuck at chance)
    y_inf = np.where(flat, y0, y_inf)
    f = y0[:, None] + (y_inf - y0)[:, None] * g

    # a late extra gain: a learning-rate step / end-of-schedule annealing
    late = (rng.random(n) < 0.2) & ~flat
    td = rng.uniform(0.2 * m, 0.95 * m, n)
    gain = rng.uniform(0.0, 0.35, n) * (1.0 - f.max(axis=1))
    if gain_by_progress:
        ft = f[np.arange(n), np.clip(td.astype(np.int64) - 1, 0, m - 1)]
        progress = np.clip((ft - y0) / np.maximum(1.0 - y0, 1e-9), 0.0, 1.0)
        gain = gain * np.minimum(1.0, 2.0 * progress)
    rate = np.exp(rng.uniform(np.log(0.5), np.log(0.15 * m), n))
    dt = np.clip(t[None, :] - td[:, None], 0.0, None)
    f = f + np.where(late, gain, 0.0)[:, None] * (1.0 - np.exp(-dt / rate[:, None]))

    # overfitting: after a peak the value declines slowly
    over = (rng.random(n) < 0.15) & ~flat
    tp = rng.uniform(0.05 * m, 0.8 * m, n)
    # the earlier priors' own draw when drop_power is 1, so their batches stay bit-identical
    drop = 0.25 * rng.uniform(0.0, 1.0, n) ** drop_power if drop_power != 1.0 else rng.uniform(0.0, 0.25, n)
    rate2 = np.exp(rng.uniform(np.log(0.1 * m), np.log(2.0 * m), n))
    dt2 = np.clip(t[None, :] - tp[:, None], 0.0, None)
    f = f - np.where(over, drop, 0.0)[:, None] * f * (1.0 - np.exp(-dt2 / rate2[:, None]))

    f = np.clip(f, 0.0, 1.0)
    # collapse: a divergent run drops to the worst end and stays there
    coll = rng.random(n) < 0.08
    tc = rng.integers(2, m + 1, n)
    collapsed = coll[:, None] & (t[None, :] >= tc[:, None])
    return f, collapsed


class ExtendedPrior:
    """Shapes of real sweeps that the LC-PFN prior lacks; see the module docstring.

    Args:
        horizon: curve length m.
        low_noise: share of curves whose noise is nearly nil (``ln sigma ~ U(ln quiet_lo,
            ln 3e-3)``), as for curves averaged over replicas or measured on a large evaluation
            set; the others draw ``ln sigma ~ N(-4.2, 1)``. 0 in ``"extended"``, 0.3 in
            ``"extended-v2"``, 0.5 in ``"sweepcast-v3"``.
        quiet_lo: the lowest quiet noise level (1e-4 in ``"extended-v2"``, 1e-5 in ``"-v3"``).
    """

    n_covariates = 0

    def __init__(self, horizon: int = HORIZON, low_noise: float = 0.0, name: str = "extended",
                 quiet_lo: float = 1e-4, gain_by_progress: bool = False, drop_power: float = 1.0):
        if horizon < 2:
            raise ValueError(f"horizon must be >= 2, got {horizon!r}")
        _check_share(low_noise)
        if not (np.isfinite(drop_power) and drop_power > 0):
            raise ValueError(f"drop_power must be a finite number > 0, got {drop_power!r}")
        self.horizon = int(horizon)
        self.low_noise = float(low_noise)
        self.quiet_lo = float(quiet_lo)
        self.gain_by_progress = bool(gain_by_progress)
        self.drop_power = float(drop_power)
        self.name = name

    def sample(self, n: int, rng: np.random.Generator) -> PriorBatch:
        _check_n(n)
        m = self.horizon
        f, collapsed = sample_extended_noiseless(n, rng, m, gain_by_progress=self.gain_by_progress,
                                                 drop_power=self.drop_power)
        sigma = _quiet(_noise(n, rng, -4.2, 1.0), self.low_noise, rng, self.quiet_lo, 3e-3)
        sigma = sigma[:, None]
        y = f + sigma * rng.standard_normal((n, m))
        # the normaliser maps values worse than the reference start (and NaN / inf) to 0 exactly
        y = np.maximum(y, 0.0)
        y[collapsed] = 0.0
        x = np.broadcast_to(np.arange(1, m + 1, dtype=np.float64), (n, m)).copy()
        return PriorBatch(x=x, y=y, cutoff=sample_cutoffs(n, m, rng))


class MixturePrior:
    """Each curve comes from component i with probability ``weights[i]`` (covariate-free)."""

    n_covariates = 0

    def __init__(self, name: str, components: list, weights: list[float]):
        if len(components) != len(weights) or not components:
            raise ValueError(f"components and weights must be non-empty and match, got {len(components)} and {len(weights)}")
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be >= 0 and not all 0, got {weights!r}")
        hs = {c.horizon for c in components}
        if len(hs) != 1:
            raise ValueError(f"components must share a horizon, got {sorted(hs)}")
        self.name = name
        self.components = components
        self.p = w / w.sum()
        self.horizon = hs.pop()

    def sample(self, n: int, rng: np.random.Generator) -> PriorBatch:
        _check_n(n)
        counts = rng.multinomial(n, self.p)
        parts = [c.sample(int(k), rng) for c, k in zip(self.components, counts) if k > 0]
        x = np.concatenate([p.x for p in parts])
        y = np.concatenate([p.y for p in parts])
        cut = np.concatenate([p.cutoff for p in parts])
        perm = rng.permutation(n)
        return PriorBatch(x=x[perm], y=y[perm], cutoff=cut[perm])


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[], Prior]] = {}


def register_prior(name: str, factory: Callable[[], Prior]) -> None:
    """Register a prior factory under ``name`` (overwrites are refused)."""
    if name in _REGISTRY:
        raise ValueError(f"prior {name!r} is already registered")
    _REGISTRY[name] = factory


def available_priors() -> list[str]:
    return sorted(_REGISTRY)


def get_prior(name: str) -> Prior:
    """Return a fresh prior by name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown prior {name!r}; known: {available_priors()}") from None
    return factory()


register_prior("lcpfn", LCPFNPrior)
register_prior("extended", ExtendedPrior)
register_prior("sweepcast", lambda: MixturePrior("sweepcast", [LCPFNPrior(), ExtendedPrior()], [0.5, 0.5]))
register_prior("extended-v2", lambda: ExtendedPrior(low_noise=0.3, name="extended-v2"))
register_prior(
    "sweepcast-v2",
    lambda: MixturePrior("sweepcast-v2", [LCPFNPrior(), ExtendedPrior(low_noise=0.3, name="extended-v2")], [0.5, 0.5]),
)
register_prior(
    "sweepcast-v3",
    lambda: MixturePrior("sweepcast-v3", [
        LCPFNPrior(low_noise=0.5),
        ExtendedPrior(low_noise=0.5, name="extended-v3", quiet_lo=1e-5),
    ], [0.5, 0.5]),
)

register_prior(
    "sweepcast-v4",
    lambda: MixturePrior("sweepcast-v4", [
        LCPFNPrior(low_noise=0.5),
        ExtendedPrior(low_noise=0.5, name="extended-v4", quiet_lo=1e-5, gain_by_progress=True,
                      drop_power=2.0),
    ], [0.5, 0.5]),
)


def _schedule_prior() -> Prior:
    # issue 8 (H8): the schedule-conditioned prior lives in its own module, which imports this one
    from search.forecast.prior_schedule import SchedulePrior

    return SchedulePrior()


def _schedule_prior_v3() -> Prior:
    from search.forecast.prior_schedule import SchedulePrior

    return SchedulePrior(base="sweepcast-v3", low_noise=0.5, quiet_lo=1e-5, name="schedule-v3")


def _schedule_prior_v4() -> Prior:
    from search.forecast.prior_schedule import SchedulePrior

    return SchedulePrior(base="sweepcast-v3", low_noise=0.5, quiet_lo=1e-5, weak_anneal=0.3,
                         overfit=0.2, name="schedule-v4")


register_prior("schedule", _schedule_prior)
register_prior("schedule-v3", _schedule_prior_v3)
register_prior("schedule-v4", _schedule_prior_v4)
