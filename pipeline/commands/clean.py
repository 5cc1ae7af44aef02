"""`mnist-pipeline clean`: remove what the pipeline's runs wrote to the store (dry run first)."""

from __future__ import annotations

from pathlib import Path

import click

from components.common import spec
from pipeline.commands.options import s3_endpoint_option

RUN_OUTPUTS = (spec.DATASET_PREFIX, spec.MODELS_PREFIX, spec.PREDICTIONS_PREFIX)


@click.command("clean")
@click.option(
    "--store",
    "store_uri",
    required=True,
    metavar="URI",
    help="The store root the runs used: s3://bucket/prefix or a local folder (the "
    "store_uri parameter, or `run --store`).",
)
@s3_endpoint_option
@click.option(
    "--include-images",
    is_flag=True,
    help=f"Also delete the images to classify under <store>/{spec.IMAGES_PREFIX} "
    "(they may be yours: kept by default).",
)
@click.option("--yes", is_flag=True, help="Delete. Without it, only list what would go.")
def clean_cmd(store_uri: str, s3_endpoint: str, include_images: bool, yes: bool) -> None:
    """Delete the dataset, models and predictions a tutorial run left in the store.

    A dry run by default: it lists every object it would delete, and deletes them only with
    --yes. Only the pipeline's own prefixes are touched (datasets/mnist, models/mnist,
    predictions; images with --include-images); anything else in the bucket stays.

    \b
      mnist-pipeline clean --store s3://mlpipeline/mnist --s3-endpoint localhost:9000
      mnist-pipeline clean --store s3://mlpipeline/mnist --s3-endpoint localhost:9000 --yes
    """
    from components.common.store import StoreError, open_store

    prefixes = RUN_OUTPUTS + ((spec.IMAGES_PREFIX,) if include_images else ())
    try:
        store = open_store(store_uri, s3_endpoint)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--store") from None
    try:
        objects = [info for prefix in prefixes for info in store.list(prefix)]
        kept = [] if include_images else list(store.list(spec.IMAGES_PREFIX))
        _report(store, objects, yes)
        if yes:
            _delete(store, objects, prefixes)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    if kept:
        click.echo(
            f"kept {len(kept)} image(s) under {store.uri(spec.IMAGES_PREFIX)} "
            "(add --include-images to delete them too)"
        )


def _report(store, objects: list, deleting: bool) -> None:
    verb = "deleting" if deleting else "would delete"
    for info in objects:
        click.echo(f"{verb} {store.uri(info.key)} ({_size(info.size)})")
    total = sum(info.size for info in objects)
    click.echo(f"{len(objects)} object(s), {_size(total)}, under {store.uri()}")
    if objects and not deleting:
        click.echo("dry run: nothing deleted; run again with --yes to delete")


def _delete(store, objects: list, prefixes: tuple[str, ...]) -> None:
    for info in objects:
        store.delete(info.key)
    from components.common.store import LocalStore

    if isinstance(store, LocalStore):  # a folder: drop the directories left empty
        for prefix in prefixes:
            _prune_empty_dirs(Path(store.uri(prefix)), store.root)
    click.echo(f"deleted {len(objects)} object(s)")


def _prune_empty_dirs(top: Path, root: Path) -> None:
    """Remove empty folders under and above `top`, up to (not including) the store root."""
    if top.is_dir():
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
    while top != root and root in top.parents and top.is_dir() and not any(top.iterdir()):
        top.rmdir()
        top = top.parent


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
