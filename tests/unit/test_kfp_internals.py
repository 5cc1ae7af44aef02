"""The kfp internals the adapter (pipeline/kfp/) relies on are still where it reaches for them.

pipeline/kfp/ uses a few of kfp's private names, each for want of a public API. When an upgrade
of kfp moves or renames one, a test here fails with a message saying what to re-check, instead
of the CLI silently waiting forever on a stalled API, or a schedule call failing in the field.
`test_every_private_name_the_adapter_uses_is_checked_here` fails when a new one is used without
a check here.
"""

from __future__ import annotations

import ast
import http.server
import inspect
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.kfp import recurring, transport
from pipeline.kfp.transport import PRIVATE_PATH
from tests import servers

ADAPTER = Path(recurring.__file__).parent
pytestmark = pytest.mark.usefixtures("no_kfp_context")


def recheck(where: str, what: str) -> str:
    return f"kfp changed its internals: re-check {what} in pipeline/kfp/{where}"


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


@pytest.fixture(scope="module")
def health_only():
    with servers.serve(stall_after_health()) as url:
        yield url.rstrip("/")


@pytest.fixture
def client(health_only):
    """A stock kfp.Client, as pipeline/kfp/client.py subclasses it."""
    import kfp

    with pytest.warns(FutureWarning):  # "only works with Kubeflow Pipeline v2.0.0-beta.2..."
        return kfp.Client(host=health_only, namespace="kubeflow")


def parameters(function) -> set[str]:
    return set(inspect.signature(function).parameters)


# --- transport.py: bounded waits and the health check ----------------------------------------


def test_the_private_path_to_the_pool_manager_exists(client):
    import urllib3

    node = client
    for name in PRIVATE_PATH:
        assert hasattr(node, name), recheck("transport.py", f"PRIVATE_PATH: no {name!r}")
        node = getattr(node, name)
    assert isinstance(node, urllib3.PoolManager), recheck("transport.py", "PRIVATE_PATH")


def test_the_rest_client_still_sends_requests_through_pool_manager_request():
    from kfp_server_api import rest

    source = inspect.getsource(rest.RESTClientObject.request)
    assert "self.pool_manager.request(" in source and "timeout=timeout" in source, recheck(
        "transport.py", "bound_waits (how the REST client passes `timeout` to the PoolManager)"
    )


def test_the_health_check_gets_the_raw_answer_with_a_timeout(client):
    from kfp_server_api import HealthzServiceApi

    source = inspect.getsource(HealthzServiceApi.healthz_service_get_healthz_with_http_info)
    for option in ("'_preload_content'", "'_request_timeout'"):
        assert option in source, recheck("transport.py", f"check_health ({option})")
    healthz = transport.check_health(client, "host")  # _healthz_api, the answer's model class
    assert healthz.multi_user is False, recheck("transport.py", "check_health")


def test_calls_after_the_health_check_are_bounded_too(monkeypatch, health_only):
    """kfp's REST client sends `timeout=None` (wait forever) unless told otherwise."""
    from pipeline.cli import main

    monkeypatch.setenv("MNIST_KFP_TIMEOUT", "0.5")
    start = time.monotonic()
    result = CliRunner().invoke(main, ["submit", "--host", health_only, "--token", "t"])
    assert result.exit_code == 3, result.output
    assert "did not answer within 0.5 s" in result.output
    assert time.monotonic() - start < 20, recheck("transport.py", "bound_waits")


# --- describe.py: what a failure looks like ----------------------------------------------------


def test_api_errors_carry_what_describe_reads():
    import kfp_server_api
    from kfp_server_api import api_client

    error = kfp_server_api.ApiException(status=404, reason="Not Found")
    for name in ("status", "reason", "body", "headers"):
        assert hasattr(error, name), recheck("describe.py", f"ApiException.{name}")
    # describe.py names a field of the wrong type by this module on the traceback
    assert api_client.ApiClient.deserialize.__module__ == "kfp_server_api.api_client", recheck(
        "describe.py", '_through(exc, "kfp_server_api.api_client")'
    )


# --- runs.py: retry ---------------------------------------------------------------------------


def test_retry_goes_through_the_generated_run_api(client):
    import kfp

    assert not hasattr(kfp.Client, "retry_run"), (
        "kfp.Client has a public retry_run now: use it in pipeline/kfp/runs.py retry_run"
    )
    assert hasattr(client, "_run_api"), recheck("runs.py", "retry_run (client._run_api)")
    assert "run_id" in parameters(client._run_api.run_service_retry_run), recheck(
        "runs.py", "retry_run (run_service_retry_run(run_id=...))"
    )


# --- recurring.py: a version reference without a version id, and the spec sent -------------

WANTED = {
    "experiment_id": "e1",
    "job_name": "nightly",
    "description": None,
    "start_time": None,
    "end_time": None,
    "interval_second": None,
    "cron_expression": "0 0 2 * * *",
    "max_concurrency": 1,
    "no_catchup": False,
    "params": {"epochs": 3},
    "service_account": None,
}


def test_a_recurring_run_that_follows_the_newest_version_can_still_be_made(client):
    body = recurring._following_newest({**WANTED, "pipeline_id": "p1", "version_id": None})
    assert body.pipeline_version_reference.pipeline_id == "p1"
    assert body.trigger.cron_schedule.cron == "0 0 2 * * *"
    assert hasattr(client, "_recurring_run_api"), recheck("recurring.py", "_recurring_run_api")
    create = client._recurring_run_api.recurring_run_service_create_recurring_run
    assert "recurring_run" in parameters(create), recheck(
        "recurring.py", "create_recurring_run (recurring_run_service_create_recurring_run)"
    )


