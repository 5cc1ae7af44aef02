"""The DAG: download -> unpack-and-upload -> train (GPU) -> [accuracy gate] export -> batch-predict.

`build_pipeline(options)` returns the pipeline function for the given cluster options (it is built
on demand, not at import, so the CLI pays for it once). Compiling imports kfp only: TensorFlow is
imported inside the steps.
"""

import inspect
import json
from types import SimpleNamespace

from kfp import compiler, dsl

from components.batch_predict.component import batch_predict
from components.common import spec
from components.common.parameters import PARAMETERS, TUNE_PARAMETERS
from components.deploy.component import deploy
from components.download.component import download
from components.export.component import export
from components.train.component import train
from components.tune.component import tune
from components.unpack_upload.component import unpack_and_upload
from pipeline.cluster import (
    ClusterOptions,
    request_gpu,
    retry_network_io,
    retry_preemption,
    run_as_image_user,
    set_resources,
    trial_pod,
    use_store_credentials,
)

PIPELINE_NAME = "mnist-digits"
DEPLOY_TIMEOUT_SECONDS = 900  # for the InferenceService to pull the model and be Ready
PIPELINE_DISPLAY_NAME = "MNIST digits: train, gate, export, batch-predict"
TUNE_PIPELINE_NAME = "mnist-tune"
TUNE_TIMEOUT_SECONDS = 6 * 3600  # for the Katib Experiment to end
TUNED = ("epochs", "batch_size", "learning_rate")  # what the tuning pipeline's search sets
TUNE_PARAMS = tuple(p for p in PARAMETERS if p.name not in TUNED) + TUNE_PARAMETERS
NAMES = tuple(param.name for param in PARAMETERS)


def _signature(params) -> inspect.Signature:
    """kfp reads a pipeline's inputs from its signature and their descriptions from its
    docstring: both are made from the one parameter table."""
    return inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation=p.type,
            )
            for p in params
        ]
    )


def _docstring(title: str, params) -> str:
    return f"{title}\n\nArgs:\n" + "".join(f"    {p.name}: {p.description}\n" for p in params)


SIGNATURE = _signature(PARAMETERS)
DOCSTRING = _docstring("Train, gate, export and batch-predict MNIST digits.", PARAMETERS)
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
        _dag(SimpleNamespace(**dict(zip(NAMES, values, strict=True))), options, tuned=False)

    mnist_pipeline.__signature__ = SIGNATURE
    mnist_pipeline.__doc__ = DOCSTRING
    mnist_pipeline.__name__ = "mnist_pipeline"
    return dsl.pipeline(
        name=PIPELINE_NAME, display_name=PIPELINE_DISPLAY_NAME, description=PIPELINE_DESCRIPTION
    )(mnist_pipeline)


def compile_pipeline(
    output: str, options: ClusterOptions | None = None, tuning: bool = False
) -> None:
    """Write the KFP IR YAML of the pipeline (`tuning`: the tuning pipeline) to `output`."""
    if tuning:
        compiler.Compiler().compile(
            build_tune_pipeline(options), package_path=output, pipeline_name=TUNE_PIPELINE_NAME
        )
        return
    compiler.Compiler().compile(
        build_pipeline(options), package_path=output, pipeline_name=PIPELINE_NAME
    )


def _dag(p, options: ClusterOptions, tuned: bool) -> None:
    """The steps, for the main pipeline and (`tuned`: a Katib search picks the training's
    hyper-parameters first) for the tuning one; `p.<name>` are the pipeline's parameters."""
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
    extra = []
    if tuned:
        searched = tune(
            dataset_uri=uploaded.outputs[spec.RETURN_VALUE],
            s3_endpoint=p.s3_endpoint,
            max_epochs=p.max_epochs,
            algorithm=p.algorithm,
            goal=p.goal,
            max_trials=p.max_trials,
            parallel_trials=p.parallel_trials,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            trial_pod=json.dumps(trial_pod(options), sort_keys=True),
            timeout_seconds=TUNE_TIMEOUT_SECONDS,
        )
        searched.set_caching_options(False)
        set_resources(searched, spec.TUNE)
        extra.append(searched)
        hyper = {name: searched.outputs[name] for name in TUNED}
    else:
        hyper = {name: getattr(p, name) for name in TUNED}
    trained = train(
        dataset_uri=uploaded.outputs[spec.RETURN_VALUE],
        store_uri=p.store_uri,
        s3_endpoint=p.s3_endpoint,
        seed=p.seed,
        train_limit=p.train_limit,
        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        workers=p.train_workers,
        worker_pod=json.dumps(trial_pod(options), sort_keys=True),
        **hyper,
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
    for task in (*tasks, deployed, *extra):
        run_as_image_user(task)
    if options.pod_retries:
        for task in (fetched, uploaded, exported, predicted, deployed, *extra):
            retry_network_io(task)
        retry_preemption(trained)


def build_tune_pipeline(options: ClusterOptions | None = None):
    """The tuning pipeline: download, unpack-and-upload, a Katib search (tune), then train,
    gate, export and batch-predict with the best trial's hyper-parameters."""
    options = options or ClusterOptions()
    options.validate()
    names = tuple(p.name for p in TUNE_PARAMS)

    def mnist_tune(*values):
        _dag(SimpleNamespace(**dict(zip(names, values, strict=True))), options, tuned=True)

    mnist_tune.__signature__ = _signature(TUNE_PARAMS)
    mnist_tune.__doc__ = _docstring(
        "Tune with Katib, then train, gate, export, predict.", TUNE_PARAMS
    )
    mnist_tune.__name__ = "mnist_tune"
    return dsl.pipeline(
        name=TUNE_PIPELINE_NAME,
        display_name="MNIST digits: tune with Katib, then train, gate, export, batch-predict",
        description="A Katib search over learning_rate, batch_size and epochs, then the MNIST "
        "pipeline with the best trial's values.",
    )(mnist_tune)
