"""`PFNModel`: the shipped LC-PFN forecaster behind the `CurveModel` seam.

One forward pass scores a whole batch: every curve is normalised on its own (see
``normalise.py``), its prefix subsampled to at most ``max_context`` points, padded into one
tensor with a context mask, and the network is asked for the bar distribution of the value at the
target step. The returned `PFNForecast` keeps the bucket probabilities and each curve's value map,
so quantiles, CDF and mean come back in the user's units.

**Batch calibration** (``calibration="batch"``, the default). The network is Bayes-optimal for
curves drawn from its prior, and real sweeps are narrower or wider than that prior: DeepOBS and
TaskSet curves are smoother (its 90% intervals covered 95% of them), the built-in MLP's noisy
losses rougher (86%). A batch is usually one sweep's running trials at one moment, and their
observed prefixes already say which: each curve of at least ``CAL_MIN_POINTS`` points is
back-tested, its first half (steps up to half its last step) forecasting its own last observed
value, and the temperature ``T`` that scores those back-tests best is applied to every forecast
of the batch, tempering the predictive *density* to ``f(y)^(1/T)`` (renormalised; T < 1
sharpens, T > 1 widens; the two outer half-normal tails are tempered as one bucket each, their
mass, not their shape). ``T`` is searched on a log grid over [1/2, 2] and shrunk towards 1 by
``n / (n + CAL_PSEUDO_CURVES)`` in log space for ``n`` back-tested curves, so a batch of a few
curves moves it little and a batch of fewer than ``CAL_MIN_CURVES`` not at all. On curves from the
prior itself it stays near 1. The back-test uses only the prefixes given (no future values, no
other batch), costs one more forward pass over at most ``CAL_MAX_CURVES`` half-prefixes, and the
chosen value is ``forecast.temperature``. ``calibration="none"``: every curve on its own (T = 1),
so a curve's forecast never depends on the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from search.forecast.base import Curve, CurveModel, Forecast, Mode, check_batch
from search.forecast.normalise import ValueMap, normalise_batch

DEFAULT_WEIGHTS = "pfn_sweepcast"
MAX_CONTEXT = 48  # must match the training context cap (search.forecast.train.MAX_CONTEXT)
CALIBRATIONS = ("batch", "none")
CAL_GRID = np.exp(np.linspace(np.log(0.5), np.log(2.0), 17))  # temperatures tried (1.0 is one)
CAL_PSEUDO_CURVES = 16.0  # shrinkage of log T towards 0: weight n / (n + 16) for n back-tests
CAL_MIN_CURVES = 4  # fewer back-testable curves: T = 1 (a shrunk estimate would move < 20%)
CAL_MIN_POINTS = 3  # a curve back-tests with at least this many points (half of them context)
CAL_MAX_CURVES = 32  # back-tests per batch at most (evenly spaced over the batch)
CAL_BIN = 0.005  # back-test score: log mass of a bin this wide (model units) around the truth
CAL_P_FLOOR = 1e-6
_HALF_NORMAL_Q50 = 0.6744897501960817  # a bar distribution's tail scale is its bucket width / this


def worst_end_buckets(borders: np.ndarray) -> int:
    """How many leading buckets start below 0: the worst end, where the normaliser puts diverged,
    collapsed and worse-than-start values (exactly 0), so their mass is a point mass's."""
    return int(np.searchsorted(borders, 0.0, side="left"))


def temper(probs: np.ndarray, borders: np.ndarray, temperature: float) -> np.ndarray:
    """Bucket probabilities of the density ``f(y)^(1/T)``, renormalised (rows of ``probs``), above
    the worst end; the worst end's buckets keep their mass (``worst_end_buckets``): a point mass
    spread over narrow buckets has a high density that T < 1 would inflate."""
    if temperature == 1.0:
        return probs
    lw = np.log(borders[1:] - borders[:-1])
    with np.errstate(divide="ignore"):
        return _tempered(np.log(probs) - lw, lw, temperature, worst_end_buckets(borders))


def _tempered(log_density: np.ndarray, log_widths: np.ndarray, temperature: float,
              atom: int = 0) -> np.ndarray:
    """``temper`` from the rows' log density per bucket (kept by a caller trying many T); the first
    ``atom`` buckets keep their mass."""
    if atom:
        mass = np.exp(log_density + log_widths)
        kept = mass[:, :atom] / mass.sum(axis=1, keepdims=True)
        rest = _tempered(log_density[:, atom:], log_widths[atom:], temperature)
        return np.concatenate([kept, rest * (1.0 - kept.sum(axis=1, keepdims=True))], axis=1)
    lq = log_density / temperature + log_widths
    lq -= lq.max(axis=1, keepdims=True)
    q = np.exp(lq)
    return q / q.sum(axis=1, keepdims=True)


