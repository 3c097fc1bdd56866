"""Offline validation of the cluster manifests in ``cluster/manifests/``.

* Ray cluster-launcher YAML: Ray's own ``prepare_config`` (merges the provider's defaults, as
  ``ray up`` does) then ``validate_config`` (Ray's JSON schema plus its cross-field checks). No
  cloud call is made.
* KubeRay ``RayCluster`` / ``RayJob``: a JSON-schema subset of the KubeRay v1 CRDs (required
  fields and types, ``rayStartParams`` values as strings, replica bounds), checks of our own
  conventions (no literal secrets in env, MLflow URI and storage path from the environment,
  an entrypoint that runs ``sweepcast run`` on a mounted config), and finally Ray's own KubeRay
  autoscaler translation ``_derive_autoscaling_config_from_ray_cr``, which ends in
  ``validate_config``: exactly what the in-cluster autoscaler would do with the CR.

Every check raises :class:`ManifestError` listing all problems it found, each naming the field.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

MANIFESTS_DIR = Path(__file__).resolve().parent / "manifests"
SECRET_NAME_RE = re.compile(r"(password|passwd|secret|token|api_?key|credential)", re.IGNORECASE)
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
REQUIRED_ENV = ("MLFLOW_TRACKING_URI", "SWEEPCAST_STORAGE_PATH")


class ManifestError(ValueError):
    """A manifest is invalid; ``problems`` lists every problem found (field: message)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_docs(path: Path) -> list[dict[str, Any]]:
    """All YAML documents of ``path`` (empty ones dropped)."""
    import yaml

    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --------------------------------------------------------------------------- launcher


def check_launcher(config: dict[str, Any], source: str = "launcher config") -> dict[str, Any]:
    """Validate a Ray cluster-launcher config with Ray's own code; returns the prepared config.

    Raises:
        ManifestError: schema or cross-field violation (Ray's message included).
    """
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = copy.deepcopy(config)
    try:
        validate_config_raw_schema(cfg)
        prepared = prepare_config(cfg)
        validate_config(prepared)
    except jsonschema.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ManifestError(source, [f"{where}: {e.message}"]) from None
    except (ValueError, RuntimeError, KeyError) as e:
        raise ManifestError(source, [str(e)]) from None
    problems = []
    head = prepared["head_node_type"]
    heads = " ".join(prepared.get("head_start_ray_commands", []))
    if "--dashboard-host=127.0.0.1" not in heads:
        problems.append("head_start_ray_commands: the dashboard must bind 127.0.0.1 "
                        "(reach it through `ray dashboard`'s SSH tunnel)")
    for name, nt in prepared["available_node_types"].items():
        if name != head and not nt.get("resources", {}).get("GPU"):
            problems.append(f"available_node_types.{name}.resources: a GPU worker needs GPU >= 1")
    if problems:
        raise ManifestError(source, problems)
    return prepared


def validate_config_raw_schema(cfg: dict[str, Any]) -> None:
    """Ray's JSON schema on the config as written (before defaults hide unknown keys)."""
    import json

    import jsonschema
    import ray.autoscaler

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(cfg, json.loads(schema_path.read_text()))


# --------------------------------------------------------------------------- KubeRay

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {
        "name": {"type": "string", "pattern": _DNS1123.pattern},
        "image": {"type": "string", "minLength": 1},
        "env": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "value": {"type": "string"},
                    "valueFrom": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "resources": {
            "type": "object",
            "properties": {"requests": {"type": "object"}, "limits": {"type": "object"}},
            "additionalProperties": False,
        },
    },
}
_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {"containers": {"type": "array", "minItems": 1, "items": _CONTAINER}},
        }
    },
}
RAYCLUSTER_SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["headGroupSpec"],
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {"type": "object"},
        "headGroupSpec": {
            "type": "object",
            "required": ["rayStartParams", "template"],
            "properties": {
                "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "rayStartParams": _STR_MAP,
                "template": _TEMPLATE,
            },
            "additionalProperties": False,
        },
        "workerGroupSpecs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["groupName", "rayStartParams", "template", "minReplicas",
                             "maxReplicas"],
                "properties": {
                    "groupName": {"type": "string", "pattern": _DNS1123.pattern},
                    "replicas": {"type": "integer", "minimum": 0},
                    "minReplicas": {"type": "integer", "minimum": 0},
                    "maxReplicas": {"type": "integer", "minimum": 0},
                    "numOfHosts": {"type": "integer", "minimum": 1},
                    "rayStartParams": _STR_MAP,
                    "template": _TEMPLATE,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 63, "pattern": _DNS1123.pattern},
        "namespace": {"type": "string", "pattern": _DNS1123.pattern},
        "labels": _STR_MAP,
    },
}
RAYCLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": _METADATA,
        "spec": RAYCLUSTER_SPEC_SCHEMA,
    },
    "additionalProperties": False,
}
RAYJOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayJob"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["entrypoint", "rayClusterSpec"],
            "properties": {
                "entrypoint": {"type": "string", "minLength": 1},
                "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode",
                                            "SidecarMode"]},
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": {"type": "integer", "minimum": 0},
                "runtimeEnvYAML": {"type": "string"},
                "rayClusterSpec": RAYCLUSTER_SPEC_SCHEMA,
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def _schema_problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    import jsonschema

    v = jsonschema.Draft202012Validator(schema)
    out = []
    for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        out.append(f"{where}: {e.message}")
    return out


