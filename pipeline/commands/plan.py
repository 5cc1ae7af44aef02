"""The compiled pipeline the Kubeflow commands send, and what a dry run prints of it.

`compiled_package` compiles the pipeline (or the tuning pipeline) with the cluster flags into a
temporary YAML file; `dry_run_plan` reads that file back into what would be sent (the pipeline,
where, every parameter's value, the images), so `--dry-run` checks everything and calls nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from pipeline.commands.cluster_flags import options_from_flags
from pipeline.kfp.settings import KfpSettings


@contextlib.contextmanager
def compiled_package(
    flags: dict, caching: bool | None = None, tuning: bool = False
) -> Iterator[str]:
    """Compile the pipeline (`tuning`: the tuning pipeline) with the cluster flags to a
    temporary YAML file; yield its path. `caching` True or False sets every task's cache
    option (None keeps the compiled ones)."""
    from pipeline.dag import PIPELINE_NAME, compile_pipeline

    options = options_from_flags(**flags)
    with tempfile.TemporaryDirectory(prefix="mnist-kfp-") as work:
        path = str(Path(work) / f"{PIPELINE_NAME}.yaml")
        compile_pipeline(path, options, tuning)
        if caching is not None:
            set_caching(path, caching)
        yield path


def set_caching(package: str, enabled: bool) -> None:
    """Set the cache option of every task, inside conditions too. (kfp.Client's own
    enable_caching reaches only the top-level tasks: export and batch-predict run inside the
    accuracy gate's sub-DAG.)"""
    import yaml

    with open(package) as f:
        docs = list(yaml.safe_load_all(f))
    spec = docs[0]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for task in dag["tasks"].values():
            if "componentRef" in task and not task["componentRef"]["name"].startswith(
                "comp-condition"
            ):
                task["cachingOptions"] = {"enableCache": enabled}
    with open(package, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)


def package_contents(package: str, params: dict) -> dict:
    """The compiled pipeline's name, every parameter's value (`params` over the defaults),
    and the images its steps run."""
    import yaml

    with open(package) as f:
        spec = next(yaml.safe_load_all(f))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    return {
        "pipeline": spec["pipelineInfo"]["name"],
        "parameters": {
            name: _typed(name, params.get(name, d.get("defaultValue")))
            for name, d in sorted(inputs.items())
        },
        "images": sorted(
            {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        ),
    }


def dry_run_plan(
    package: str, settings: KfpSettings, experiment: str, run_name: str, params: dict
) -> dict:
    """What `submit` (or `tune`) would send: the pipeline, where, and every parameter's value."""
    contents = package_contents(package, params)
    return {
        "pipeline": contents["pipeline"],
        "host": settings.host or None,
        "namespace": settings.namespace,
        "experiment": experiment,
        "run_name": run_name,
        "parameters": contents["parameters"],
        "images": contents["images"],
        "sent": False,
    }


def _typed(name: str, value):
    """The compiled YAML stores integers as numbers like 128.0: give them back their type."""
    from pipeline.params import TYPES

    return int(value) if TYPES.get(name) is int and value is not None else value


def nothing_sent(host: str | None) -> str:
    """A dry run's first line; with no --host given, a dry run needs none (connection.py)."""
    return f"dry run: nothing sent to {host or 'a KFP API (no --host given)'}"


def show_plan(plan: dict) -> None:
    """A dry_run_plan for people."""
    click.echo(nothing_sent(plan["host"]))
    click.echo(f"pipeline:   {plan['pipeline']}\nexperiment: {plan['experiment']}")
    click.echo(f"run name:   {plan['run_name']}")
    click.echo("parameters:")
    for name, value in plan["parameters"].items():
        click.echo(f"  {name} = {value!r}")
    click.echo("images:     " + ", ".join(plan["images"]))


def default_run_name(pipeline: str) -> str:
    """`mnist-digits 2025-01-31 02-00-00 UTC`: the pipeline's name and the UTC time."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H-%M-%S UTC")
    return f"{pipeline} {stamp}"
