"""The Kustomize manifests: every overlay renders, validates and runs locked-down containers.

Rendering reads `manifests/base/pipeline-runner/secret.env`, which is git-ignored and so absent
on a clean clone. The tests never read a developer's real one: they render a copy of
`manifests/` in which secret.env is the committed secret.env.example.
"""

from __future__ import annotations

import base64
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components import images
from components import store as st
from components.common import spec
from tests.pss import assert_locked_down

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SECRET_DIR = Path("base/pipeline-runner")
# The Kubernetes version whose schemas the manifests must satisfy (strict: no unknown fields).
K8S_VERSION = "1.31.0"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if p.is_dir())
OVERLAY_KEYS = {"apiVersion", "kind", "resources", "patches", "images", "replacements"}
SYNC_MODULE = "components.serving_sync"
MODEL_BASE_PATH = "/models/mnist"


def kustomize(path: Path) -> subprocess.CompletedProcess:
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is required to render the manifests (kubectl kustomize)")
    return subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )


def copy_manifests(dest: Path, with_secret_env: bool = True) -> Path:
    """A copy of manifests/ with secret.env made from the example (never the real one)."""
    shutil.copytree(MANIFESTS, dest, ignore=shutil.ignore_patterns("secret.env"))
    if with_secret_env:
        for example in dest.rglob("secret.env.example"):
            shutil.copy(example, example.with_name("secret.env"))
    return dest


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    """Every overlay rendered once: overlay name -> its documents."""
    root = copy_manifests(tmp_path_factory.mktemp("render") / "manifests")
    out = {}
    for overlay in OVERLAYS:
        result = kustomize(root / "overlays" / overlay)
        assert result.returncode == 0, f"overlay {overlay}: {result.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def serving(docs: list[dict]) -> tuple[dict, dict[str, dict]]:
    pod = find(docs, "Deployment", "mnist-serving")["spec"]["template"]["spec"]
    return pod, {c["name"]: c for c in containers(pod)}


def test_there_are_overlays():
    assert {"default", "dev", "gpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_kubernetes_schema(rendered, overlay):
    kinds = set()
    for doc in rendered[overlay]:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"overlay {overlay}: {name} is invalid: {e.message}")
        kinds.add(doc["kind"])
    assert {"Secret", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(rendered, overlay):
    """The restricted Pod Security Standard (tests/pss.py, as for the pods made at run time),
    a read-only root and an explicit UID, and requests and limits on every container."""
    workloads = pod_specs(rendered[overlay])
    assert workloads, f"overlay {overlay} has no workloads to check"
    for workload, pod in workloads:
        assert_locked_down(pod, f"overlay {overlay}, {workload}")
        for c in containers(pod):
            where = f"overlay {overlay}, {workload}/{c['name']}"
            for field in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(field, {})), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(rendered, overlay):
    for _, pod in pod_specs(rendered[overlay]):
        for c in containers(pod):
            name, _, tag = c["image"].rpartition(":")
            assert name and "/" not in tag and tag not in ("", "latest"), c["image"]
            assert any(ch.isdigit() for ch in tag), f"{c['image']}: tag is not a version"


def test_sync_runs_the_pipelines_slim_image(rendered):
    """Same image (name and package version) as components/images.py, default registry: the
    slim one, since the sync needs no TensorFlow."""
    expected = f"{images.DEFAULT_REGISTRY}/{images.SLIM_IMAGE.rsplit('/', 1)[1]}"
    for overlay, docs in rendered.items():
        _, by_name = serving(docs)
        for name in ("model-sync-init", "model-sync"):
            assert by_name[name]["image"] == expected, f"overlay {overlay}: {name}"


