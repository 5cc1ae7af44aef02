"""The tasks inside the accuracy gate: export, batch-predict (one task, or plan-shards, a
ParallelFor of predict-shard and merge-shards with `--shards N`) and, when asked, deploy; and
what every task gets on a cluster (`on_cluster`). pipeline/dag.py wires them in.
"""

from kfp import dsl

from components.batch_predict.component import (
    batch_predict,
    merge_shards,
    plan_shards,
    predict_shard,
)
from components.common import spec
from components.deploy.component import deploy
from components.export.component import export
from pipeline import cluster

DEPLOY_TIMEOUT_SECONDS = 900  # for the InferenceService to pull the model and be Ready


def publish_and_predict(
    options, trained, store_uri, s3_endpoint, images_uri, results_uri, min_confidence,
    max_failed_fraction, serving_endpoint, deploy_model,
):  # fmt: skip
    """Inside the accuracy gate: export, batch-predict and, when asked, deploy with KServe."""
    exported = export(
        model=trained.outputs[spec.MODEL_OUTPUT],
        store_uri=store_uri,
        s3_endpoint=s3_endpoint,
        task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
    )
    on_cluster(options, exported, spec.EXPORT, retry=cluster.retry_network_io)
    if options.sharded:
        _predict_in_shards(
            options, exported, store_uri, s3_endpoint, images_uri, results_uri, min_confidence,
            max_failed_fraction, serving_endpoint,
        )  # fmt: skip
    else:
        predicted = batch_predict(
            model_uri=exported.outputs[spec.MODEL_URI_OUTPUT],
            store_uri=store_uri,
            images_uri=images_uri,
            results_uri=results_uri,
            s3_endpoint=s3_endpoint,
            max_failed_fraction=max_failed_fraction,
            serving_endpoint=serving_endpoint,
            min_confidence=min_confidence,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        predicted.set_caching_options(False)
        on_cluster(options, predicted, spec.BATCH_PREDICT, retry=cluster.retry_network_io)
    with dsl.If(deploy_model == True, name="deploy-with-kserve"):  # noqa: E712 (a kfp condition)
        deployed = deploy(
            model_uri=exported.outputs[spec.MODEL_URI_OUTPUT],
            exported=exported.outputs[spec.EXPORTED_OUTPUT],
            timeout_seconds=DEPLOY_TIMEOUT_SECONDS,
            s3_endpoint=s3_endpoint,  # to check that the version is complete before serving it
        )
        deployed.set_caching_options(False)
        on_cluster(options, deployed, spec.DEPLOY, retry=cluster.retry_network_io)


def _predict_in_shards(
    options, exported, store_uri, s3_endpoint, images_uri, results_uri, min_confidence,
    max_failed_fraction, serving_endpoint,
):  # fmt: skip
    """batch-predict over `options.shards` pods: plan-shards lists the images once, a
    ParallelFor runs predict-shard on each (at most `shard_parallelism` at a time; a retried
    pod skips a finished shard), merge-shards joins them into batch-predict's outputs."""
    model_uri = exported.outputs[spec.MODEL_URI_OUTPUT]
    planned = plan_shards(
        model_uri=model_uri, store_uri=store_uri, images_uri=images_uri, results_uri=results_uri,
        s3_endpoint=s3_endpoint, serving_endpoint=serving_endpoint, shards=options.shards,
        images_per_shard=options.images_per_shard,
    )  # fmt: skip
    planned.set_caching_options(False)
    on_cluster(options, planned, spec.PLAN_SHARDS, retry=cluster.retry_network_io)
    with dsl.ParallelFor(
        planned.output, parallelism=options.shard_parallelism, name=spec.SHARD_LOOP
    ) as manifest:
        # The model comes from the plan, not from export's output: kfp.local replaces every
        # task output that enters a ParallelFor with the loop's item (kfp 2.17.3).
        part = predict_shard(
            manifest_uri=manifest, s3_endpoint=s3_endpoint, serving_endpoint=serving_endpoint,
            min_confidence=min_confidence,
        )  # fmt: skip
        part.set_caching_options(False)
        on_cluster(options, part, spec.PREDICT_SHARD, retry=cluster.retry_network_io)
    merged = merge_shards(
        model_uri=model_uri, manifests=planned.output, s3_endpoint=s3_endpoint,
        max_failed_fraction=max_failed_fraction, serving_endpoint=serving_endpoint,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, parts=options.merge_parts,
    ).after(part)  # fmt: skip
    merged.set_caching_options(False)
    on_cluster(options, merged, spec.MERGE_SHARDS, retry=cluster.retry_network_io)


def on_cluster(options, task, name: str, store: bool = True, retry=None) -> None:
    """What every task gets on a cluster: its resources, the images' non-root user, the
    store's credentials from the Secret (when it reads the store) and its pod retries."""
    cluster.set_resources(task, name)
    cluster.run_as_image_user(task)
    if store:
        cluster.use_store_credentials(task, options.secret_name)
    if options.pod_retries and retry:
        retry(task)
