"""`run --local --runner docker`: each step in its own image, through kfp.local's DockerRunner.

The images are the ones the compiled pipeline names (components/images.py): build them with
`make images-local` (docker or podman). With podman, point DOCKER_HOST at its Docker-compatible
socket. Steps run:

- on the host's network, so an S3 endpoint or a source URL on 127.0.0.1 is reachable;
- as the invoking user, so what they write into the run folder and a folder store on the host
  belongs to whoever started the run (the cluster runs them as the images' UID 10001);
- with the local folders the run names (source, store, images, results) mounted at the same
  paths, read-only where the steps only read;
- with the store settings of this environment (AWS_* credentials and endpoint, MNIST_* bounds),
  passed to the container and never printed.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from components.common.errors import StepError
from components.images import CPU_IMAGE, GPU_IMAGE, SLIM_IMAGE
from components.store import is_s3, local_path, under_store

IMAGES = (SLIM_IMAGE, GPU_IMAGE, CPU_IMAGE)
# What a step needs from this environment; path-valued settings (a CA bundle, a config file)
# name host files that the container does not have, so they are not passed.
PASSED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
ENGINE_HINT = (
    "start Docker, or podman's socket: `podman system service --time=0 "
    "unix:///run/podman/podman.sock &` and DOCKER_HOST=unix:///run/podman/podman.sock"
)


class ContainerError(StepError, RuntimeError):
    """The container engine or an image is not usable; the message says what to do."""


# The arguments that may name a local path, and whether the steps only read it.
PATH_ARGUMENTS = {"source": True, "store_uri": False, "images_uri": True, "results_uri": False}


def _local(value: str) -> str | None:
    """The absolute local path that an argument names, or None for a URL or nothing."""
    if not value or is_s3(value) or ("://" in value and not value.startswith("file://")):
        return None
    return os.path.abspath(local_path(value))


def _resolved(arguments: dict, name: str) -> str:
    """An argument's value as the steps resolve it: images_uri and results_uri may be paths
    under store_uri (components/store/__init__.py `under_store`)."""
    value = arguments.get(name) or ""
    if name in ("images_uri", "results_uri") and value:
        return under_store(arguments.get("store_uri") or "", value)
    return value


def with_absolute_paths(arguments: dict) -> dict:
    """`arguments` with local paths made absolute: a container's working folder is not ours."""
    fixed = dict(arguments)
    for name in PATH_ARGUMENTS:
        path = _local(_resolved(arguments, name))
        if path:
            fixed[name] = path
    return fixed


def _mounts(arguments: dict) -> list:
    """Bind mounts of each local path among the run's arguments, at the same path."""
    from docker.types import Mount

    mounts = []
    for name, read_only in PATH_ARGUMENTS.items():
        path = _local(_resolved(arguments, name))
        if path is None:
            continue
        if not read_only:  # a new store or results folder, as the steps would make it
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:  # a file on the way, a folder this user may not write
                why = e.strerror or type(e).__name__
                raise ContainerError(f"{name} {path} cannot be made to mount it: {why}") from None
        if os.path.exists(path):  # a missing source is the download step's to report
            mounts.append(Mount(target=path, source=path, type="bind", read_only=read_only))
    return mounts


def environment(error_file: str) -> dict[str, str]:
    passed = {k: v for k, v in os.environ.items() if k in PASSED or k.startswith("MNIST_")}
    passed["MNIST_ERROR_FILE"] = error_file
    passed["HOME"] = "/tmp"  # the images' home belongs to UID 10001, not to the invoking user
    return passed


def check_engine_and_images() -> None:
    """Fail in one line when no engine answers or an image is neither here nor pullable."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as e:
        host = os.environ.get("DOCKER_HOST", "the default socket")
        raise ContainerError(
            f"no container engine answers at {host} ({type(e).__name__}): {ENGINE_HINT}"
        ) from None
    try:
        for image in IMAGES:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                try:
                    client.images.pull(image)
                except docker.errors.DockerException:
                    raise ContainerError(
                        f"image {image} is neither here nor pullable: build the images with "
                        "`make images-local` (or set MNIST_IMAGE_REGISTRY to where they are)"
                    ) from None
    finally:
        client.close()


def docker_runner(arguments: dict, error_file: str):
    """A DockerRunner for this run's arguments (see the module docstring)."""
    import kfp.local

    return kfp.local.DockerRunner(
        network_mode="host",
        user=f"{os.getuid()}:{os.getgid()}",
        environment=environment(error_file),
        mounts=_mounts(arguments),
    )


def exit_status_kept() -> AbstractContextManager[None]:
    """Make kfp.local see a failed step fail, with podman as with Docker: for the duration of a
    run, its DockerRunner starts containers through `_run_container`, which keeps a container
    until its exit status is read (pipeline/kfp/local_docker.py says why)."""
    from pipeline.kfp.local_docker import docker_containers_run_by

    return docker_containers_run_by(_run_container)


def _run_container(client, image: str, command: list[str], volumes: dict, **run_args) -> int:
    """kfp's run_docker_container, minus auto_remove: stream the logs, wait, then remove."""
    print(f"Running {image}\n")
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        **run_args,
    )
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)
