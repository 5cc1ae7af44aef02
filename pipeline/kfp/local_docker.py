"""The hook into kfp.local's DockerRunner that pipeline/containers.py needs.

kfp 2.17's `docker_task_handler.run_docker_container` starts each container with
`auto_remove=True`, then asks for its exit status; podman may remove the container before that
question, which then gets a 404, and kfp takes that for exit status 0: a step that failed
passes. kfp.local offers no public way to start containers differently, so for the duration of
a run the module's function is replaced. tests/unit/test_kfp_internals.py pins the function's
name and parameters, and that DockerTaskHandler still calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def docker_containers_run_by(function: Callable[..., int]) -> Iterator[None]:
    """Within the block, kfp.local's DockerRunner starts each step's container through
    `function(client, image, command, volumes, **container_run_args) -> exit status`."""
    from kfp.local import docker_task_handler  # private module: no public hook exists

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = function
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original
