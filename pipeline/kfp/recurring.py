"""Recurring runs: create one (also one that follows an uploaded pipeline's newest version),
list them, and tell whether an existing one already has the wanted settings (`schedule apply`).

`wanted` is always the keyword arguments of kfp.Client.create_recurring_run (experiment_id,
job_name, cron_expression or interval_second, params, pipeline_package_path or pipeline_id and
version_id...). Two needs have no public kfp API, so each uses one private name, pinned by
tests/unit/test_kfp_internals.py: a version reference without a version id, and the pipeline
spec the client would send for a package.
"""

from __future__ import annotations

import json

# What `_settings` compares, and what an unset value of `wanted` stands for.
_EMPTY = {
    "cron_expression": None,
    "interval_second": None,
    "max_concurrency": 1,
    "no_catchup": False,
    "params": {},
    "experiment_id": None,
    "service_account": None,
    "description": None,
}


def create_recurring_run(client, wanted: dict):
    """kfp.Client.create_recurring_run, or, to follow the newest version of an uploaded pipeline
    (a pipeline id without a version id, which kfp.Client refuses), the same request made here
    and sent through the generated API object the client holds (`_recurring_run_api`)."""
    if wanted.get("pipeline_id") and not wanted.get("version_id"):
        body = _following_newest(wanted)
        return client._recurring_run_api.recurring_run_service_create_recurring_run(
            recurring_run=body
        )
    return client.create_recurring_run(**wanted)


def _following_newest(wanted: dict):
    """The V2beta1RecurringRun kfp.Client would make, with a pipeline-only version reference."""
    import kfp_server_api as api  # the request's model classes: no public home in kfp

    times = {"start_time": wanted["start_time"], "end_time": wanted["end_time"]}
    if wanted["cron_expression"]:
        trigger = api.V2beta1Trigger(
            cron_schedule=api.V2beta1CronSchedule(cron=wanted["cron_expression"], **times)
        )
    else:
        trigger = api.V2beta1Trigger(
            periodic_schedule=api.V2beta1PeriodicSchedule(
                interval_second=wanted["interval_second"], **times
            )
        )
    return api.V2beta1RecurringRun(
        experiment_id=wanted["experiment_id"],
        display_name=wanted["job_name"],
        description=wanted["description"],
        mode=api.RecurringRunMode.ENABLE,
        pipeline_version_reference=api.V2beta1PipelineVersionReference(
            pipeline_id=wanted["pipeline_id"]
        ),
        runtime_config=api.V2beta1RuntimeConfig(parameters=wanted["params"]),
        trigger=trigger,
        max_concurrency=wanted["max_concurrency"],
        no_catchup=wanted["no_catchup"],
        service_account=wanted["service_account"],
    )


def list_recurring_runs(client, namespace: str | None, limit: int) -> list:
    """Up to `limit` recurring runs, newest first, following the server's pages."""
    found, token = [], ""
    while len(found) < limit:
        page = client.list_recurring_runs(
            page_token=token,
            page_size=min(limit, 100),
            sort_by="created_at desc",
            namespace=namespace,
        )
        found += page.recurring_runs or []
        token = page.next_page_token
        if not token:
            break
    return found[:limit]


SEARCHED = 500  # recurring runs looked through for a name: more than a namespace holds


def named(client, namespace: str | None, name: str) -> list:
    """The recurring runs (of the newest SEARCHED) whose name is `name`."""
    return [r for r in list_recurring_runs(client, namespace, SEARCHED) if r.display_name == name]


