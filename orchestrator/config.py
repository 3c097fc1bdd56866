"""The sweep config: a strict, frozen pydantic model loaded from YAML.

Top-level keys (anything else is an error)::

    name: quickstart                       # sweep name (letters, digits, . _ -)
    trainable: trials.examples.mlp:train   # import path module:function
    metric: val_accuracy                   # what the trial reports and we optimise
    mode: max                              # min | max
    max_epochs: 10                         # passed to every trial as config["max_epochs"]
    num_samples: 8                         # trials (for grid: repeats of the grid)
    max_concurrent: 2                      # trials at once (null: as resources allow)
    resources: {cpu: 1, gpu: 0}            # per trial, fractional allowed, >= 0
    search: {algorithm: optuna-tpe, seed: 0, space: {...}}     # see config_space
    pruning: {scheduler: asha, grace_period: 2}                # see config_pruning
    scoring: {...}                         # optional, see config_scoring
    pipeline: {steps: [...]}               # optional, see config_scoring
    schedule: {...}                        # optional, see config_schedule
    tracking: {experiment: my-exp}         # URI from MLFLOW_TRACKING_URI
    failure: {max_failures: 0}             # retries per trial
    storage_path: ./sweepcast_results      # Tune storage (checkpoints, experiment state)

Entry points:

* ``load_config(path) -> SweepConfig``: parse + validate a file; raises ``ConfigError`` whose
  ``problems`` list every problem with its YAML line (``sweepcast validate`` prints them).
* ``SweepConfig.model_validate(dict)``: validate data built in code (no line numbers).
* ``to_tune_space`` / ``to_optuna_distributions``: translate ``config.search.space``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator.config_errors import ConfigError, Problem, check_trainable, problems_from
from orchestrator.config_pruning import (
    SCHEDULERS,
    AshaPruning,
    CurvePruning,
    FifoPruning,
    HyperbandPruning,
    MedianPruning,
    PruningConfig,
    grace_epochs_of,
)
from orchestrator.config_schedule import ScheduleConfig
from orchestrator.config_scoring import PipelineConfig, ScoringConfig
from orchestrator.config_space import (
    SPACE_TYPES,
    ChoiceEntry,
    GridEntry,
    LogUniformEntry,
    RandIntEntry,
    SpaceEntry,
    UniformEntry,
    grid_size,
    to_optuna_distributions,
    to_tune_space,
)

__all__ = [
    "ALGORITHMS",
    "SCHEDULERS",
    "SPACE_TYPES",
    "AshaPruning",
    "ChoiceEntry",
    "ConfigError",
    "CurvePruning",
    "FailureConfig",
    "FifoPruning",
    "GridEntry",
    "HyperbandPruning",
    "LogUniformEntry",
    "MedianPruning",
    "PipelineConfig",
    "Problem",
    "RandIntEntry",
    "ResourcesConfig",
    "ScheduleConfig",
    "ScoringConfig",
    "SearchConfig",
    "SweepConfig",
    "TrackingConfig",
    "UniformEntry",
    "grid_size",
    "load_config",
    "to_optuna_distributions",
    "to_tune_space",
]

ALGORITHMS = ("random", "grid", "optuna-tpe", "optuna-cmaes")

# Keys the orchestrator puts into every trial's config itself; a search space may not sample them.
RESERVED_PARAMS = ("max_epochs",)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRAINABLE_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ResourcesConfig(_Strict):
    """Resources per trial; fractional values allowed (e.g. ``gpu: 0.5`` packs two trials)."""

    cpu: float = Field(1.0, ge=0)
    gpu: float = Field(0.0, ge=0)

    @field_validator("cpu", "gpu")
    @classmethod
    def _finite(cls, v: float, info: ValidationInfo) -> float:
        if not math.isfinite(v):
            raise ValueError(f"{info.field_name} must be finite, got {v!r}")
        return v


class SearchConfig(_Strict):
    """How configs are chosen.

    ``random`` and ``grid`` use Tune's own variant generator (``grid`` entries are crossed,
    other entries sampled per grid point, the whole grid repeated ``num_samples`` times);
    ``optuna-tpe`` / ``optuna-cmaes`` use Optuna samplers through Tune's ``OptunaSearch``.
    ``grid`` entries are only allowed with ``algorithm: grid``, and ``grid`` needs at least one.
    """

    algorithm: Literal["random", "grid", "optuna-tpe", "optuna-cmaes"] = "random"
    seed: int | None = None
    space: dict[str, SpaceEntry] = Field(min_length=1)

    @field_validator("space")
    @classmethod
    def _space_fits_algorithm(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        algo = info.data.get("algorithm")
        for name in v:
            if name in RESERVED_PARAMS:
                raise ValueError(
                    f"{name!r} is set by the top-level key {name!r}, not sampled; remove it"
                )
        grids = [k for k, e in v.items() if isinstance(e, GridEntry)]
        if algo is not None and algo != "grid" and grids:
            raise ValueError(
                f"grid entries need search.algorithm: grid, got algorithm {algo!r} with grid "
                f"entr{'y' if len(grids) == 1 else 'ies'} {', '.join(grids)} "
                "(use type: choice to sample from a list)"
            )
        if algo == "grid" and not grids:
            raise ValueError(
                "search.algorithm: grid needs at least one entry of type: grid, got none"
            )
        return v


class TrackingConfig(_Strict):
    """MLflow tracking. The tracking URI comes from ``MLFLOW_TRACKING_URI`` (default
    ``sqlite:///mlflow.db`` in the working directory), never from the config file."""

    experiment: str | None = Field(None, min_length=1)


class FailureConfig(_Strict):
    """Trial failure handling: ``max_failures`` retries per trial (from its last checkpoint)."""

    max_failures: int = Field(0, ge=0)


def check_storage_path(v: str) -> None:
    """``storage_path`` is a folder (local or shared: NFS, EFS, a ReadWriteMany PVC) or an
    object-store URI that pyarrow understands (``s3://bucket/prefix``, ``gs://...``, with
    pyarrow's query options such as ``?endpoint_override=host:port&scheme=http``). A URI is
    checked here without the network: a known scheme, a bucket, and no credentials in it (they
    come from the environment, e.g. ``AWS_ACCESS_KEY_ID``; Tune would store a URI's in its state
    files). Whether the bucket answers is checked when the sweep starts, before anything runs
    (:func:`orchestrator.storage.open_remote`); see :mod:`orchestrator.storage` for what is
    kept where."""
    from orchestrator.storage import check_uri, is_uri

    if is_uri(v):
        check_uri(v)


class SweepConfig(_Strict):
    """A whole sweep. Field order matters: validators read earlier fields."""

    name: str
    trainable: str
    metric: str = Field(min_length=1)
    mode: Literal["min", "max"]
    max_epochs: int = Field(ge=1)
    num_samples: int = Field(10, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    resources: ResourcesConfig = ResourcesConfig()
    search: SearchConfig
    pruning: PruningConfig = FifoPruning()
    scoring: ScoringConfig = ScoringConfig()
    pipeline: PipelineConfig | None = None
    schedule: ScheduleConfig | None = None
    tracking: TrackingConfig = TrackingConfig()
    failure: FailureConfig = FailureConfig()
    storage_path: str | None = Field(None, min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                "name must start with a letter or digit and contain only letters, digits, "
                f"'.', '_' and '-', got {v!r}"
            )
        return v

    @field_validator("storage_path")
    @classmethod
    def _storage_path(cls, v: str | None) -> str | None:
        if v is not None:
            check_storage_path(v)
        return v

    @field_validator("trainable")
    @classmethod
    def _trainable(cls, v: str) -> str:
        if not _TRAINABLE_RE.match(v):
            raise ValueError(
                f"trainable must be an import path 'package.module:function', got {v!r}"
            )
        return v

    @field_validator("pruning")
    @classmethod
    def _pruning_fits_epochs(cls, v: Any, info: ValidationInfo) -> Any:
        max_epochs = info.data.get("max_epochs")
        grace = grace_epochs_of(v)
        if max_epochs is not None and grace is not None and grace >= max_epochs:
            raise ValueError(
                f"scheduler {v.scheduler!r}: grace period {grace} must be below max_epochs "
                f"({max_epochs}), or no trial could ever be stopped"
            )
        return v

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment: ``tracking.experiment`` or the sweep name."""
        return self.tracking.experiment or self.name

    def trial_constants(self) -> dict[str, Any]:
        """Keys the orchestrator puts into every trial's config besides the sampled ones
        (the training-function contract of ``trials.api``): ``{"max_epochs": ...}``."""
        return {"max_epochs": self.max_epochs}

    def tune_param_space(self) -> dict[str, Any]:
        """``Tuner(param_space=...)``: the search space as Ray Tune domains plus
        ``trial_constants()``. Imports Ray."""
        return {**to_tune_space(self.search.space), **self.trial_constants()}

    @property
    def trainable_module(self) -> str:
        return self.trainable.split(":", 1)[0]

    @property
    def trainable_function(self) -> str:
        return self.trainable.split(":", 1)[1]


def load_config(path: str | Path, *, check_import: bool = True) -> SweepConfig:
    """Load and validate a sweep config file.

    Args:
        path: the YAML file.
        check_import: also import ``trainable`` and check it is callable (and, when the
            trainable declares ``hyperparameters``, that the search space only names those).
            Importing runs the trainable's module code.

    Returns:
        The validated, frozen ``SweepConfig``.

    Raises:
        ConfigError: with ``.problems`` (each a ``Problem`` with path, message, value, line)
            for a missing, empty, unparsable or invalid file. Nothing else for bad input.
    """
    from orchestrator.config_yaml import load_yaml_with_lines

    path = Path(path)
    data, lines = load_yaml_with_lines(path)  # raises ConfigError
    from pydantic import ValidationError

    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(str(path), problems_from(e, data, lines, SweepConfig)) from None
    if check_import:
        probs = check_trainable(cfg, lines)
        if probs:
            raise ConfigError(str(path), probs)
    return cfg
