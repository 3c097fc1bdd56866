"""The continuation-reward stop option for the curve scheduler.

"Does the expected value of continuing still pay for the remaining compute?"  For each running
trial::

    reward_continuation = P_survive(H) * P_target * V - c * H        (H: device-hours ahead)

Spent hours are sunk, so they are not in it. Stopping now yields nothing more (a stopped trial
cannot reach the target), so continuing pays when ``reward_continuation > margin``; the option
stops a trial when it does not (reason ``reward_low``). With ``margin = 0`` this is the
break-even rule; a positive margin (cost units) stops earlier.

How a scheduler uses it (``search/policy.py`` wires it as an option next to the ``p_beat``
rule): after its batched forecast ``fc`` of the final values of the trials that reported, call
``continuation_decisions(fc, target=incumbent, mode=..., remaining_hours=H, value=V,
history=..., ...)`` and stop where ``keep`` is False. It is vectorised over the batch, costs
microseconds per trial, and touches no state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.forecast.base import Forecast
from search.scoring.reward import p_survive, p_target_from_forecast
from search.scoring.types import FailureHistory, Mode

REASON_PAYS = "reward_pays"
REASON_LOW = "reward_low"


@dataclass(frozen=True)
class ContinuationDecisions:
    """Per-trial arrays (shape (n,)) behind the stop option.

    Attributes:
        keep: True where continuing pays (``reward > margin``).
        reward: the continuation reward in cost units.
        p_target, p_survive: its probabilities; ``p_success = p_target * p_survive``.
        reasons: ``reward_pays`` or ``reward_low`` per trial.
    """

    keep: np.ndarray
    reward: np.ndarray
    p_target: np.ndarray
    p_survive: np.ndarray

    @property
    def p_success(self) -> np.ndarray:
        return self.p_target * self.p_survive

    @property
    def reasons(self) -> list[str]:
        return [REASON_PAYS if k else REASON_LOW for k in self.keep]


def continuation_reward(p_success: float | np.ndarray, value: float, cost_per_hour: float,
                        remaining_hours: float | np.ndarray) -> np.ndarray:
    """``p_success * V - c * H``: what continuing is worth net of the compute still ahead."""
    return (np.asarray(p_success, dtype=np.float64) * value
            - cost_per_hour * np.asarray(remaining_hours, dtype=np.float64))


def continuation_decisions(forecast: Forecast, *, target: float | None, mode: Mode,
                           remaining_hours: float | np.ndarray, value: float,
                           cost_per_hour: float = 1.0,
                           history: FailureHistory | None = None,
                           retries: int | np.ndarray = 0, prior_failures: float = 1.0,
                           prior_hours: float = 100.0, margin: float = 0.0,
                           ) -> ContinuationDecisions:
    """Decide, for a batch of running trials, whether continuing each still pays.

    Args:
        forecast: predictive distribution of each trial's final value (batch of n).
        target: value to reach (the sweep's ``scoring.target`` or the incumbent); None: no
            incumbent yet, every trial may still be the best (P_target = 1).
        mode: metric direction.
        remaining_hours: device-hours each trial still needs to reach its last epoch (n,).
        value: V in cost units (see ``search.scoring.reward.default_value``).
        cost_per_hour: c.
        history, retries, prior_failures, prior_hours: as in ``p_survive``.
        margin: continue only when the continuation reward exceeds this (cost units).

    Returns:
        :class:`ContinuationDecisions` of shape (n,).
    """
    n = len(forecast)
    history = history if history is not None else FailureHistory()
    if value < 0 or not np.isfinite(value):
        raise ValueError(f"value must be finite and >= 0, got {value!r}")
    if cost_per_hour < 0 or not np.isfinite(cost_per_hour):
        raise ValueError(f"cost_per_hour must be finite and >= 0, got {cost_per_hour!r}")
    if not np.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin!r}")
    h = np.broadcast_to(np.asarray(remaining_hours, dtype=np.float64), (n,))
    pt = p_target_from_forecast(forecast, target, mode)
    ps = np.broadcast_to(p_survive(h, history, prior_failures=prior_failures,
                                   prior_hours=prior_hours, retries=retries), (n,))
    r = continuation_reward(pt * ps, value, cost_per_hour, h)
    return ContinuationDecisions(keep=r > margin, reward=r, p_target=pt, p_survive=np.array(ps))
