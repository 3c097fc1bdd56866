"""`ParametricModel`: the Domhan et al. (2015) baseline, a least-squares + MCMC ensemble of curve families.

Per curve, on the same normalised domain as the PFN (``normalise.py``):

1. each family below is fitted by bounded least squares (``scipy.optimize.least_squares``);
2. its posterior over (parameters, log noise sigma) is sampled by an affine-invariant ensemble
   MCMC (the stretch move of Goodman and Weare, as in ``emcee``), vectorised over walkers, with
   flat box priors and the constraint that the extrapolated value lies in [-0.1, 1.5];
3. the families are mixed with weights proportional to ``exp(-BIC / 2)`` of their least-squares
   fits (a cheap stand-in for Domhan's joint MCMC over the weights);
4. the predictive samples are ``f(x_target) + sigma * eps``, mapped back to user units.

Prefixes of fewer than 3 points cannot be fitted: they get the last value with a wide Gaussian
(sd 0.1 in model units). The model is slow by design (it is the baseline the PFN is measured
against); keep ``n_steps`` small in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from search.forecast.base import Curve, CurveModel, Forecast, Mode, SampleForecast, check_batch
from search.forecast.normalise import normalise_batch


@dataclass(frozen=True)
class Family:
    name: str
    f: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (theta (..., D), x (m,)) -> (..., m)
    lo: np.ndarray
    hi: np.ndarray
    init: np.ndarray


def _p(theta: np.ndarray, i: int) -> np.ndarray:
    return theta[..., i : i + 1]


def _pow3(t, x):
    return _p(t, 0) - _p(t, 1) * np.exp(-np.exp(_p(t, 2)) * np.log(x))


def _ilog2(t, x):
    return _p(t, 0) - _p(t, 1) / np.log(x + 1.0)


def _log_power(t, x):
    return _p(t, 0) / (1.0 + np.exp(_p(t, 2) * (np.log(x) - _p(t, 1))))


def _weibull(t, x):
    a, b, lk, d = (_p(t, i) for i in range(4))
    return a - (a - b) * np.exp(-np.exp(d * (lk + np.log(x))))


def _mmf(t, x):
    a, b, lk, d = (_p(t, i) for i in range(4))
    return a - (a - b) / (1.0 + np.exp(d * (lk + np.log(x))))


def _janoschek(t, x):
    a, b, lk, d = (_p(t, i) for i in range(4))
    return a - (a - b) * np.exp(-np.exp(lk + d * np.log(x)))


def _exp3(t, x):
    return _p(t, 0) - np.exp(-np.exp(_p(t, 1)) * x + _p(t, 2))


A = np.array
FAMILIES: tuple[Family, ...] = (
    Family("pow3", _pow3, A([-0.5, 0.0, -5.0]), A([1.5, 3.0, 1.6]), A([0.8, 0.5, -0.5])),
    Family("ilog2", _ilog2, A([-0.5, 0.0]), A([1.5, 5.0]), A([0.8, 0.5])),
    Family("log_power", _log_power, A([0.0, -5.0, -5.0]), A([1.5, 8.0, 0.0]), A([0.8, 1.0, -1.0])),
    Family("weibull", _weibull, A([0.0, -0.5, -10.0, 0.1]), A([1.5, 1.5, 3.0, 5.0]), A([0.8, 0.1, -3.0, 1.0])),
    Family("mmf", _mmf, A([0.0, -0.5, -10.0, 0.1]), A([1.5, 1.5, 3.0, 5.0]), A([0.8, 0.1, -3.0, 1.0])),
    Family("janoschek", _janoschek, A([0.0, -0.5, -15.0, 0.1]), A([1.5, 1.5, 3.0, 5.0]), A([0.8, 0.1, -3.0, 1.0])),
    Family("exp3", _exp3, A([-0.5, -10.0, -10.0]), A([1.5, 2.0, 3.0]), A([0.8, -3.0, 0.0])),
)
LOG_SIGMA = (-9.0, 0.0)


def _fit_family(fam: Family, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounded least squares; returns (theta, sse)."""
    from scipy.optimize import least_squares

    def resid(th):
        with np.errstate(all="ignore"):
            r = fam.f(th, x) - y
        return np.nan_to_num(r, nan=1e3, posinf=1e3, neginf=-1e3)

    init = np.clip(fam.init, fam.lo + 1e-6, fam.hi - 1e-6)
    try:
        res = least_squares(resid, init, bounds=(fam.lo, fam.hi), max_nfev=100, method="trf")
        th = res.x
    except (ValueError, np.linalg.LinAlgError):
        th = init
    return th, float(np.sum(resid(th) ** 2))


