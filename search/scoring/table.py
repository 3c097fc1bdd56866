"""The sweep's ranking table, as rows (for JSON / the MLflow artifact) and as Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from search.scoring.score import TrialScore

COLUMNS: tuple[str, ...] = (
    "rank", "trial", "status", "eligible", "score", "reward", "reward_cont", "p_success",
    "p_target", "p_survive", "cost_hours", "unit", "penalty", "observability", "hygiene",
    "cohesion", "coupling", "gates")


def ranking_rows(scores: Sequence[TrialScore]) -> list[dict[str, Any]]:
    """One JSON-able dict per trial, in ranking order, with the columns of :data:`COLUMNS`.

    ``cohesion``/``coupling`` are None when n/a; ``gates`` is a comma-separated string.
    """
    ordered = sorted(scores, key=lambda s: (s.rank if s.rank is not None else math.inf,
                                            s.trial_id))
    return [{
        "rank": s.rank, "trial": s.trial_id, "status": s.status, "eligible": s.eligible,
        "score": s.score, "reward": s.reward_total, "reward_cont": s.reward_continuation,
        "p_success": s.p_success, "p_target": s.p_target, "p_survive": s.p_survive,
        "cost_hours": s.cost_hours, "unit": s.unit, "penalty": s.penalty,
        "observability": s.observability.value, "hygiene": s.hygiene.value,
        "cohesion": s.cohesion, "coupling": s.coupling, "gates": ",".join(s.gates),
    } for s in ordered]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|") if v != "" else "-"


def ranking_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """Render rows (from :func:`ranking_rows`, or read back from MLflow) as a Markdown table."""
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"
