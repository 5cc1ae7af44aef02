"""The compile-time cluster flags every command that compiles the pipeline takes (compile,
submit, upload, schedule, tune): GPU scheduling of the train step, the store's Secret and
batch-predict's shards, made into a ClusterOptions."""

from __future__ import annotations

import functools

import click

from components.common import spec
from pipeline.cluster import ClusterOptions, GpuOptions

_GPU = GpuOptions()


def cluster_options(fn):
    """Compile-time cluster settings: GPU scheduling of the train step, the store Secret and
    batch-predict's shards."""

    @click.option(
        "--gpu/--no-gpu",
        default=True,
        show_default=True,
        help="Request a GPU node for the train step.",
    )
    @click.option(
        "--gpu-limit",
        default=_GPU.limit,
        show_default=True,
        type=click.IntRange(1),
        help="GPUs for the train step.",
    )
    @click.option(
        "--gpu-node-label",
        default=f"{_GPU.node_label_key}={_GPU.node_label_value}",
        show_default=True,
        metavar="KEY=VALUE",
        help="Node selector that picks the GPU node pool.",
    )
    @click.option(
        "--gpu-toleration-key",
        default=_GPU.toleration_key,
        show_default=True,
        help="Taint key tolerated on GPU nodes (operator Exists, effect NoSchedule).",
    )
    @click.option(
        "--secret-name",
        default=ClusterOptions().secret_name,
        show_default=True,
        help="Kubernetes Secret with the store's accesskey and secretkey.",
    )
    @click.option(
        "--shards",
        default=ClusterOptions().shards,
        show_default=True,
        type=click.IntRange(1, spec.MAX_SHARDS),
        help="Batch-predict over this many pods: a plan task lists the images once, a "
        "ParallelFor classifies each shard (a retried pod skips a finished one), a merge task "
        "publishes one predictions.csv. 1: the one batch-predict task.",
    )
    @click.option(
        "--images-per-shard",
        default=ClusterOptions().images_per_shard,
        show_default=True,
        type=click.IntRange(0),
        help="Shard batch-predict by size instead: as many shards as hold this many images each, "
        "decided when the images are listed (at most --shards when that is above 1). 0: off.",
    )
    @click.option(
        "--shard-parallelism",
        default=ClusterOptions().shard_parallelism,
        show_default=True,
        type=click.IntRange(0),
        help="At most this many shard pods at a time (0: no limit).",
    )
    @click.option(
        "--merge-parts",
        is_flag=True,
        default=ClusterOptions().merge_parts,
        help=f"With shards, for runs too large for one file: publish {spec.PREDICTIONS_PARTS}, "
        "the shards' CSVs in order, instead of joining them into one predictions.csv.",
    )
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def options_from_flags(
    gpu: bool,
    gpu_limit: int,
    gpu_node_label: str,
    gpu_toleration_key: str,
    secret_name: str,
    shards: int = 1,
    images_per_shard: int = 0,
    shard_parallelism: int = 0,
    merge_parts: bool = False,
) -> ClusterOptions:
    key, sep, value = gpu_node_label.partition("=")
    if not sep or not key:
        raise click.BadParameter(
            f"{gpu_node_label!r} is not KEY=VALUE", param_hint="--gpu-node-label"
        )
    gpu_options = GpuOptions(
        enabled=gpu,
        limit=gpu_limit,
        node_label_key=key,
        node_label_value=value,
        toleration_key=gpu_toleration_key,
    )
    options = ClusterOptions(
        gpu=gpu_options,
        secret_name=secret_name,
        shards=shards,
        images_per_shard=images_per_shard,
        shard_parallelism=shard_parallelism,
        merge_parts=merge_parts,
    )
    try:
        options.validate()
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    return options
