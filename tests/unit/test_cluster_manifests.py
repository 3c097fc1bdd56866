"""Offline validation of cluster/manifests: Ray's own launcher and KubeRay checks, plus ours.

Each positive check is paired with a mutation that must be rejected, so the validators are
shown to bite, not just to pass.
"""

from __future__ import annotations

import copy
import shlex

import pytest
import yaml

from cluster.validate import (
    MANIFESTS_DIR,
    ManifestError,
    check_kuberay,
    check_launcher,
    load_docs,
)

LAUNCHER = MANIFESTS_DIR / "ray-cluster-launcher-aws-gpu.yaml"
RAYCLUSTER = MANIFESTS_DIR / "kuberay-raycluster.yaml"
RAYJOB = MANIFESTS_DIR / "kuberay-rayjob.yaml"
KCONFIG = MANIFESTS_DIR / "kuberay-config.yaml"


@pytest.fixture()
def launcher() -> dict:
    return load_docs(LAUNCHER)[0]


@pytest.fixture()
def raycluster() -> dict:
    return load_docs(RAYCLUSTER)[0]


@pytest.fixture()
def rayjob() -> dict:
    return load_docs(RAYJOB)[0]


# ----------------------------------------------------------------- cluster launcher


def test_launcher_yaml_passes_rays_own_validation(launcher: dict) -> None:
    prepared = check_launcher(launcher, LAUNCHER.name)
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] in types
    gpu = types["ray.worker.gpu"]
    assert gpu["resources"]["GPU"] == 1
    assert gpu["min_workers"] <= gpu["max_workers"] <= prepared["max_workers"]
    assert types[prepared["head_node_type"]]["resources"]["CPU"] == 0
    # sweepcast is installed on every node, and the env file is sourced before `ray start`.
    setup = " ".join(prepared["setup_commands"])
    assert "pip install" in setup and "sweepcast" in setup
    assert "sweepcast.env" in setup


def test_launcher_unknown_key_is_rejected_by_rays_schema(launcher: dict) -> None:
    bad = copy.deepcopy(launcher)
    bad["available_node_types"]["ray.worker.gpu"]["gpus"] = 1
    with pytest.raises(ManifestError, match="gpus"):
        check_launcher(bad)


def test_launcher_head_type_must_exist(launcher: dict) -> None:
    bad = copy.deepcopy(launcher)
    bad["head_node_type"] = "nope"
    with pytest.raises(ManifestError, match="head_node_type"):
        check_launcher(bad)


def test_launcher_min_workers_above_global_max_is_rejected(launcher: dict) -> None:
    bad = copy.deepcopy(launcher)
    bad["available_node_types"]["ray.worker.gpu"]["min_workers"] = 10
    with pytest.raises(ManifestError, match="max_workers"):
        check_launcher(bad)


def test_launcher_dashboard_must_stay_on_loopback(launcher: dict) -> None:
    bad = copy.deepcopy(launcher)
    bad["head_start_ray_commands"] = [
        c.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
        for c in bad["head_start_ray_commands"]
    ]
    with pytest.raises(ManifestError, match="127.0.0.1"):
        check_launcher(bad)


def test_launcher_has_no_literal_credentials() -> None:
    text = LAUNCHER.read_text()
    assert "MLFLOW_TRACKING_PASSWORD=" not in text
    assert "@" not in "".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


# ----------------------------------------------------------------- KubeRay


def test_raycluster_passes_schema_conventions_and_rays_kuberay_translation(
    raycluster: dict,
) -> None:
    auto = check_kuberay(raycluster, RAYCLUSTER.name)
    types = auto["available_node_types"]
    assert types["headgroup"]["resources"]["CPU"] == 0  # no trials on the head
    assert types["gpu"]["resources"]["GPU"] == 1  # derived by Ray from nvidia.com/gpu
    assert types["gpu"]["max_workers"] == 4


def test_rayjob_runs_sweepcast_on_the_same_cluster_spec(rayjob: dict, raycluster: dict) -> None:
    check_kuberay(rayjob, RAYJOB.name)
    assert rayjob["spec"]["rayClusterSpec"] == raycluster["spec"]
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv == ["sweepcast", "run", "/etc/sweepcast/sweep.yaml"]


