"""Runs: start one (from a compiled package or an uploaded version), follow it to its end,
list them, retry a failed one.

Following a run may take hours, so a passing API error (a 503 from the API server, a lost
connection) is retried a few times before it ends the wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from pipeline.kfp.client import quietly
from pipeline.kfp.errors import KfpApiError, RunNotRetryable, WaitTimedOut, is_transient
from pipeline.kfp.pipelines import UploadedVersion
from pipeline.kfp.settings import KfpSettings

SUCCEEDED = "SUCCEEDED"
ENDED = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
MAX_POLL_FAILURES = 3  # consecutive transient API errors tolerated while following a run


def start_run(
    client,
    settings: KfpSettings,
    source: str | UploadedVersion,
    *,
    params: dict,
    run_name: str,
    experiment: str,
    service_account: str | None = None,
) -> str:
    """Start a run of `source`, a compiled package's path or an uploaded pipeline version,
    under `experiment` (made when missing); returns the run's id."""
    if isinstance(source, UploadedVersion):
        return quietly(
            client.run_pipeline,
            experiment_id(client, settings, experiment),
            run_name,
            params=params,
            pipeline_id=source.pipeline_id,
            version_id=source.version_id,
            service_account=service_account,
        ).run_id
    return quietly(
        client.create_run_from_pipeline_package,
        source,
        arguments=params,
        run_name=run_name,
        experiment_name=experiment,
        namespace=settings.namespace,
        service_account=service_account,
    ).run_id


def experiment_id(client, settings: KfpSettings, name: str) -> str:
    """The id of the experiment `name`, made when missing."""
    return quietly(client.create_experiment, name, namespace=settings.namespace).experiment_id


def follow_run(
    client,
    run_id: str,
    link: str,
    timeout: int | None,
    poll_interval: float,
    say: Callable[[str], None],
    warn: Callable[[str], None],
):
    """Poll the run until it ends, telling `say` each new state; returns the last V2beta1Run.
    Raises WaitTimedOut when `timeout` passes; the run itself keeps going."""
    start, last_state = time.monotonic(), None
    while True:
        run = _get_run_patiently(client, run_id, poll_interval, warn)
        elapsed, state = time.monotonic() - start, run.state or "RUNTIME_STATE_UNSPECIFIED"
        if state != last_state:
            say(f"{elapsed:7.0f} s  {state}")
            last_state = state
        if state in ENDED:
            return run
        if timeout is not None and elapsed >= timeout:
            raise WaitTimedOut(
                f"still {state} after {timeout} s; it goes on in the cluster: {link}"
            )
        time.sleep(poll_interval)


def _get_run_patiently(client, run_id: str, pause: float, warn: Callable[[str], None]):
    """client.get_run, retried through up to MAX_POLL_FAILURES passing API errors in a row."""
    failures = 0
    while True:
        try:
            return client.get_run(run_id)
        except Exception as e:
            failures += 1
            if not is_transient(e) or failures > MAX_POLL_FAILURES:
                raise
            reason = getattr(e, "status", None) or type(e).__name__
            warn(f"KFP API hiccup ({reason}), retrying {failures}/{MAX_POLL_FAILURES}")
            time.sleep(pause)


def list_runs(
    client, settings: KfpSettings, experiment: str | None, state: str | None, limit: int
) -> list:
    """The newest `limit` runs, of `experiment` and in `state` when given."""
    experiment_id = None
    if experiment:
        experiment_id = quietly(
            client.get_experiment, experiment_name=experiment, namespace=settings.namespace
        ).experiment_id
    query = None
    if state:
        query = json.dumps(
            {"predicates": [{"operation": "EQUALS", "key": "state", "string_value": state}]}
        )
    answer = client.list_runs(
        page_size=limit,
        sort_by="created_at desc",
        experiment_id=experiment_id,
        namespace=settings.namespace,
        filter=query,
    )
    listed = list(answer.runs or [])[:limit]
    if any(not isinstance(r.run_id, str) or not r.run_id for r in listed):
        raise KfpApiError(
            f"KFP API at {settings.host} answered runs without an id: not the KFP API's "
            "answer; check --host"
        )
    return listed


def retry_run(client, run_id: str) -> None:
    """Start a failed or canceled run again from its failed tasks (the KFP API's retry)."""
    run = client.get_run(run_id)
    if run.state not in ENDED or run.state == SUCCEEDED:
        raise RunNotRetryable(
            f"run {run_id} is {run.state}: only a failed or canceled run can be retried"
        )
    # kfp.Client has no retry method: the generated RunServiceApi behind it has.
    client._run_api.run_service_retry_run(run_id=run_id)