def _log_post(fam: Family, z: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray,
              cnt: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """Log posterior of walkers z (n, W, D+1) (last: log sigma) for n curves at once.

    x, y, w: (n, 1, L) padded steps, values and 0/1 weights; cnt: (n, 1) points; xt: (n, 1, 1).
    """
    th, ls = z[..., :-1], z[..., -1]
    inside = np.all((th >= fam.lo) & (th <= fam.hi), axis=-1) & (ls >= LOG_SIGMA[0]) & (ls <= LOG_SIGMA[1])
    with np.errstate(all="ignore"):
        f = fam.f(th, x)
        ft = fam.f(th, xt)[..., 0]
        sse = np.sum(w * (f - y) ** 2, axis=-1)
        lp = -cnt * ls - 0.5 * sse / np.exp(2 * ls)
    ok = inside & np.isfinite(lp) & (ft >= -0.1) & (ft <= 1.5)
    return np.where(ok, lp, -np.inf)


def _mcmc(fam: Family, start: np.ndarray, data: tuple, rng, n_walkers, n_steps) -> np.ndarray:
    """Stretch-move ensemble sampler, vectorised over curves and walkers.

    start: (n, D+1). Returns the post-burn-in states, shape (n, S, D+1).
    """
    n, d = start.shape
    z = start[:, None, :] + 1e-3 * rng.standard_normal((n, n_walkers, d))
    z[..., :-1] = np.clip(z[..., :-1], fam.lo, fam.hi)
    lp = _log_post(fam, z, *data)
    half = n_walkers // 2
    halves = (slice(0, half), slice(half, n_walkers))
    keep = []
    rows = np.arange(n)[:, None]
    for it in range(n_steps):
        for j, s in enumerate(halves):
            other = z[:, halves[1 - j]]
            k = s.stop - s.start
            g = (rng.random((n, k)) + 1.0) ** 2 / 2.0  # g ~ 1/sqrt(g) on [1/2, 2]
            partner = other[rows, rng.integers(0, other.shape[1], (n, k))]
            prop = partner + g[..., None] * (z[:, s] - partner)
            lpp = _log_post(fam, prop, *data)
            with np.errstate(invalid="ignore"):  # -inf - -inf for walkers outside the support
                acc = np.log(rng.random((n, k))) < (d - 1) * np.log(g) + lpp - lp[:, s]
            z[:, s] = np.where(acc[..., None], prop, z[:, s])
            lp[:, s] = np.where(acc, lpp, lp[:, s])
        if it >= n_steps // 2:
            keep.append(np.where(np.isfinite(lp)[..., None], z, np.nan))
    return np.concatenate(keep, axis=1)


class ParametricModel(CurveModel):
    """Least-squares + MCMC ensemble of curve families (Domhan et al. 2015); see the module doc.

    Args:
        n_walkers: MCMC walkers per family (even, >= 2 x (parameters + 1)).
        n_steps: MCMC iterations per family (the second half is kept).
        n_samples: predictive samples per curve.
        seed: seed of the model's own generator (or pass ``rng``).
        families: subset of family names (default: all of ``FAMILIES``).
    """

    name = "parametric"

    def __init__(self, *, n_walkers: int = 12, n_steps: int = 200, n_samples: int = 1000,
                 seed: int = 0, rng: np.random.Generator | None = None,
                 families: Sequence[str] | None = None, bounds: tuple[float, float] | None = None):
        if n_walkers < 10 or n_walkers % 2:
            raise ValueError(f"n_walkers must be an even number >= 10, got {n_walkers!r}")
        if n_steps < 2:
            raise ValueError(f"n_steps must be >= 2, got {n_steps!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples!r}")
        names = [f.name for f in FAMILIES]
        fams = names if families is None else list(families)
        bad = [f for f in fams if f not in names]
        if bad or not fams:
            raise ValueError(f"unknown or empty families {bad or fams!r}; known: {names}")
        self.families = [f for f in FAMILIES if f.name in fams]
        self.n_walkers, self.n_steps, self.n_samples = n_walkers, n_steps, n_samples
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.bounds = bounds

    def _samples(self, xs: list[np.ndarray], ys: list[np.ndarray], xts: np.ndarray) -> np.ndarray:
        """Predictive samples (n, n_samples) in model units for curves with >= 3 points."""
        rng = self.rng
        n = len(xs)
        L = max(x.size for x in xs)
        X = np.ones((n, 1, L))
        Y = np.zeros((n, 1, L))
        Wm = np.zeros((n, 1, L))
        for i, (x, y) in enumerate(zip(xs, ys)):
            X[i, 0, : x.size], Y[i, 0, : x.size], Wm[i, 0, : x.size] = x, y, 1.0
        cnt = np.array([x.size for x in xs], dtype=np.float64)[:, None]
        data = (X, Y, Wm, cnt, np.asarray(xts, dtype=np.float64)[:, None, None])
        bics, posts = [], []
        for fam in self.families:
            starts = []
            for i in range(n):
                th, sse = _fit_family(fam, xs[i], ys[i])
                sig2 = max(sse / xs[i].size, 1e-12)
                bics.append(xs[i].size * np.log(sig2) + (th.size + 1) * np.log(xs[i].size))
                starts.append(np.concatenate([th, [np.clip(0.5 * np.log(sig2), *LOG_SIGMA)]]))
            posts.append(_mcmc(fam, np.array(starts), data, rng, self.n_walkers, self.n_steps))
        bic = np.array(bics).reshape(len(self.families), n).T  # (n, F)
        out = np.empty((n, self.n_samples))
        for i in range(n):
            valid = [np.isfinite(p[i, :, -1]) for p in posts]
            w = np.exp(-0.5 * (bic[i] - bic[i].min())) * np.array([v.any() for v in valid])
            if w.sum() <= 0:
                out[i] = ys[i][-1] + 0.1 * rng.standard_normal(self.n_samples)
                continue
            counts = rng.multinomial(self.n_samples, w / w.sum())
            parts = []
            for fam, post, v, k in zip(self.families, posts, valid, counts):
                if k == 0:
                    continue
                good = post[i][v]
                z = good[rng.integers(0, good.shape[0], k)]
                with np.errstate(all="ignore"):
                    ft = fam.f(z[:, :-1], np.array([xts[i]]))[:, 0]
                parts.append(ft + np.exp(z[:, -1]) * rng.standard_normal(k))
            smp = np.concatenate(parts)
            out[i] = np.where(np.isfinite(smp), smp, ys[i][-1])
        return out

    def forecast(self, curves: Sequence[Curve], target_step, *, mode: Mode = "max") -> Forecast:
        targets = check_batch(curves, target_step)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        norm = normalise_batch(curves, targets, mode, bounds=self.bounds)
        out = np.empty((len(norm), self.n_samples))
        fit = [i for i, c in enumerate(norm) if c.x.size >= 3]
        for i, c in enumerate(norm):
            if c.x.size < 3:  # too short to fit: the last value with a wide Gaussian
                out[i] = c.y[-1] + 0.1 * self.rng.standard_normal(self.n_samples)
        if fit:
            out[fit] = self._samples([norm[i].x for i in fit], [norm[i].y for i in fit],
                                     np.array([norm[i].x_target for i in fit]))
        for i, c in enumerate(norm):
            out[i] = c.vmap.inverse(out[i])
        return SampleForecast(out)