def test_serving_contract(rendered):
    docs = rendered["default"]
    pod, by_name = serving(docs)
    tfs = by_name["tensorflow-serving"]
    assert "--model_name=mnist" in tfs["args"]
    assert f"--model_base_path={MODEL_BASE_PATH}" in tfs["args"]
    assert {p["name"]: p["containerPort"] for p in tfs["ports"]} == {"grpc": 8500, "http": 8501}
    probe = tfs["readinessProbe"]["httpGet"]
    assert probe == {"path": "/v1/models/mnist", "port": "http"}
    service = find(docs, "Service", "mnist-serving")["spec"]
    assert {p["port"]: p["targetPort"] for p in service["ports"]} == {8500: "grpc", 8501: "http"}
    assert service["selector"].items() <= pod_labels(docs).items()
    # The sync writes where TF Serving reads, on a volume they share; TF Serving only reads.
    for name in ("model-sync-init", "model-sync"):
        assert f"--dest={MODEL_BASE_PATH}" in by_name[name]["args"]
    mounts = {c: {m["name"]: m for m in by_name[c]["volumeMounts"]} for c in by_name}
    assert mounts["tensorflow-serving"]["models"]["readOnly"] is True
    assert mounts["model-sync"]["models"]["mountPath"] == "/models"
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["models"]


def pod_labels(docs: list[dict]) -> dict:
    return find(docs, "Deployment", "mnist-serving")["spec"]["template"]["metadata"]["labels"]


def test_store_secret_and_config_match_the_pipeline(rendered):
    docs = rendered["default"]
    secret = find(docs, "Secret")
    assert secret["metadata"]["name"] == spec.MINIO_SECRET  # no hash suffix: KFP refers to it
    assert set(secret["data"]) == set(spec.SECRET_KEY_TO_ENV)
    assert all(base64.b64decode(v).startswith(b"REPLACE_WITH_") for v in secret["data"].values())
    _, by_name = serving(docs)
    for name in ("model-sync-init", "model-sync"):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in by_name[name]["env"]}
        assert {r["key"]: env for env, r in refs.items()} == spec.SECRET_KEY_TO_ENV
        assert {r["name"] for r in refs.values()} == {spec.MINIO_SECRET}
    config = find(docs, "ConfigMap")
    assert config["data"] == {
        "STORE_URI": spec.DEFAULT_STORE,
        "S3_ENDPOINT": spec.IN_CLUSTER_S3_ENDPOINT,
    }
    cm_name = by_name["model-sync"]["envFrom"][0]["configMapRef"]["name"]
    assert cm_name == config["metadata"]["name"]  # the hashed name was rewritten


def test_run_role_is_least_privilege(rendered):
    docs = rendered["default"]
    rules = find(docs, "Role", "mnist-pipeline-runner")["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(
            rule["verbs"]
        )
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert secret_rules == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [spec.MINIO_SECRET],
            "verbs": ["get"],
        }
    ]
    binding = find(docs, "RoleBinding", "mnist-pipeline-runner")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mnist-pipeline-runner"}]
    assert find(docs, "ServiceAccount", "mnist-serving")["automountServiceAccountToken"] is False


