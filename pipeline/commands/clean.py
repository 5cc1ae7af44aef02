"""`mnist-pipeline clean`: remove what the pipeline's runs wrote to the store (dry run first)."""

from __future__ import annotations

import click

from components.common import spec
from components.common.units import human_bytes
from pipeline.commands.options import s3_endpoint_option


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
    --yes. Only what the pipeline writes goes: the dataset files, numbered model versions,
    predictions.csv files, unfinished writes and uploads (images with --include-images).
    Anything else is listed as kept, and symbolic links are never followed.

    \b
      mnist-pipeline clean --store s3://mlpipeline/mnist --s3-endpoint localhost:9000
      mnist-pipeline clean --store s3://mlpipeline/mnist --s3-endpoint localhost:9000 --yes
    """
    from components.store import LocalStore, open_store
    from pipeline import cleanup

    try:
        store = open_store(store_uri, s3_endpoint)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--store") from None
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise click.BadParameter(
            f"{store.root} is {'not a folder' if store.root.exists() else 'not there'}: "
            "give the folder a run used as its store (run --store)",
            param_hint="--store",
        )
    todo = cleanup.plan(store, include_images)  # a StoreError is one line, as every StepError
    kept_images = [] if include_images else list(store.list(spec.IMAGES_PREFIX))
    _report(store, todo, yes)
    if yes:
        cleanup.execute(store, todo)
        click.echo(f"deleted {len(todo.delete)} object(s)")
    if kept_images:
        click.echo(
            f"kept {len(kept_images)} image(s) under {store.uri(spec.IMAGES_PREFIX)} "
            "(add --include-images to delete them too)"
        )


def _report(store, todo, deleting: bool) -> None:
    """One line per object; a key is shown on one line (a newline in a name forges none)."""
    from components.common.redact import printable

    def where(key: str) -> str:
        return printable(store.uri(key))

    verb = "deleting" if deleting else "would delete"
    for info in todo.delete:
        click.echo(f"{verb} {where(info.key)} ({human_bytes(info.size)})")
    for key, _ in todo.uploads:
        click.echo(f"{'aborting' if deleting else 'would abort'} unfinished upload {where(key)}")
    for key, why in todo.kept:
        click.echo(f"kept {where(key)} ({why})")
    total = sum(info.size for info in todo.delete)
    click.echo(f"{len(todo.delete)} object(s), {human_bytes(total)}, under {store.uri()}")
    if (todo.delete or todo.uploads) and not deleting:
        click.echo("dry run: nothing deleted; run again with --yes to delete")
