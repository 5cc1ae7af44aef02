"""The DAG: download -> unpack-and-upload -> train (GPU) -> [accuracy gate] export -> batch-predict.

`build_pipeline(options)` returns the pipeline function for the given cluster options (it is built
on demand, not at import, so the CLI pays for it once). Compiling imports kfp only: TensorFlow is
imported inside the steps.
"""

import inspect
from types import SimpleNamespace

from kfp import compiler, dsl

from components.batch_predict.component import batch_predict
from components.common import spec
from components.common.parameters import PARAMETERS
from components.deploy.component import deploy
from components.download.component import download
from components.export.component import export
from components.train.component import train
from components.unpack_upload.component import unpack_and_upload
from pipeline.cluster import (
    ClusterOptions,
    request_gpu,
    retry_network_io,
    retry_preemption,
    set_resources,
    use_store_credentials,
)

PIPELINE_NAME = "mnist-digits"
DEPLOY_TIMEOUT_SECONDS = 900  # for the InferenceService to pull the model and be Ready
PIPELINE_DISPLAY_NAME = "MNIST digits: train, gate, export, batch-predict"
NAMES = tuple(param.name for param in PARAMETERS)
# kfp reads a pipeline's inputs from its signature and their descriptions from its docstring:
# both are made from the one parameter table.
SIGNATURE = inspect.Signature(
    [
        inspect.Parameter(
            p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default, annotation=p.type
        )
        for p in PARAMETERS
    ]
)
DOCSTRING = "Train, gate, export and batch-predict MNIST digits.\n\nArgs:\n" + "".join(
    f"    {p.name}: {p.description}\n" for p in PARAMETERS
)
PIPELINE_DESCRIPTION = (
    "Handwritten-digit recognition on MNIST: download and verify, upload to the object store, "
    "train a CNN on a GPU node, export a versioned SavedModel for TF Serving when it is accurate "
    "enough, and classify every image under a prefix."
)


def build_pipeline(options: ClusterOptions | None = None):
    """The pipeline function with `options` (GPU scheduling, store Secret) applied."""
    options = options or ClusterOptions()
    options.validate()

    def mnist_pipeline(*values):  # kfp passes one channel per parameter, in SIGNATURE's order
        p = SimpleNamespace(**dict(zip(NAMES, values, strict=True)))  # p.epochs...
        fetched = download(
            source=p.source, verify_checksums=p.verify_checksums, s3_endpoint=p.s3_endpoint
        )
        fetched.set_caching_options(True)
        uploaded = unpack_and_upload(
            dataset=fetched.outputs[spec.DATASET_OUTPUT],
            store_uri=p.store_uri,
            s3_endpoint=p.s3_endpoint,
            verify_checksums=p.verify_checksums,
        )
        uploaded.set_caching_options(True)
        trained = train(
            dataset_uri=uploaded.outputs[spec.RETURN_VALUE],
            store_uri=p.store_uri,
            s3_endpoint=p.s3_endpoint,
            epochs=p.epochs,
            batch_size=p.batch_size,
            learning_rate=p.learning_rate,
            seed=p.seed,
            train_limit=p.train_limit,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        )
        trained.set_caching_options(False)
        request_gpu(trained, options.gpu)
        # The gate compares the task's single return value ("Output"): kfp.local resolves that
        # form of condition operand; a named NamedTuple field it does not.
        with dsl.If(trained.outputs[spec.RETURN_VALUE] >= p.min_accuracy, name="accurate-enough"):
            exported = export(
                model=trained.outputs[spec.MODEL_OUTPUT],
                store_uri=p.store_uri,
                s3_endpoint=p.s3_endpoint,
                task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
            )
            predicted = batch_predict(
                model_uri=exported.outputs[spec.RETURN_VALUE],
                store_uri=p.store_uri,
                images_uri=p.images_uri,
                results_uri=p.results_uri,
                s3_endpoint=p.s3_endpoint,
                max_failed_fraction=p.max_failed_fraction,
                serving_endpoint=p.serving_endpoint,
                min_confidence=p.min_confidence,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
            predicted.set_caching_options(False)
            with dsl.If(p.deploy == True, name="deploy-with-kserve"):  # noqa: E712 (a kfp condition)
                deployed = deploy(
                    model_uri=exported.outputs[spec.RETURN_VALUE],
                    exported=exported.outputs[spec.EXPORTED_OUTPUT],
                    timeout_seconds=DEPLOY_TIMEOUT_SECONDS,
                )
                deployed.set_caching_options(False)
                set_resources(deployed, spec.DEPLOY)
        tasks = (fetched, uploaded, trained, exported, predicted)
        for task, name in zip(tasks, spec.STEPS, strict=True):
            set_resources(task, name)
            use_store_credentials(task, options.secret_name)
        if options.pod_retries:
            for task in (fetched, uploaded, exported, predicted, deployed):
                retry_network_io(task)
            retry_preemption(trained)

    mnist_pipeline.__signature__ = SIGNATURE
    mnist_pipeline.__doc__ = DOCSTRING
    mnist_pipeline.__name__ = "mnist_pipeline"
    return dsl.pipeline(
        name=PIPELINE_NAME, display_name=PIPELINE_DISPLAY_NAME, description=PIPELINE_DESCRIPTION
    )(mnist_pipeline)


def compile_pipeline(output: str, options: ClusterOptions | None = None) -> None:
    """Write the KFP IR YAML of the pipeline to `output`."""
    compiler.Compiler().compile(
        build_pipeline(options), package_path=output, pipeline_name=PIPELINE_NAME
    )