def test_storage_path_is_on_a_shared_volume_mounted_by_every_pod(raycluster: dict) -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in load_docs(KCONFIG)}
    storage = docs[("ConfigMap", "sweepcast-env")]["data"]["SWEEPCAST_STORAGE_PATH"]
    pvc = docs[("PersistentVolumeClaim", "sweepcast-results")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # trials retry on other nodes
    for group in [raycluster["spec"]["headGroupSpec"], *raycluster["spec"]["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        claims = {v["name"] for v in spec["volumes"]
                  if v.get("persistentVolumeClaim", {}).get("claimName") == "sweepcast-results"}
        mounts = [m["mountPath"] for m in spec["containers"][0]["volumeMounts"]
                  if m["name"] in claims]
        assert any(storage.startswith(m.rstrip("/") + "/") for m in mounts), (storage, mounts)


def test_kuberay_env_comes_from_configmap_and_secret(raycluster: dict) -> None:
    for group in [raycluster["spec"]["headGroupSpec"], *raycluster["spec"]["workerGroupSpecs"]]:
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        for name in ("MLFLOW_TRACKING_URI", "SWEEPCAST_STORAGE_PATH"):
            assert "configMapKeyRef" in env[name]["valueFrom"]
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert "secretKeyRef" in env[name]["valueFrom"]


def test_kuberay_literal_secret_is_rejected(raycluster: dict) -> None:
    bad = copy.deepcopy(raycluster)
    env = bad["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    for e in env:
        if e["name"] == "MLFLOW_TRACKING_PASSWORD":
            e.pop("valueFrom")
            e["value"] = "hunter2"
    with pytest.raises(ManifestError, match="MLFLOW_TRACKING_PASSWORD"):
        check_kuberay(bad)


def test_kuberay_missing_storage_env_is_rejected(raycluster: dict) -> None:
    bad = copy.deepcopy(raycluster)
    c = bad["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] != "SWEEPCAST_STORAGE_PATH"]
    with pytest.raises(ManifestError, match=r"workerGroupSpecs\[0\].*SWEEPCAST_STORAGE_PATH"):
        check_kuberay(bad)


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
         "rayStartParams.num-cpus"),
        (lambda d: d["spec"]["workerGroupSpecs"][0].pop("maxReplicas"), "maxReplicas"),
        (lambda d: d["spec"]["workerGroupSpecs"][0].update({"replicas": 9}), "replicas"),
        (lambda d: d.update({"apiVersion": "ray.io/v1alpha1"}), "apiVersion"),
        (lambda d: d["metadata"].update({"name": "Sweep_Cast"}), "metadata.name"),
        (lambda d: d["spec"].update({"rayVersion": "2.9.0"}), "rayVersion"),
        (lambda d: d["spec"]["headGroupSpec"].update({"serviceType": "LoadBalancer"}),
         "serviceType"),
        (lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].pop("image"),
         "image"),
        (lambda d: d["spec"].update({"headGroupSpecs": {}}), "headGroupSpecs"),
    ],
)
def test_kuberay_structural_mistakes_are_named(raycluster: dict, mutate, needle: str) -> None:
    bad = copy.deepcopy(raycluster)
    mutate(bad)
    with pytest.raises(ManifestError) as ei:
        check_kuberay(bad)
    assert any(needle in p for p in ei.value.problems), ei.value.problems


def test_rayjob_entrypoint_must_run_sweepcast_on_a_mounted_config(rayjob: dict) -> None:
    bad = copy.deepcopy(rayjob)
    bad["spec"]["entrypoint"] = "python train.py"
    with pytest.raises(ManifestError, match="sweepcast run"):
        check_kuberay(bad)
    bad["spec"]["entrypoint"] = "sweepcast run /nowhere/sweep.yaml"
    with pytest.raises(ManifestError, match="volumeMount"):
        check_kuberay(bad)


def test_kuberay_config_holds_a_valid_sweep_and_no_secret_values() -> None:
    from orchestrator.config import SweepConfig

    docs = {(d["kind"], d["metadata"]["name"]): d for d in load_docs(KCONFIG)}
    secret = docs[("Secret", "sweepcast-mlflow")]
    assert all(v == "" for v in secret["stringData"].values())
    env = docs[("ConfigMap", "sweepcast-env")]["data"]
    assert "@" not in env["MLFLOW_TRACKING_URI"]
    sweep = yaml.safe_load(docs[("ConfigMap", "sweepcast-sweep")]["data"]["sweep.yaml"])
    cfg = SweepConfig.model_validate(sweep)
    assert cfg.resources.gpu == 1


def test_cluster_check_command(tmp_path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    ok = CliRunner().invoke(main, ["cluster", "check", str(LAUNCHER), str(RAYCLUSTER),
                                   str(RAYJOB), str(KCONFIG)])
    assert ok.exit_code == 0, ok.output
    assert "valid Ray cluster-launcher config" in ok.output and "valid RayJob" in ok.output
    doc = load_docs(RAYCLUSTER)[0]
    doc["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "four"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(main, ["cluster", "check", str(bad)])
    assert res.exit_code == 2
    assert "workerGroupSpecs.0.maxReplicas" in res.output
