"""The kfp internals the CLI relies on are still where it reaches for them.

pipeline/commands/kfp_connection.py `_bound_waits` is the one place that touches private
attributes of kfp.Client. When an upgrade of kfp moves them, these tests fail with a message
saying what to re-check, instead of the CLI silently waiting forever on a stalled API.
"""

from __future__ import annotations

import http.server
import inspect
import json
import time

from click.testing import CliRunner

from pipeline.commands.kfp_connection import PRIVATE_PATH
from tests import servers

RECHECK = (
    "kfp changed its internals: re-check _bound_waits in pipeline/commands/kfp_connection.py "
    "(PRIVATE_PATH, and how the REST client passes `timeout` to PoolManager.request)"
)


def test_the_private_path_to_the_pool_manager_exists():
    import kfp
    import urllib3

    with servers.serve(stall_after_health()) as url:
        client = kfp.Client(host=url.rstrip("/"), namespace="kubeflow")
    node = client
    for name in PRIVATE_PATH:
        assert hasattr(node, name), f"{RECHECK}: no {name!r} on {type(node).__name__}"
        node = getattr(node, name)
    assert isinstance(node, urllib3.PoolManager), RECHECK


def test_the_rest_client_still_sends_requests_through_pool_manager_request():
    from kfp_server_api import rest

    source = inspect.getsource(rest.RESTClientObject.request)
    assert "self.pool_manager.request(" in source and "timeout=timeout" in source, RECHECK


def stall_after_health():
    """Answers the health check like KFP, then never answers anything else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            if "healthz" not in self.path:
                time.sleep(30)
                return
            body = json.dumps({"multi_user": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            time.sleep(30)

        def log_message(self, *args):
            pass

    return Handler


def test_calls_after_the_health_check_are_bounded_too(monkeypatch):
    """kfp's REST client sends `timeout=None` (wait forever) unless told otherwise."""
    from pipeline.cli import main

    monkeypatch.setenv("MNIST_KFP_TIMEOUT", "0.5")
    with servers.serve(stall_after_health()) as url:
        start = time.monotonic()
        result = CliRunner().invoke(main, ["submit", "--host", url.rstrip("/"), "--token", "t"])
    assert result.exit_code == 3, result.output
    assert "did not answer within 0.5 s" in result.output
    assert time.monotonic() - start < 20, RECHECK


def test_docker_runs_go_through_the_module_function_that_local_runs_replace():
    """pipeline/containers.py `exit_status_kept` swaps kfp's module-level run_docker_container
    for one that keeps a container until its exit status is read (podman removes it early)."""
    from kfp.local import docker_task_handler

    recheck = "kfp changed how DockerRunner starts containers: re-check pipeline/containers.py"
    function = docker_task_handler.run_docker_container
    assert list(inspect.signature(function).parameters) == [
        "client",
        "image",
        "command",
        "volumes",
        "container_run_args",
    ], recheck
    run = docker_task_handler.DockerTaskHandler.run
    assert "run_docker_container" in run.__code__.co_names, recheck
    assert "auto_remove=True" in inspect.getsource(function), "kfp dropped auto_remove: " + recheck