def test_the_public_method_still_refuses_a_pipeline_without_its_version(client):
    """Why recurring.py makes that request itself; when this fails, use the public method."""
    with pytest.raises(ValueError, match="both `pipeline_id` and `version_id`"):
        client.create_recurring_run(**WANTED, pipeline_id="p1", version_id=None)


def test_the_spec_a_package_would_be_sent_as(client, tmp_path):
    package = tmp_path / "tiny.yaml"
    package.write_text(
        "pipelineInfo: {name: tiny}\nroot: {dag: {tasks: {}}}\nschemaVersion: 2.1.0\n"
    )
    wanted = {**WANTED, "pipeline_package_path": str(package)}
    assert hasattr(client, "_create_job_config"), recheck("recurring.py", "_sent_spec")
    accepted = parameters(client._create_job_config)
    assert {"params", "pipeline_package_path", "pipeline_id", "version_id"} <= accepted
    assert {"enable_caching", "cache_key", "pipeline_root"} <= accepted
    spec = recurring._sent_spec(client, wanted)
    assert spec["pipelineInfo"]["name"] == "tiny", recheck("recurring.py", "_sent_spec")


# --- local_docker.py: kfp.local's docker task handler --------------------------------------


def test_docker_runs_go_through_the_module_function_that_local_runs_replace():
    """pipeline/kfp/local_docker.py swaps kfp's module-level run_docker_container for one that
    keeps a container until its exit status is read (podman removes it early)."""
    from kfp.local import docker_task_handler

    why = recheck("local_docker.py", "how DockerRunner starts containers")
    function = docker_task_handler.run_docker_container
    assert list(inspect.signature(function).parameters) == [
        "client",
        "image",
        "command",
        "volumes",
        "container_run_args",
    ], why
    run = docker_task_handler.DockerTaskHandler.run
    assert "run_docker_container" in run.__code__.co_names, why
    assert "auto_remove=True" in inspect.getsource(function), "kfp dropped auto_remove: " + why


# --- local_conditions.py: kfp.local's condition evaluator -----------------------------------


def test_conditions_resolve_operands_through_the_method_local_runs_replace():
    """pipeline/kfp/local_conditions.py replaces ConditionEvaluator._resolve_pipeline_channel,
    which evaluate_condition calls for each operand, so a dsl.If can compare a named output."""
    from kfp.local import io
    from kfp.local.orchestrator import enhanced_dag_orchestrator

    from pipeline.kfp.local_conditions import named_outputs_in_conditions

    why = recheck("local_conditions.py", "how kfp.local resolves a condition's operands")
    evaluator = enhanced_dag_orchestrator.ConditionEvaluator
    assert isinstance(evaluator.__dict__["_resolve_pipeline_channel"], staticmethod), why
    assert "_resolve_pipeline_channel" in evaluator.evaluate_condition.__code__.co_names, why
    store = io.IOStore()
    store.put_task_output("train", "test_accuracy", 0.97)
    condition = "inputs.parameter_values['pipelinechannel--train-test_accuracy'] >= 0.9"
    assert evaluator.evaluate_condition(condition, store) is False  # kfp's own: not resolved
    with named_outputs_in_conditions():
        assert evaluator.evaluate_condition(condition, store) is True
        assert evaluator.evaluate_condition(condition.replace("0.9", "0.99"), store) is False
    assert evaluator.evaluate_condition(condition, store) is False  # put back after the block


# --- nothing private goes unchecked -------------------------------------------------------

# Each private name the adapter uses, and the test above that pins it.
CHECKED = {
    "_healthz_api": test_the_health_check_gets_the_raw_answer_with_a_timeout,
    "_preload_content": test_the_health_check_gets_the_raw_answer_with_a_timeout,
    "_request_timeout": test_the_health_check_gets_the_raw_answer_with_a_timeout,
    "_run_api": test_retry_goes_through_the_generated_run_api,
    "_recurring_run_api": test_a_recurring_run_that_follows_the_newest_version_can_still_be_made,
    "_create_job_config": test_the_spec_a_package_would_be_sent_as,
    "kfp.local.docker_task_handler": test_docker_runs_go_through_the_module_function_that_local_runs_replace,  # noqa: E501
    "_resolve_pipeline_channel": test_conditions_resolve_operands_through_the_method_local_runs_replace,  # noqa: E501
    "kfp.local.orchestrator.enhanced_dag_orchestrator": test_conditions_resolve_operands_through_the_method_local_runs_replace,  # noqa: E501
}
OURS = {
    "_healthz",
    "_named_host",
}  # attributes pipeline/kfp/client.py adds to its subclass of kfp.Client


def private_names(tree: ast.AST) -> set[str]:
    """Attributes and keyword arguments with a leading underscore (not Python's own
    __dunders__), and kfp modules imported that kfp does not export
    (`kfp.local.docker_task_handler`)."""

    def private(name: str | None) -> bool:
        return bool(name) and name.startswith("_") and not name.startswith("__")

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            found.add(node.attr)
        elif isinstance(node, ast.keyword) and private(node.arg):
            found.add(node.arg)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kfp."):
            found.update(f"{node.module}.{a.name}" for a in node.names if a.name.islower())
    return found


def test_every_private_name_the_adapter_uses_is_checked_here():
    used = set()
    for path in ADAPTER.glob("*.py"):
        used |= private_names(ast.parse(path.read_text()))
    used -= OURS
    assert used, "the scan finds nothing: it is broken"
    unchecked = used - set(CHECKED)
    assert not unchecked, f"private kfp names without a test in this file: {sorted(unchecked)}"
