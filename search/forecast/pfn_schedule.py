"""`SchedulePFNModel`: the PFN forecaster that is told each trial's learning-rate schedule (issue 8).

Same seam, same normaliser and same output as :class:`~search.forecast.pfn_model.PFNModel`; the
network (``n_covariates = 3``, trained on the ``"schedule"`` prior, weights
``weights/pfn_schedule.pt``) also reads, on every token, the features of the trial's schedule at
that token's step (:func:`search.schedules.schedule_features`: relative rate, forward area,
annealing area), so its forecast bends where the schedule anneals.

A curve's schedule is its learning rate at steps ``1..T``, ``T >= target_step``: either the
``lr`` of a :class:`~search.schedule_stopper.ScheduledCurve` or ``schedules[i]`` passed to
:meth:`SchedulePFNModel.forecast`. Features are computed on the schedule cut at the target step
(the step the forecast is asked about maps to the end of the model's horizon, as in the
normaliser) and interpolated at the observed steps. A curve without a schedule is forecast as if
its rate were constant (the prior's constant-schedule curves include every shape of the
schedule-free prior); use ``get_model("pfn")`` for sweeps that declare no schedules at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search.forecast.base import Curve, CurveModel, Forecast, Mode, check_batch
from search.forecast.normalise import normalise_batch, subsample_indices
from search.forecast.pfn_model import MAX_CONTEXT, PFNForecast, shipped_weights
from search.schedules import DEFAULT_LAG, schedule_features

SCHEDULE_WEIGHTS = "pfn_schedule"


def curve_features(lr: np.ndarray | None, steps: np.ndarray, target: float,
                   lag: float = DEFAULT_LAG) -> np.ndarray:
    """Schedule features (len(steps) + 1, 3) at the observed ``steps`` and at ``target``.

    ``lr`` is the rate at steps ``1..T`` (T >= ceil(target)); None means a constant rate.
    """
    steps = np.asarray(steps, dtype=np.float64)
    t_end = int(np.ceil(target))
    if lr is None:
        lr = np.ones(t_end)
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim != 1 or lr.size < t_end:
        raise ValueError(f"the schedule gives {lr.size} steps but the forecast is for step "
                         f"{target:g}: give the rate of every step up to the target")
    feats = schedule_features(lr[:t_end], lag)
    grid = np.arange(1, t_end + 1, dtype=np.float64)
    at = np.clip(np.append(steps, target), 1.0, float(t_end))
    return np.stack([np.interp(at, grid, feats[:, j]) for j in range(feats.shape[1])], axis=1)


class SchedulePFNModel(CurveModel):
    """The schedule-aware LC-PFN (`CurveModel`).

    Args:
        weights: a ``.pt`` state_dict with its ``.json`` next to it; default: the shipped
            ``pfn_schedule`` weights.
        threads: torch threads for inference.
        bounds: optional sweep-level ``(worst, best)`` for the normaliser (as ``PFNModel``).
        max_context: context points per curve (longer prefixes are subsampled).
    """

    name = "pfn-schedule"

    def __init__(self, weights: str | Path | None = None, *, threads: int = 1,
                 bounds: tuple[float, float] | None = None, max_context: int = MAX_CONTEXT):
        import torch

        from search.forecast.pfn import load_pfn

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        if weights is None:
            pt, js = shipped_weights(SCHEDULE_WEIGHTS)
        else:
            pt, js = Path(weights), Path(weights).with_suffix(".json")
        self.net = load_pfn(pt, js)
        k = self.net.config.n_covariates
        if k != 3:
            raise ValueError(f"{pt} takes {k} covariates per step; the schedule-aware model "
                             f"needs 3 (the features of search.schedules.schedule_features)")
        self.threads, self.bounds, self.max_context = threads, bounds, max_context
        self._torch = torch
        self._borders = self.net.bar.borders.numpy().astype(np.float64)

    def forecast(self, curves: Sequence[Curve], target_step, *, mode: Mode = "max",
                 schedules: Sequence[np.ndarray | None] | None = None) -> Forecast:
        """Forecast every curve at ``target_step`` given its schedule (see the module docstring).

        Args:
            schedules: optional per-curve learning rates (overriding a ScheduledCurve's ``lr``).
        """
        torch = self._torch
        targets = check_batch(curves, target_step)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if schedules is not None and len(schedules) != len(curves):
            raise ValueError(f"schedules must give one entry per curve ({len(curves)}), "
                             f"got {len(schedules)}")
        h = self.net.config.horizon
        norm = normalise_batch(curves, targets, mode, horizon=h, max_points=self.max_context,
                               bounds=self.bounds)
        n = len(norm)
        L = max(c.x.size for c in norm) + 1
        x = np.zeros((n, L), dtype=np.float32)
        y = np.zeros((n, L), dtype=np.float32)
        ctx = np.zeros((n, L), dtype=bool)
        cov = np.zeros((n, L, 3), dtype=np.float32)
        for i, (c, cn) in enumerate(zip(curves, norm)):
            lr = schedules[i] if schedules is not None else getattr(c, "lr", None)
            steps = np.asarray(c.steps, dtype=np.float64)
            steps = steps[subsample_indices(steps.size, self.max_context)]
            try:
                f = curve_features(lr, steps, float(targets[i]))
            except ValueError as e:
                raise ValueError(f"curves[{i}]: {e}") from None
            k = cn.x.size
            x[i, :k], y[i, :k], ctx[i, :k] = cn.x, cn.y, True
            x[i, k:] = cn.x_target
            cov[i, :k] = f[:k]
            cov[i, k:] = f[k]
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                oi = torch.full((n, 1), L - 1, dtype=torch.long)
                logits = self.net(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(ctx),
                                  torch.from_numpy(cov), out_idx=oi)[:, 0]
                probs = torch.softmax(logits.float(), dim=-1).double().numpy()
        finally:
            torch.set_num_threads(prev)
        return PFNForecast(probs, self._borders, [c.vmap for c in norm])