def _groups(spec: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"{prefix}.headGroupSpec", spec["headGroupSpec"])]
    for i, g in enumerate(spec.get("workerGroupSpecs", [])):
        out.append((f"{prefix}.workerGroupSpecs[{i}]", g))
    return out


def _convention_problems(spec: dict[str, Any], prefix: str) -> list[str]:
    import ray

    problems = []
    if spec.get("rayVersion") != ray.__version__:
        problems.append(f"{prefix}.rayVersion: must match the pinned Ray {ray.__version__}, "
                        f"got {spec.get('rayVersion')!r}")
    if spec["headGroupSpec"].get("serviceType", "ClusterIP") != "ClusterIP":
        problems.append(f"{prefix}.headGroupSpec.serviceType: keep the dashboard/GCS inside "
                        "the cluster (ClusterIP), got "
                        f"{spec['headGroupSpec']['serviceType']!r}")
    for where, g in _groups(spec, prefix):
        if "maxReplicas" in g:
            lo, hi, n = g["minReplicas"], g["maxReplicas"], g.get("replicas", g["minReplicas"])
            if not lo <= n <= hi:
                problems.append(f"{where}: need minReplicas <= replicas <= maxReplicas, "
                                f"got {lo} <= {n} <= {hi}")
        for c_i, c in enumerate(g["template"]["spec"]["containers"]):
            cw = f"{where}.template.spec.containers[{c_i}]"
            env = {e["name"]: e for e in c.get("env", [])}
            for name in REQUIRED_ENV:
                if name not in env:
                    problems.append(f"{cw}.env: {name} must be set (from a ConfigMap)")
            for name, e in env.items():
                if ("value" in e) == ("valueFrom" in e):
                    problems.append(f"{cw}.env.{name}: needs exactly one of value / valueFrom")
                if SECRET_NAME_RE.search(name) and "value" in e:
                    problems.append(f"{cw}.env.{name}: a secret must come from a Secret "
                                    "(valueFrom.secretKeyRef), not a literal value")
                if name == "MLFLOW_TRACKING_URI" and "@" in str(e.get("value", "")):
                    problems.append(f"{cw}.env.{name}: the URI must not carry credentials")
            res = c.get("resources", {})
            req, lim = res.get("requests", {}), res.get("limits", {})
            if "nvidia.com/gpu" in req and str(req["nvidia.com/gpu"]) != str(
                lim.get("nvidia.com/gpu")
            ):
                problems.append(f"{cw}.resources: nvidia.com/gpu requests must equal limits")
    return problems


def _ray_translation(spec: dict[str, Any], meta: dict[str, Any], source: str) -> dict[str, Any]:
    import jsonschema
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    cr = {"metadata": {"name": meta["name"], "namespace": meta.get("namespace", "default")},
          "spec": copy.deepcopy(spec)}
    try:
        return _derive_autoscaling_config_from_ray_cr(cr)
    except jsonschema.ValidationError as e:
        raise ManifestError(source, [f"Ray's KubeRay translation: {e.message}"]) from None
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise ManifestError(source, [f"Ray's KubeRay translation: {e!r}"]) from None


def check_kuberay(doc: dict[str, Any], source: str = "manifest") -> dict[str, Any]:
    """Validate a KubeRay ``RayCluster`` or ``RayJob`` document.

    Returns:
        The autoscaling config Ray's KubeRay autoscaler derives from the cluster spec.

    Raises:
        ManifestError: every problem found (schema, conventions, Ray's translation).
    """
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind == "RayCluster":
        problems = _schema_problems(doc, RAYCLUSTER_SCHEMA)
        spec_path, spec = "spec", doc.get("spec")
    elif kind == "RayJob":
        problems = _schema_problems(doc, RAYJOB_SCHEMA)
        spec_path, spec = "spec.rayClusterSpec", (doc.get("spec") or {}).get("rayClusterSpec")
    else:
        raise ManifestError(source, [f"kind: expected RayCluster or RayJob, got {kind!r}"])
    if problems:
        raise ManifestError(source, problems)
    problems = _convention_problems(spec, spec_path)
    if kind == "RayJob":
        problems += _entrypoint_problems(doc["spec"], spec)
    if problems:
        raise ManifestError(source, problems)
    return _ray_translation(spec, doc["metadata"], source)


def _entrypoint_problems(job_spec: dict[str, Any], cluster_spec: dict[str, Any]) -> list[str]:
    import shlex

    try:
        argv = shlex.split(job_spec["entrypoint"])
    except ValueError as e:
        return [f"spec.entrypoint: not a valid shell command ({e})"]
    if argv[:2] != ["sweepcast", "run"] or len(argv) < 3:
        return [f"spec.entrypoint: must be `sweepcast run CONFIG ...`, got {argv!r}"]
    config = argv[2]
    head = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    mounts = [m["mountPath"] for m in head.get("volumeMounts", [])]
    if config.startswith("/") and not any(config.startswith(m.rstrip("/") + "/") for m in mounts):
        return [f"spec.entrypoint: config {config} is not under any head volumeMount {mounts}"]
    return []