def shipped_weights(stem: str = DEFAULT_WEIGHTS) -> tuple[Path, Path]:
    """Paths of the weights (``.pt``) and config (``.json``) shipped in the package."""
    base = Path(str(resources.files("search.forecast") / "weights"))
    return base / f"{stem}.pt", base / f"{stem}.json"


def _bucket_cdf(borders: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, n_buckets): the share of each bucket's mass at or below ``y[i]`` (uniform inside a
    bucket, half-normal in the two outer ones; ``PFNForecast.model_cdf`` is ``probs`` times it)."""
    from scipy.special import erfc

    b = borders
    w = b[1:] - b[:-1]
    y = np.asarray(y, dtype=np.float64)[:, None]
    out = np.clip((y - b[:-1]) / w, 0.0, 1.0)
    sl, sr = w[0] / _HALF_NORMAL_Q50, w[-1] / _HALF_NORMAL_Q50
    out[:, 0] = erfc(np.maximum(b[1] - y[:, 0], 0.0) / sl / np.sqrt(2.0))
    out[:, -1] = np.where(y[:, 0] >= b[-2], 1.0 - erfc(np.maximum(y[:, 0] - b[-2], 0.0) / sr / np.sqrt(2.0)), 0.0)
    return out


class PFNForecast(Forecast):
    """Bar distributions in model units plus per-curve affine maps back to user units."""

    def __init__(self, probs: np.ndarray, borders: np.ndarray, vmaps: Sequence[ValueMap],
                 temperature: float = 1.0):
        self.temperature = float(temperature)  # the batch calibration's T (1: none)
        self._p = np.asarray(probs, dtype=np.float64)
        self._p = self._p / self._p.sum(axis=1, keepdims=True)
        self._b = np.asarray(borders, dtype=np.float64)
        self._c = np.concatenate([np.zeros((self._p.shape[0], 1)), np.cumsum(self._p, axis=1)], axis=1)
        self._c[:, -1] = 1.0
        w = self._b[1:] - self._b[:-1]
        self._sl = w[0] / _HALF_NORMAL_Q50
        self._sr = w[-1] / _HALF_NORMAL_Q50
        self._worst = np.array([m.worst for m in vmaps])
        self._scale = np.array([m.scale for m in vmaps])
        self._sign = np.array([m.sign for m in vmaps])

    def __len__(self) -> int:
        return int(self._p.shape[0])

    # ---- model units -------------------------------------------------------------------------
    def model_cdf(self, y: np.ndarray) -> np.ndarray:
        """P(Y <= y) in model units, y shape (n,)."""
        from scipy.special import erfc

        b, p, c = self._b, self._p, self._c
        n = len(self)
        y = np.broadcast_to(np.asarray(y, dtype=np.float64), (n,))
        i = np.clip(np.searchsorted(b, y, side="right") - 1, 0, b.size - 2)
        rows = np.arange(n)
        frac = np.clip((y - b[i]) / (b[i + 1] - b[i]), 0.0, 1.0)
        out = c[rows, i] + frac * p[rows, i]
        left = p[:, 0] * erfc(np.maximum(b[1] - y, 0.0) / self._sl / np.sqrt(2.0))
        right = 1.0 - p[:, -1] * erfc(np.maximum(y - b[-2], 0.0) / self._sr / np.sqrt(2.0))
        out = np.where(y < b[1], left, out)
        out = np.where(y >= b[-2], right, out)
        return np.clip(out, 0.0, 1.0)

    def model_quantiles(self, qs: np.ndarray) -> np.ndarray:
        """Quantiles in model units, shape (n, len(qs))."""
        from scipy.special import erfcinv

        qs = np.asarray(qs, dtype=np.float64).ravel()
        b, p, c = self._b, self._p, self._c
        n, nb = p.shape
        out = np.empty((n, qs.size))
        for j, q in enumerate(qs):
            i = np.clip((c[:, 1:] <= q).sum(axis=1), 0, nb - 1)  # bucket holding q
            rows = np.arange(n)
            frac = np.clip((q - c[rows, i]) / np.maximum(p[rows, i], 1e-300), 0.0, 1.0)
            v = b[i] + frac * (b[i + 1] - b[i])
            pl = np.clip(q / np.maximum(p[:, 0], 1e-300), 1e-300, 1.0)
            vl = b[1] - self._sl * np.sqrt(2.0) * erfcinv(pl)
            pr = np.clip((1.0 - q) / np.maximum(p[:, -1], 1e-300), 1e-300, 1.0)
            vr = b[-2] + self._sr * np.sqrt(2.0) * erfcinv(pr)
            v = np.where(i == 0, vl, v)
            v = np.where(i == nb - 1, vr, v)
            out[:, j] = v
        return out

    def model_mean(self) -> np.ndarray:
        b = self._b
        mids = (b[:-1] + b[1:]) / 2
        c = np.sqrt(2.0 / np.pi)
        mids[0] = b[1] - self._sl * c
        mids[-1] = b[-2] + self._sr * c
        return self._p @ mids

    def model_logpdf(self, y: np.ndarray) -> np.ndarray:
        """Log density in model units at y (n,)."""
        b, p = self._b, self._p
        n = len(self)
        y = np.broadcast_to(np.asarray(y, dtype=np.float64), (n,))
        i = np.clip(np.searchsorted(b, y, side="right") - 1, 0, b.size - 2)
        rows = np.arange(n)
        with np.errstate(divide="ignore"):
            d = np.log(p[rows, i]) - np.log(b[i + 1] - b[i])
            hn = np.log(2.0) - 0.5 * np.log(2 * np.pi)
            zl = np.maximum(b[1] - y, 0.0) / self._sl
            zr = np.maximum(y - b[-2], 0.0) / self._sr
            left = np.log(p[:, 0]) + hn - np.log(self._sl) - 0.5 * zl**2
            right = np.log(p[:, -1]) + hn - np.log(self._sr) - 0.5 * zr**2
        d = np.where(y < b[1], left, d)
        return np.where(y >= b[-2], right, d)

    # ---- user units --------------------------------------------------------------------------
    def _to_model(self, v: np.ndarray) -> np.ndarray:
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), (len(self),))
        return self._sign * (v - self._worst) / self._scale

    def _to_user(self, y: np.ndarray) -> np.ndarray:
        return self._worst[:, None] + self._sign[:, None] * y * self._scale[:, None]

    def quantiles(self, qs) -> np.ndarray:
        qs = np.asarray(qs, dtype=np.float64).ravel()
        if np.any((qs <= 0) | (qs >= 1)):
            raise ValueError(f"quantile levels must be in (0, 1), got {qs.tolist()!r}")
        up = self._to_user(self.model_quantiles(qs))
        down = self._to_user(self.model_quantiles(1.0 - qs))
        return np.where(self._sign[:, None] > 0, up, down)

    def cdf(self, y) -> np.ndarray:
        f = self.model_cdf(self._to_model(y))
        return np.where(self._sign > 0, f, 1.0 - f)

    @property
    def mean(self) -> np.ndarray:
        return self._to_user(self.model_mean()[:, None])[:, 0]


class PFNModel(CurveModel):
    """The LC-PFN forecaster (`CurveModel`). Loads the shipped weights unless given others.

    Args:
        weights: path of a ``.pt`` state_dict (its ``.json`` config next to it); default: the
            weights shipped in the package.
        threads: torch threads used for inference (1: the driver's cores belong to trials).
        bounds: optional sweep-level ``(worst, best)`` references for the normaliser.
        max_context: context points per curve (longer prefixes are subsampled).
        calibration: ``"batch"`` (default) tempers each batch's forecasts by the temperature its
            own prefixes' back-tests choose; ``"none"`` forecasts every curve on its own. See the
            module docstring.
    """

    name = "pfn"

    def __init__(self, weights: str | Path | None = None, *, threads: int = 1,
                 bounds: tuple[float, float] | None = None, max_context: int = MAX_CONTEXT,
                 calibration: str = "batch"):
        import torch

        from search.forecast.pfn import load_pfn

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        pt, js = shipped_weights() if weights is None else (Path(weights), Path(weights).with_suffix(".json"))
        self.net = load_pfn(pt, js)
        if self.net.config.n_covariates:
            raise ValueError(
                f"{pt} expects {self.net.config.n_covariates} covariates per step; PFNModel is the "
                "covariate-free forecaster"
            )
        self.threads = threads
        self.bounds = bounds
        self.max_context = max_context
        self.calibration = calibration
        self.chunk = 64
        import scipy.special  # noqa: F401  (imported once here, not on the first forecast)
        self._torch = torch
        self._borders = self.net.bar.borders.numpy().astype(np.float64)

    def forecast(self, curves: Sequence[Curve], target_step, *, mode: Mode = "max") -> Forecast:
        torch = self._torch
        targets = check_batch(curves, target_step)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        h = self.net.config.horizon
        norm = normalise_batch(curves, targets, mode, horizon=h, max_points=self.max_context, bounds=self.bounds)
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            probs = self._probs(norm)
            t = self._batch_temperature(curves, mode) if self.calibration == "batch" else 1.0
        finally:
            torch.set_num_threads(prev)
        return PFNForecast(temper(probs, self._borders, t), self._borders, [c.vmap for c in norm], t)

    def _probs(self, norm) -> np.ndarray:
        """Bucket probabilities for normalised curves, in chunks of similar prefix length (so
        short prefixes are not padded to the longest)."""
        order = np.argsort([c.x.size for c in norm], kind="stable")
        probs = np.empty((len(norm), self.net.config.n_buckets))
        for chunk in np.array_split(order, max(1, len(norm) // self.chunk)):
            probs[chunk] = self._run([norm[i] for i in chunk])
        return probs

    def _batch_temperature(self, curves: Sequence[Curve], mode: Mode) -> float:
        """The batch calibration's temperature (module docstring): back-test each curve's first
        half against its last observed value, keep the T on ``CAL_GRID`` that scores best, shrink."""
        ok = [i for i, c in enumerate(curves)
              if c.steps.size >= CAL_MIN_POINTS and c.steps[0] <= c.steps[-1] / 2]
        n = len(ok)
        if n < CAL_MIN_CURVES:
            return 1.0
        if n > CAL_MAX_CURVES:
            ok = [ok[i] for i in np.unique(np.linspace(0, n - 1, CAL_MAX_CURVES).round().astype(int))]
            n = len(ok)
        heads = []
        for i in ok:
            c = curves[i]
            half = c.steps <= c.steps[-1] / 2
            heads.append(Curve.of(c.steps[half], c.values[half]))
        ends = np.array([curves[i].steps[-1] for i in ok])
        norm = normalise_batch(heads, ends, mode, horizon=self.net.config.horizon,
                               max_points=self.max_context, bounds=self.bounds)
        # the truth in each head's model units; NaN, divergent or worse than the start -> 0,
        # scored as the mass of the whole worst end (as benchmarks/forecast.py scores it)
        y = np.array([float(c.vmap.forward(curves[i].values[-1])) for c, i in zip(norm, ok)])
        h = CAL_BIN / 2
        share = _bucket_cdf(self._borders, np.where(y <= 0.0, h, y + h))
        share -= np.where((y <= 0.0)[:, None], 0.0, _bucket_cdf(self._borders, y - h))
        lw = np.log(self._borders[1:] - self._borders[:-1])
        with np.errstate(divide="ignore"):
            ld = np.log(self._probs(norm)) - lw  # log density per bucket
        atom = worst_end_buckets(self._borders)
        scores = []
        for t in CAL_GRID:
            mass = (_tempered(ld, lw, float(t), atom) * share).sum(axis=1)
            scores.append(np.log(np.maximum(mass, CAL_P_FLOOR)).mean())
        best = float(CAL_GRID[int(np.argmax(scores))])
        return float(np.exp(np.log(best) * n / (n + CAL_PSEUDO_CURVES)))

    def _run(self, norm) -> np.ndarray:
        """Bucket probabilities (len(norm), n_buckets) for normalised curves, one forward pass."""
        torch = self._torch
        n = len(norm)
        L = max(c.x.size for c in norm) + 1
        x = np.zeros((n, L), dtype=np.float32)
        y = np.zeros((n, L), dtype=np.float32)
        ctx = np.zeros((n, L), dtype=bool)
        for i, c in enumerate(norm):
            k = c.x.size
            x[i, :k], y[i, :k], ctx[i, :k] = c.x, c.y, True
            x[i, k:] = c.x_target  # padding tokens (not context) and the query at the end
        # oneDNN off: as fast here (1.09 vs 1.11 ms per curve at batch 256) and its per-shape
        # primitive cache and scratch buffers grew a scheduler's process by ~150 MB more over a
        # 1,500-trial replay (peak RSS 343 vs 496 MB)
        was = torch._C._get_mkldnn_enabled()  # (the public flags() context warns on each use)
        torch._C._set_mkldnn_enabled(False)
        try:
            with torch.inference_mode():
                oi = torch.full((n, 1), L - 1, dtype=torch.long)
                logits = self.net(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(ctx),
                                  out_idx=oi)[:, 0]
                return torch.softmax(logits.float(), dim=-1).double().numpy()
        finally:
            torch._C._set_mkldnn_enabled(was)

