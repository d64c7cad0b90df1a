"""The Kubernetes manifests (kubernetes=true), tested two ways.

Offline, for every Kubernetes combination: each manifest against the Kubernetes API's own
schemas, strict (kubernetes-validate, which ships them: an unknown or misspelt field is an
error, as with `kubectl apply --validate=strict`), and the objects against each other (the
selectors, the probes, the grace period, the secrets). KEDA's ScaledObject and
TriggerAuthentication are custom resources whose schemas kubernetes-validate does not ship:
their structure is checked here against the fields of KEDA's CRDs the manifests use, and the
queue they watch against the Redis key huey really uses.

For real, with Podman (the `image` marker): the default service's Deployment and ConfigMap
run under `podman kube play` on the image built from the project's own Dockerfile, become
ready, predict, and are removed by `podman kube down`.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import render, run_gate

# Every Kubernetes combination the template supports: gunicorn alone, with or without the
# Redis queue and the PostgreSQL store, across model formats (the memory budget) and API sets
# (the models volume comes with the jobs API).
GUNICORN_ALONE = {"kubernetes": True, "web_server": "gunicorn"}
COMBINATIONS = {
    "defaults": GUNICORN_ALONE,
    "redis-queue-postgresql-store": {
        **GUNICORN_ALONE,
        "task_queue": "redis",
        "prediction_store": "postgresql",
    },
    "reg-forest-onnx-postgresql-store": {
        **GUNICORN_ALONE,
        "problem_type": "regression",
        "estimator": "random_forest",
        "prediction_store": "postgresql",
        "gunicorn_workers": 3,
        "public_port": 8080,
    },
    "boosting-skops-redis-queue-without-jobs-api": {
        **GUNICORN_ALONE,
        "estimator": "gradient_boosting",
        "task_queue": "redis",
        "apis": ["predict", "evaluate"],
        "gunicorn_worker_class": "sync",
    },
    "no-compose-redis-queue-api-keys": {
        **GUNICORN_ALONE,
        "docker_compose": False,
        "task_queue": "redis",
        "auth": "api_key",
    },
}
# The Kubernetes versions the manifests are validated for: the newest kubernetes-validate
# knows, and the oldest it ships that is still in wide use.
KUBERNETES_VERSIONS = [kubernetes_validate.utils.latest_version(), "1.29.0"]
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication"}


def manifests(project: Path) -> dict[str, dict[str, Any]]:
    """Every object under deploy/kubernetes/ but the kustomizations, by path."""
    found = {}
    for path in sorted((project / "deploy" / "kubernetes").rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            (document,) = yaml.safe_load_all(path.read_text())  # one object per file
            found[str(path.relative_to(project))] = document
    return found


def by_kind(objects: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in objects.values() if document["kind"] == kind]


@pytest.fixture(scope="module", params=COMBINATIONS.values(), ids=COMBINATIONS.keys())
def project(request, copier_template, tmp_path_factory) -> Path:
    return render(copier_template, tmp_path_factory.mktemp("project") / "project", request.param)


def test_off_by_default_no_manifests(copier, tmp_path):
    project = copier.copy(tmp_path / "project", web_server="gunicorn").path
    assert not (project / "deploy" / "kubernetes").exists()


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schemas_strictly(project, version):
    checked = 0
    for path, document in manifests(project).items():
        if document["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path} (Kubernetes {version}): {error.message}", pytrace=False)
        checked += 1
    assert checked >= 6  # ConfigMap, Deployment, Service, HPA, PDB, Ingress at least


def test_the_strict_validation_refuses_an_unknown_field(project):
    deployment = yaml.safe_load((project / "deploy/kubernetes/base/deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomizations_list_every_file_once(project):
    """Each kustomization names exactly the objects beside it, so none is left out of a deploy."""
    root = project / "deploy" / "kubernetes"
    base = yaml.safe_load((root / "base" / "kustomization.yaml").read_text())
    on_disk = {path.name for path in (root / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(base["resources"]) == sorted(on_disk)
    overlay = yaml.safe_load((root / "overlays" / "production" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base", "ingress.yaml"]
    assert [image["name"] for image in overlay["images"]] == [base_deployment(project)["name"]]


def base_deployment(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "deploy/kubernetes/base/deployment.yaml").read_text())[
        "metadata"
    ]


def test_the_overlay_renders_with_kustomize(project):
    """`kubectl kustomize` (kustomize built into kubectl) renders the overlay, and every object it
    outputs, with the image's registry and tag set, still passes the schemas strictly."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the overlay is checked file by file only")
    version = subprocess.run(
        [kubectl, "version", "--client", "--output=json"], capture_output=True, text=True
    )
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "v0")
    if int(kustomize.lstrip("v").split(".")[0]) < 4:
        pytest.skip(f"kubectl's kustomize {kustomize} predates directories in `resources` (v4)")
    overlay = project / "deploy" / "kubernetes" / "overlays" / "production"
    rendered = list(yaml.safe_load_all(run_gate([kubectl, "kustomize", str(overlay)], project)))
    assert len(rendered) == len(manifests(project))
    for document in rendered:
        if document["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(document, KUBERNETES_VERSIONS[0], strict=True)
        for container in pod_containers(document):
            assert container["image"].startswith("registry.example.com/"), container["name"]


def pod_containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    template = document.get("spec", {}).get("template", {}).get("spec", {})
    return [*template.get("initContainers", []), *template.get("containers", [])]


def test_the_objects_fit_together(project, service_bin):
    objects = manifests(project)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    (web,) = [
        d for d in by_kind(objects, "Deployment") if not d["metadata"]["name"].endswith("-worker")
    ]
    pod = web["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert web["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (pdb,) = by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (hpa,) = by_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == web["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2  # so that the PDB's one disruption leaves one serving
    assert "replicas" not in web["spec"]  # the autoscaler owns the count
    (ingress,) = by_kind(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}

    (container,) = pod["spec"]["containers"]
    # gunicorn alone, one process: no supervisor, no nginx.
    assert container["command"] == ["gunicorn", "--config", "deploy/gunicorn.conf.py"]
    assert container["ports"] == [
        {"name": "http", "containerPort": answers.get("public_port", 5000)}
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    (configmap,) = by_kind(objects, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    workers = int(configmap["data"]["WEB_CONCURRENCY"])
    assert workers == (answers.get("gunicorn_workers") or 2)
    assert container["resources"]["requests"]["memory"].endswith("Mi")
    request = int(container["resources"]["requests"]["memory"].removesuffix("Mi"))
    limit = int(container["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert request % (workers + 1) == 0 and request // (workers + 1) >= 64  # per worker
    assert limit > request

    # Stopping: the preStop pause, then gunicorn's whole graceful shutdown, within the grace.
    graceful_timeout = gunicorn_setting(project, service_bin, "graceful_timeout")
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pause + graceful_timeout

    for document in [*by_kind(objects, "Deployment"), *by_kind(objects, "Job")]:
        spec = document["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert spec["automountServiceAccountToken"] is False
        for each in pod_containers(document):
            assert each["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, f"{document['metadata']['name']}/{each['name']}"


def gunicorn_setting(project: Path, service_bin: Path, name: str) -> object:
    """A setting of the project's gunicorn.conf.py, read as gunicorn reads it: executed in the
    project's environment, where the modules it imports (gunicorn, the package) are."""
    script = "import runpy, sys; print(repr(runpy.run_path(sys.argv[1])[sys.argv[2]]))"
    config = str(project / "deploy" / "gunicorn.conf.py")
    output = run_gate(
        [str(service_bin / "python"), "-c", script, config, name], project, {"PYTHONPATH": "src"}
    )
    return ast.literal_eval(output.strip())


def test_secrets_are_referenced_never_written(project):
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    expected = set()
    if answers.get("task_queue") == "redis":
        expected.add("REDIS_URL")
    if answers.get("prediction_store") == "postgresql":
        expected.add("DATABASE_URL")
    if answers.get("auth") == "api_key":
        expected.add("API_KEYS")
    objects = manifests(project)
    assert not by_kind(objects, "Secret")
    (configmap,) = by_kind(objects, "ConfigMap")
    assert not set(configmap["data"]) & {
        "REDIS_URL",
        "DATABASE_URL",
        "POSTGRES_PASSWORD",
        "API_KEYS",
    }
    (web,) = [
        d
        for d in by_kind(objects, "Deployment")
        if d["metadata"]["name"] == base_deployment(project)["name"]
    ]
    env = web["spec"]["template"]["spec"]["containers"][0].get("env", [])
    assert {variable["name"] for variable in env} == expected
    for variable in env:
        assert set(variable) == {"name", "valueFrom"}
        assert variable["valueFrom"]["secretKeyRef"]["key"] == variable["name"]


def test_migrations_run_once_per_rollout_in_a_job(project):
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    objects = manifests(project)
    jobs = by_kind(objects, "Job")
    (configmap,) = by_kind(objects, "ConfigMap")
    if answers.get("prediction_store") != "postgresql":
        assert not jobs
        assert "MIGRATE_ON_START" not in configmap["data"]
        return
    (job,) = jobs
    (container,) = job["spec"]["template"]["spec"]["containers"]
    package = project.joinpath("src").iterdir().__next__().name
    assert container["command"] == ["python", "-m", package, "migrate"]
    # ... and not in each web pod: gunicorn's on_starting skips them.
    assert configmap["data"]["MIGRATE_ON_START"] == "0"
    for deployment in by_kind(objects, "Deployment"):
        assert "initContainers" not in deployment["spec"]["template"]["spec"] or all(
            "migrate" not in each["command"]
            for each in deployment["spec"]["template"]["spec"]["initContainers"]
        )


# The fields of KEDA's CRDs (keda.sh/v1alpha1) these manifests use, each object closed to
# others, as a strict validation would be: a misspelt field fails here.
def closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


STRING = {"type": "string"}
METADATA = closed({"name": STRING, "labels": {"type": "object"}}, ["name"])
SCALED_OBJECT = closed(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": METADATA,
        "spec": closed(
            {
                "scaleTargetRef": closed({"name": STRING}, ["name"]),
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": closed(
                        {
                            "type": {"const": "redis"},
                            # KEDA reads every trigger parameter as a string.
                            "metadata": closed(
                                {"listName": STRING, "listLength": STRING, "databaseIndex": STRING},
                                ["listName", "listLength"],
                            ),
                            "authenticationRef": closed({"name": STRING}, ["name"]),
                        },
                        ["type", "metadata"],
                    ),
                },
            },
            ["scaleTargetRef", "triggers"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)
TRIGGER_AUTHENTICATION = closed(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": METADATA,
        "spec": closed(
            {
                "secretTargetRef": {
                    "type": "array",
                    "items": closed(
                        {"parameter": STRING, "name": STRING, "key": STRING},
                        ["parameter", "name", "key"],
                    ),
                }
            },
            ["secretTargetRef"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)


def test_the_worker_scales_on_the_queue_huey_really_uses(project, service_bin):
    objects = manifests(project)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    workers = [
        d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-worker")
    ]
    if answers.get("task_queue") != "redis":
        assert not workers and not by_kind(objects, "ScaledObject")
        return
    (worker,) = workers
    (scaled,) = by_kind(objects, "ScaledObject")
    (authentication,) = by_kind(objects, "TriggerAuthentication")
    jsonschema.validate(scaled, SCALED_OBJECT)
    jsonschema.validate(authentication, TRIGGER_AUTHENTICATION)
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"]  # KEDA owns the count
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    assert {ref["parameter"] for ref in authentication["spec"]["secretTargetRef"]} == {
        "address",
        "password",
    }
    # The list huey pushes jobs onto, asked of the rendered project's own queue object.
    package = next(project.joinpath("src").iterdir()).name
    queue_key = run_gate(
        [
            str(service_bin / "python"),
            "-c",
            f"from {package}.jobs.backend import huey; print(huey.storage.queue_key)",
        ],
        project,
        env={"PYTHONPATH": str(project / "src")},
    ).strip()
    assert trigger["metadata"]["listName"] == queue_key
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", package, "worker"]
    # SIGINT, huey's graceful stop, before the kubelet's SIGTERM; time for a retraining.
    assert "signal.SIGINT" in container["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 120


def test_the_keda_structure_check_refuses_a_misspelt_field():
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "triggers": [{"type": "redis", "metadata": {"listName": "q", "listLenght": "2"}}],
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)


@pytest.mark.image
def test_the_deployment_runs_under_podman_kube_play(
    copier_template, tmp_path, service_bin, python_base
):
    """The default service's ConfigMap and Deployment, as generated, on the image built from its
    Dockerfile. Two changes, which a cluster needs neither of: the pod on the host's network
    on a free PORT (Podman runs no Service), and the image's local tag (in a cluster,
    kustomize's `images` sets it)."""
    from tests.containers import build_image, free_port, lock_requirements, podman

    project = render(copier_template, tmp_path / "project", GUNICORN_ALONE)
    lock_requirements(project, service_bin)
    image = build_image(project, "localhost/copier-ml-deploy-test/kube-play:latest").tag
    objects = manifests(project)
    (configmap,) = by_kind(objects, "ConfigMap")
    (deployment,) = by_kind(objects, "Deployment")
    port = free_port()
    pod = deployment["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    (container,) = pod["containers"]
    container["image"] = image
    container["env"] = [{"name": "PORT", "value": str(port)}]
    # On the host's network Podman maps no port (it refuses to), so the probes name it.
    del container["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = port
    played = tmp_path / "kube-play.yaml"
    played.write_text(yaml.safe_dump_all([configmap, deployment], sort_keys=False))

    podman("kube", "down", str(played), check=False)
    podman("kube", "play", str(played))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/readyz", within=90)
        answer = post_json(url + "/predict", {"rows": [[5.1, 3.5, 1.4, 0.2]]})
        assert answer["predictions"] == ["setosa"]
        # The pod as the manifest asks: the image's user, a read-only root filesystem.
        name = f"{deployment['metadata']['name']}-pod-0-web"
        inspected = json.loads(podman("container", "inspect", name).stdout)[0]
        assert inspected["Config"]["User"].startswith("10001")
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert podman("exec", name, "touch", "/app/x", check=False).returncode != 0
    finally:
        down = podman("kube", "down", str(played), check=False)
    assert down.returncode == 0, down.stderr
    listed = podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    assert f"{deployment['metadata']['name']}-pod-0" not in listed


def wait_for(url: str, within: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not 200 within {within} s", pytrace=False)


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
