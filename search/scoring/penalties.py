"""Normative penalties, each in [0, 1], 0 ideal (SCORING.md, "Penalties").

* Observability: mean of missing reports, declared metrics never reported, staleness.
* Information hygiene: ``0.4*min(1, 10*non-finite share) + 0.4*unlogged key share
  + 0.2*search-space mismatch share``; a secret-looking param makes it 1 (and gates the trial).
* Cohesion / coupling: only with a declared pipeline; otherwise None ("n/a").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.hygiene import is_secret_key, looks_like_secret_value
from search.scoring.types import ParamSpec, Pipeline, ScoringParams, TrialRecord


@dataclass(frozen=True)
class Observability:
    """Observability penalty and its three parts (each in [0, 1])."""

    missing_reports: float
    missing_metrics: float
    staleness: float

    @property
    def value(self) -> float:
        return (self.missing_reports + self.missing_metrics + self.staleness) / 3.0


@dataclass(frozen=True)
class Hygiene:
    """Information-hygiene penalty, its parts, and the secret-looking keys (names only)."""

    non_finite: float
    unlogged_keys: float
    space_mismatch: float
    secret_keys: tuple[str, ...]
    value: float

    @property
    def secret(self) -> bool:
        return bool(self.secret_keys)


def observability(record: TrialRecord, params: ScoringParams,
                  fallback_sec_per_step: float | None = None) -> Observability:
    """Observability parts of one trial.

    (a) missing reports: with a report promised every ``params.report_every`` steps, a trial
    that reached step R owes ``floor(R / report_every)`` reports; the share of them missing.
    R is the last reported step for an ended trial; for a running one it is extrapolated from
    the time since its last report at its own pace (else the sweep's pooled pace), capped at
    ``max_step``, so a trial that went quiet accrues missing reports.
    (b) the share of declared metrics (default: the sweep metric) never reported.
    (c) staleness: ``clip((since_last / interval - grace) / span, 0, 1)`` with the expected
    interval ``report_every * seconds_per_step``; 0 when the pace is unknown.
    """
    from search.scoring.reward import seconds_per_step

    pace = seconds_per_step(record) or fallback_sec_per_step
    since = record.since_last_report_s
    if since is None:
        since = record.wall_time_s if record.steps.size == 0 else 0.0
    k = params.report_every
    reached = record.last_step
    if not record.ended and pace:
        reached = min(record.max_step, reached + since / pace)
    expected = math.floor(reached / k + 1e-9)
    got = int(np.sum(record.steps <= reached + 1e-9))
    missing_reports = max(expected - got, 0) / expected if expected > 0 else 0.0

    # Without declared metrics only the sweep metric (the curve) is expected. With
    # reported_metrics=None only the curve is known: declared metrics count as reported once
    # it has a point.
    has_curve = bool(record.steps.size)
    if not record.declared_metrics:
        missing_metrics = 0.0 if has_curve else 1.0
    else:
        declared = set(record.declared_metrics)
        if record.reported_metrics is None:
            reported = declared if has_curve else set()
        else:
            reported = set(record.reported_metrics)
        missing_metrics = len(declared - reported) / len(declared)

    staleness = 0.0
    if pace:
        ratio = since / (k * pace)
        staleness = min(max((ratio - params.staleness_grace) / params.staleness_span, 0.0), 1.0)
    return Observability(float(missing_reports), float(missing_metrics), staleness)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (``{"opt": {"lr": 1}} -> {"opt.lr": 1}``)."""
    out: dict[str, Any] = {}
    for key, val in params.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping) and val:
            out.update(flatten(val, name + "."))
        else:
            out[name] = val
    return out


def secret_keys(params: Mapping[str, Any]) -> tuple[str, ...]:
    """Flattened keys whose name looks secret (holding a value) or whose value looks like a
    credential; sorted, names only (never the values)."""
    flat = flatten(params)
    return tuple(sorted(k for k, v in flat.items()
                        if (is_secret_key(k) and _carries_value(v)) or looks_like_secret_value(v)))