def test_gpu_overlay_puts_serving_on_gpu_nodes(rendered):
    pod, by_name = serving(rendered["gpu"])
    tfs = by_name["tensorflow-serving"]
    assert tfs["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    _, cpu_by_name = serving(rendered["default"])
    assert tfs["image"] == cpu_by_name["tensorflow-serving"]["image"] + "-gpu"  # same release
    assert "nvidia.com/gpu" not in by_name["model-sync"]["resources"]["limits"]


def test_dev_overlay_is_one_small_replica(rendered):
    assert find(rendered["dev"], "Deployment", "mnist-serving")["spec"]["replicas"] == 1
    _, dev = serving(rendered["dev"])
    _, base = serving(rendered["default"])
    for name, container in dev.items():
        for field in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                small = quantity(container["resources"][field][resource])
                assert small < quantity(base[name]["resources"][field][resource]), name


def quantity(text: str) -> float:
    """A Kubernetes CPU or memory quantity as a number (enough for m, Ki, Mi, Gi)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_only_patch(overlay):
    """Overlays add bases, patches, images and replacements; resources of their own, never."""
    path = MANIFESTS / "overlays" / overlay / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    assert set(kustomization) <= OVERLAY_KEYS, f"{path}: {set(kustomization) - OVERLAY_KEYS}"
    for resource in kustomization["resources"]:
        target = (path.parent / resource).resolve()
        assert target.is_dir() and (target / "kustomization.yaml").is_file(), resource


def test_rendering_without_secret_env_fails_loudly(tmp_path):
    """A clean clone has no secret.env: kustomize must stop, not deploy placeholder keys."""
    root = copy_manifests(tmp_path / "manifests", with_secret_env=False)
    result = kustomize(root / "overlays" / "default")
    assert result.returncode != 0 and "secret.env" in result.stderr


def test_secret_env_is_git_ignored():
    if not (REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    path = MANIFESTS / SECRET_DIR / "secret.env"
    result = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(path)])
    assert result.returncode == 0, f"{path} would be committed: add it to .gitignore"
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--error-unmatch", str(path)], capture_output=True
    )
    assert tracked.returncode != 0, f"{path} is tracked by git"


# --- the sync containers' exact command lines, run in the project's environment ---------------


def container_argv(container: dict, store_uri: str, endpoint: str, dest: Path) -> list[str]:
    """The container's command and args as the kubelet would expand them, pointed at the test."""
    env = {"STORE_URI": store_uri, "S3_ENDPOINT": endpoint}
    argv = container["command"] + container["args"]
    assert argv[:3] == ["python", "-m", SYNC_MODULE], argv
    argv = [sys.executable, *argv[1:]]
    for name, value in env.items():
        argv = [a.replace(f"$({name})", value) for a in argv]
    return [a.replace(MODEL_BASE_PATH, str(dest)) for a in argv]


def publish(store, version: int) -> None:
    store.put_bytes(f"{spec.MODELS_PREFIX}/{version}/variables/variables.index", b"index")
    store.put_bytes(f"{spec.MODELS_PREFIX}/{version}/saved_model.pb", b"graph")


def test_init_container_command_syncs_from_s3(rendered, s3_bucket, s3_env, tmp_path):
    store_uri = f"s3://{s3_bucket}/mnist"
    publish(st.open_store(store_uri, s3_env), 1)
    _, by_name = serving(rendered["default"])
    dest = tmp_path / "models" / "mnist"
    argv = container_argv(by_name["model-sync-init"], store_uri, s3_env, dest)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (dest / "1" / "saved_model.pb").is_file()


def test_sidecar_command_syncs_until_sigterm(rendered, s3_bucket, s3_env, tmp_path):
    store_uri = f"s3://{s3_bucket}/mnist"
    publish(st.open_store(store_uri, s3_env), 3)
    _, by_name = serving(rendered["default"])
    dest = tmp_path / "models" / "mnist"
    argv = container_argv(by_name["model-sync"], store_uri, s3_env, dest)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        while not (dest / "3").is_dir() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)  # what the kubelet sends when the pod stops
        out, _ = proc.communicate(timeout=30)
    assert (dest / "3" / "saved_model.pb").is_file(), out
    assert proc.returncode == 0, out


def test_dev_overlay_serves_the_web_page_from_tf_serving(rendered):
    docs = rendered["dev"]
    by_kind_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    deployment = by_kind_name[("Deployment", "mnist-ui")]
    service = by_kind_name[("Service", "mnist-ui")]
    serving = by_kind_name[("Service", "mnist-serving")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mnist-pipeline", "ui"]
    http_port = next(p["port"] for p in serving["spec"]["ports"] if p["name"] == "http")
    assert f"--serving-url=http://mnist-serving:{http_port}" in container["args"]
    assert "--bind=0.0.0.0" in container["args"]  # every interface, by the current flag
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert ("Deployment", "mnist-ui") not in {
        (d["kind"], d["metadata"]["name"]) for d in rendered["default"]
    }, "the page is for dev clusters; production overlays opt in"