def find_recurring_run(client, namespace: str | None, key: str):
    """The recurring run whose ID or name is `key` (an ID first): one listing, no call that
    puts `key` in a URL path. RecurringRunNotFound when none or several have that name."""
    from pipeline.kfp.errors import RecurringRunNotFound

    found = list_recurring_runs(client, namespace, SEARCHED)
    matches = [r for r in found if r.recurring_run_id == key] or [
        r for r in found if r.display_name == key
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(r.recurring_run_id for r in matches)
        raise RecurringRunNotFound(
            f"{len(matches)} recurring runs are named {key!r}: give one ID ({ids})"
        )
    raise RecurringRunNotFound(
        f"no recurring run has the ID or name {key!r}: `mnist-pipeline schedule list` shows them"
    )


def refuse_same_name(client, namespace: str | None, name: str) -> None:
    """ScheduleExists when a recurring run is already named `name`: `schedule create` run twice
    would otherwise start every run twice."""
    from pipeline.kfp.errors import ScheduleExists

    same = named(client, namespace, name)
    if same:
        raise ScheduleExists(
            f"a recurring run named {name!r} exists ({same[0].recurring_run_id}): "
            f"`schedule apply --name {name!r}` replaces it, or give another --name"
        )


def apply_recurring_run(client, namespace: str | None, wanted: dict) -> tuple:
    """Make the recurring run named wanted["job_name"] have these settings: (the recurring run,
    "created" | "unchanged" | "replaced", the ids deleted). The KFP API cannot change one in
    place, so replacing deletes every one of that name and creates a new one."""
    name = wanted["job_name"]
    same_name = named(client, namespace, name)
    if len(same_name) == 1 and is_unchanged(client, same_name[0], wanted):
        return same_name[0], "unchanged", []
    replaced = []
    for old in same_name:
        client.delete_recurring_run(old.recurring_run_id)
        replaced.append(old.recurring_run_id)
    return create_recurring_run(client, wanted), "replaced" if replaced else "created", replaced


def is_unchanged(client, existing, wanted: dict) -> bool:
    """Whether the recurring run `existing` already has the settings in `wanted`."""
    if _settings(existing) != {k: wanted[k] or _EMPTY.get(k) for k in _EMPTY}:
        return False
    if wanted.get("pipeline_package_path"):
        return _canonical(existing.pipeline_spec) == _canonical(_sent_spec(client, wanted))
    reference = existing.pipeline_version_reference
    return bool(reference) and (reference.pipeline_id, reference.pipeline_version_id or None) == (
        wanted["pipeline_id"],
        wanted["version_id"],
    )


def _settings(existing) -> dict:
    """The settings of a V2beta1RecurringRun, keyed as kfp.Client.create_recurring_run's."""
    trigger = existing.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    periodic = trigger.periodic_schedule if trigger else None
    interval = periodic.interval_second if periodic and periodic.interval_second else None
    config = existing.runtime_config
    return {
        "cron_expression": cron,
        "interval_second": int(interval) if interval else None,
        "max_concurrency": int(existing.max_concurrency or 1),
        "no_catchup": bool(existing.no_catchup),
        "params": (config.parameters if config else None) or {},
        "experiment_id": existing.experiment_id,
        "service_account": existing.service_account or None,
        "description": existing.description or None,
    }


def _sent_spec(client, wanted: dict):
    """The pipeline spec create_recurring_run sends for wanted["pipeline_package_path"].

    kfp.Client has no public way to it; its `_create_job_config` is what create_recurring_run
    itself calls, so the comparison cannot drift from what would be sent.
    """
    return client._create_job_config(
        params=wanted["params"],
        pipeline_package_path=wanted["pipeline_package_path"],
        pipeline_id=None,
        version_id=None,
        enable_caching=None,
        cache_key=None,
        pipeline_root=None,
    ).pipeline_spec


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def describe_trigger(trigger) -> str:
    """`cron 0 0 2 * * *` or `every 3600 s` from a V2beta1Trigger."""
    if trigger and trigger.cron_schedule and trigger.cron_schedule.cron:
        return f"cron {trigger.cron_schedule.cron}"
    if trigger and trigger.periodic_schedule and trigger.periodic_schedule.interval_second:
        return f"every {trigger.periodic_schedule.interval_second} s"
    return "?"