def _carries_value(v: Any) -> bool:
    # A switch such as ``use_auth: false`` or an empty ``token: ""`` carries no secret.
    return v is not None and not isinstance(v, bool) and v != ""


def disagrees(value: Any, spec: ParamSpec) -> bool:
    """True when ``value``'s type or range disagrees with the search-space dimension."""
    if spec.kind == "categorical":
        return not any(value == c and type(value) is type(c) for c in spec.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return True
    if spec.kind == "int" and not isinstance(value, (int, np.integer)):
        return True
    v = float(value)
    if not math.isfinite(v):
        return True
    if spec.low is not None and v < spec.low:
        return True
    return spec.high is not None and v > spec.high


def hygiene(record: TrialRecord, params: ScoringParams,
            space: Sequence[ParamSpec] = ()) -> Hygiene:
    """Information-hygiene penalty of one trial (see module docstring)."""
    if record.metric_values is not None:
        total, bad = record.metric_values, record.non_finite_values or 0
    else:
        total = int(record.values.size)
        bad = int(np.sum(~np.isfinite(record.values)))
    non_finite = bad / total if total else 0.0

    flat = flatten(record.params)
    if record.logged_keys is None or not flat:
        unlogged = 0.0
    else:
        unlogged = sum(1 for k in flat if k not in record.logged_keys) / len(flat)

    checked = [(flat[s.name], s) for s in space if s.name in flat]
    mismatch = sum(1 for v, s in checked if disagrees(v, s)) / len(checked) if checked else 0.0

    secrets = secret_keys(record.params)
    if secrets:
        value = 1.0
    else:
        value = (params.hygiene_non_finite * min(1.0, params.hygiene_non_finite_scale * non_finite)
                 + params.hygiene_unlogged * unlogged + params.hygiene_mismatch * mismatch)
    return Hygiene(float(non_finite), float(unlogged), float(mismatch), secrets,
                   float(min(max(value, 0.0), 1.0)))


def cohesion(pipeline: Pipeline | None) -> float | None:
    """Mean over steps of ``1 - 1/k`` (k distinct responsibilities); None without a pipeline."""
    if pipeline is None:
        return None
    return float(np.mean([1.0 - 1.0 / len(set(s.responsibilities)) for s in pipeline.steps]))


def coupling(pipeline: Pipeline | None,
             observed_reads: Mapping[str, Iterable[str]]) -> float | None:
    """Undeclared dependencies seen at run time over all dependencies; None without a pipeline.

    All dependencies are the declared inputs of every step plus every read observed; a read of
    an input the step did not declare (or by a step that is not declared) is undeclared.
    """
    if pipeline is None:
        return None
    declared, seen = _declared(pipeline), _seen(observed_reads)
    deps = declared | seen
    return len(seen - declared) / len(deps) if deps else 0.0


def _declared(pipeline: Pipeline) -> set[tuple[str, str]]:
    return {(s.name, i) for s in pipeline.steps for i in s.inputs}


def _seen(observed_reads: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    return {(step, i) for step, reads in observed_reads.items() for i in reads}


def undeclared_reads(pipeline: Pipeline, observed_reads: Mapping[str, Iterable[str]]
                     ) -> list[tuple[str, str]]:
    """The ``(step, artifact)`` reads seen at run time that the pipeline does not declare."""
    return sorted(_seen(observed_reads) - _declared(pipeline))


def combine(params: ScoringParams, ob: float, ih: float, ch: float | None,
            cp: float | None) -> float:
    """The penalty: ``s*(w_ch*Ch + w_cp*Cp) + (1-s)*(w_ob*Ob + w_ih*Ih)`` with ``s = 0.5``;
    without a pipeline (Ch, Cp n/a) the structural share moves to observability + hygiene."""
    runtime = params.w_observability * ob + params.w_hygiene * ih
    if ch is None or cp is None:
        return float(runtime)
    structure = params.w_cohesion * ch + params.w_coupling * cp
    s = params.structure_share
    return float(s * structure + (1.0 - s) * runtime)
