"""Kubernetes manifests: `kubectl kustomize` output, validated offline with kubernetes-validate."""

import re
import subprocess
import sys
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.buildsim import PORTS, REPO, SERVICES

RENDER = REPO / "deploy" / "k8s" / "render.py"
OVERLAYS = ("base", "dev", "production")
#: The oldest Kubernetes still commonly run, and the newest schema kubernetes-validate ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
INFERENCE = ("speech", "text", "image", "fusion", "asr")
#: Services with a micro-batcher (shared/batching.py): MAX_CONCURRENT_BATCHES model calls at once.
BATCHING_SERVICES = ("speech", "text", "image", "fusion")

pytestmark = pytest.mark.skipif(
    subprocess.run(["kubectl", "version", "--client"], capture_output=True, check=False).returncode != 0,
    reason="kubectl is not installed",
)


@cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay as `python deploy/k8s/render.py <overlay>` prints it."""
    result = subprocess.run([sys.executable, str(RENDER), overlay], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in rendered(overlay) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} in {overlay}: {len(matches)} found"
    return matches[0]


def named(overlay: str, kind: str, prefix: str) -> dict[str, Any]:
    """A generated object (ConfigMap/Secret) whose name carries kustomize's content hash."""
    matches = [
        d for d in rendered(overlay) if d["kind"] == kind and re.fullmatch(rf"{prefix}(-\w+)?", d["metadata"]["name"])
    ]
    assert len(matches) == 1, f"{kind}/{prefix}* in {overlay}"
    return matches[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(overlay: str, version: str) -> None:
    documents = rendered(overlay)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_validation_catches_a_broken_manifest() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(find("base", "Deployment", "text")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"bad": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_render_refuses_an_unknown_overlay() -> None:
    result = subprocess.run([sys.executable, str(RENDER), "staging"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "choose one of: base, dev, production" in result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_probes_resources_and_a_hardened_pod(overlay: str, name: str) -> None:
    deployment = find(overlay, "Deployment", name)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == PORTS[name]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model loading needs time"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    # One model call uses INFERENCE_THREADS threads; MAX_CONCURRENT_BATCHES calls may run at once.
    threads = int(env["INFERENCE_THREADS"]) * int(env.get("MAX_CONCURRENT_BATCHES") or 1)
    assert threads <= max(1.0, cores(resources["limits"]["cpu"])), "more threads than CPUs only thrash"
    if name in BATCHING_SERVICES:
        assert "MAX_CONCURRENT_BATCHES" in env, "set explicitly with the threads it multiplies"
    assert container["image"].split("/")[-1].split(":")[0] == name

    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    for box in [*spec.get("initContainers", []), container]:
        security = box["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert any(m["mountPath"] == "/tmp" for m in box["volumeMounts"]), "a writable /tmp on a read-only root"


def cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_a_service_an_autoscaler_and_a_disruption_budget(overlay: str, name: str) -> None:
    deployment = find(overlay, "Deployment", name)
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()

    service = find(overlay, "Service", name)
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "http", "port": PORTS[name], "targetPort": "http", "protocol": "TCP"}]

    hpa = find(overlay, "HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in pod_spec(deployment)["containers"][0]["resources"]["requests"], "utilisation needs a request"

    pdb = find(overlay, "PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1


def test_production_keeps_two_replicas_and_pulls_tagged_images() -> None:
    for name in SERVICES:
        assert find("production", "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2
        image = pod_spec(find("production", "Deployment", name))["containers"][0]["image"]
        assert re.fullmatch(rf"[\w.-]+(/[\w.-]+)+/{name}:[\w.-]+", image) and not image.endswith(":latest"), image
    init = pod_spec(find("production", "Deployment", "gateway"))["initContainers"][0]
    assert init["image"] == pod_spec(find("production", "Deployment", "gateway"))["containers"][0]["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_config_points_at_the_services_and_redis(overlay: str) -> None:
    config = named(overlay, "ConfigMap", "gateway-config")["data"]
    for name in INFERENCE:
        url = config[f"{name.upper()}_URL"]
        assert url == f"http://{name}:{PORTS[name]}"
        find(overlay, "Service", name)
    match = re.fullmatch(r"redis://(\w+):(\d+)/\d+", config["RATE_LIMIT_STORAGE_URI"])
    assert match
    redis = find(overlay, "Service", match[1])
    assert redis["spec"]["ports"][0]["port"] == int(match[2])
    redis_pod = pod_spec(find(overlay, "Deployment", "redis"))
    assert redis_pod["containers"][0]["readinessProbe"] and redis_pod["containers"][0]["resources"]["limits"]
    common = named(overlay, "ConfigMap", "emotion-common")["data"]
    assert common["ENVIRONMENT"] == "production"


def env_references(overlay: str) -> tuple[set[str], dict[str, set[str]]]:
    """ConfigMaps and Secrets (with the keys used) the workloads of an overlay refer to."""
    config_maps: set[str] = set()
    secrets: dict[str, set[str]] = {}
    for document in rendered(overlay):
        if document["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        spec = pod_spec(document)
        for box in [*spec.get("initContainers", []), *spec["containers"]]:
            for source in box.get("envFrom", []):
                if "configMapRef" in source:
                    config_maps.add(source["configMapRef"]["name"])
                else:
                    secrets.setdefault(source["secretRef"]["name"], set())
            for variable in box.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secrets.setdefault(ref["name"], set()).add(ref["key"])
    return config_maps, secrets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_config_map_exists(overlay: str) -> None:
    config_maps, _ = env_references(overlay)
    existing = {d["metadata"]["name"] for d in rendered(overlay) if d["kind"] == "ConfigMap"}
    assert config_maps and config_maps <= existing


def test_dev_generates_the_secret_with_every_key_the_pods_use() -> None:
    _, secrets = env_references("dev")
    (name,) = secrets
    secret = find("dev", "Secret", name)
    assert {"SECRET_KEY", "DATABASE_URL"} | secrets[name] <= set(secret["data"])
    find("dev", "StatefulSet", "mysql")
    assert find("dev", "Service", "mysql")["spec"]["ports"][0]["port"] == 3306


def test_production_expects_an_out_of_band_secret_documented_in_the_example() -> None:
    assert not [d for d in rendered("production") if d["kind"] in {"Secret", "StatefulSet"}], "no secrets in git"
    _, secrets = env_references("production")
    assert set(secrets) == {"emotion-secrets"}
    example = (REPO / "deploy" / "k8s" / "overlays" / "production" / "secrets.env.example").read_text()
    keys = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert keys == {"SECRET_KEY", "DATABASE_URL", "INTERNAL_TOKEN"}
    assert secrets["emotion-secrets"] <= keys, "every key a pod reads is documented"
    assert "mysql+asyncmy://" in example


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_and_gateway_wait_for_it(overlay: str) -> None:
    job = find(overlay, "Job", "migrate")
    (container,) = pod_spec(job)["containers"]
    gateway = pod_spec(find(overlay, "Deployment", "gateway"))
    assert container["args"] == ["alembic", "upgrade", "head"]
    assert container["image"] == gateway["containers"][0]["image"]
    assert pod_spec(job)["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    (init,) = gateway["initContainers"]
    assert init["args"][:2] == ["python", "wait_for_migrations.py"]
    sources = [next(iter(e.values()))["name"] for e in init["envFrom"]]
    assert [re.sub(r"-\w{10}$", "", s) for s in sources] == ["emotion-common", "emotion-secrets"]
    assert init["image"] == gateway["containers"][0]["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_exposes_only_the_gateway(overlay: str) -> None:
    ingresses = [d for d in rendered(overlay) if d["kind"] == "Ingress"]
    assert len(ingresses) == 1
    backends = [p["backend"]["service"] for rule in ingresses[0]["spec"]["rules"] for p in rule["http"]["paths"]]
    assert backends == [{"name": "gateway", "port": {"name": "http"}}]
    body_limit = ingresses[0]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    max_bytes = int(named(overlay, "ConfigMap", "emotion-common")["data"]["MAX_UPLOAD_BYTES"])
    assert int(body_limit.rstrip("m")) * 1024 * 1024 >= max_bytes
    for document in rendered(overlay):
        if document["kind"] == "Service":
            assert document["spec"].get("type", "ClusterIP") == "ClusterIP"
    if overlay == "production":
        assert ingresses[0]["spec"]["tls"][0]["hosts"] == [ingresses[0]["spec"]["rules"][0]["host"]]


def test_every_production_pod_meets_the_restricted_pod_security_standard() -> None:
    namespace = find("production", "Namespace", "emotion")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    workloads = [d for d in rendered("production") if d["kind"] in {"Deployment", "StatefulSet", "Job"}]
    assert {d["metadata"]["name"] for d in workloads} == {*SERVICES, "redis", "migrate"}
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for box in [*spec.get("initContainers", []), *spec["containers"]]:
            security = box["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
            assert box["resources"]["limits"] and box["resources"]["requests"], box["name"]
        assert {v.get("hostPath") for v in spec.get("volumes", [])} == {None}


def container_env(workload: dict[str, Any]) -> dict[str, Any]:
    return {v["name"]: v for v in pod_spec(workload)["containers"][0].get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_inference_service_gets_the_internal_token_from_the_secret(overlay: str) -> None:
    for name in INFERENCE:
        ref = container_env(find(overlay, "Deployment", name))["INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]
        # dev generates the Secret (kustomize adds a content hash to its name and to the references).
        assert ref["key"] == "INTERNAL_TOKEN" and re.fullmatch(r"emotion-secrets(-\w+)?", ref["name"])
    gateway = pod_spec(find(overlay, "Deployment", "gateway"))["containers"][0]
    assert any(
        re.fullmatch(r"emotion-secrets(-\w+)?", s.get("secretRef", {}).get("name", "")) for s in gateway["envFrom"]
    )
    if overlay == "dev":
        assert len(named("dev", "Secret", "emotion-secrets")["data"]["INTERNAL_TOKEN"]) >= 32


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_the_inference_services(overlay: str) -> None:
    policy = find(overlay, "NetworkPolicy", "inference-from-gateway-only")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "inference"}}
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    for name in INFERENCE:
        labels = (
            pod_spec(find(overlay, "Deployment", name))
            and find(overlay, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        )
        assert labels["app.kubernetes.io/component"] == "inference", f"{name} is covered by the policy"
    gateway_labels = find(overlay, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    assert gateway_labels.get("app.kubernetes.io/component") != "inference"
    gateway_policy = find(overlay, "NetworkPolicy", "gateway-from-ingress-only")["spec"]
    assert gateway_policy["ingress"][0]["from"][0]["namespaceSelector"]
    redis_policy = find(overlay, "NetworkPolicy", "redis-from-gateway-only")["spec"]
    assert redis_policy["ingress"][0]["from"] == rule["from"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_forwarded_headers_and_slow_client_timeouts_are_explicit(overlay: str) -> None:
    common = named(overlay, "ConfigMap", "emotion-common")["data"]
    gateway = named(overlay, "ConfigMap", "gateway-config")["data"]
    # Inference services believe no X-Forwarded-For; the gateway only from the ingress's network.
    assert common["FORWARDED_ALLOW_IPS"] == ""
    assert gateway["FORWARDED_ALLOW_IPS"] not in {"", "*"}
    for name in ("TIMEOUT_KEEP_ALIVE_S", "HEADER_READ_TIMEOUT_S", "BODY_READ_TIMEOUT_S"):
        assert float(common[name]) > 0
    for name in ("gateway", *INFERENCE):
        assert "FORWARDED_ALLOW_IPS" not in container_env(find(overlay, "Deployment", name)), "set in ConfigMaps"
