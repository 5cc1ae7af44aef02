"""The DAG: check-parameters -> download -> unpack-and-upload -> train (GPU) -> [accuracy gate]
export -> batch-predict [-> deploy].

Two pipelines, written as plain `@dsl.pipeline` functions with named parameters: `mnist-digits`
and `mnist-tune` (a Katib search picks the training's hyper-parameters first). Their parameters'
types, defaults and the descriptions the Kubeflow UI shows come from the one table
(components/common/parameters.py): `@from_table` fills the docstring from it and refuses a
signature that drifts from it when the pipeline is built. Cluster settings (GPU node, store
Secret, pod retries) are applied at compile time from ClusterOptions (pipeline/cluster.py), so the
pipelines are built on demand by `build_pipeline(options)`. Compiling imports kfp only:
TensorFlow is imported inside the steps.
"""

import json

from kfp import compiler, dsl

from components.check_parameters.component import check_parameters
from components.common import spec
from components.common.parameters import DEFAULTS as D
from components.common.parameters import TUNE_DEFAULTS as TD
from components.download.component import download
from components.train.component import train
from components.tune.component import tune
from components.tune.search import unusable_algorithms
from components.unpack_upload.component import unpack_and_upload
from pipeline import cluster
from pipeline.cluster import ClusterOptions
from pipeline.publish import on_cluster, publish_and_predict
from pipeline.signature import MAIN, TUNING, from_table

PIPELINE_NAME = "mnist-digits"
PIPELINE_DISPLAY_NAME = "MNIST digits: train, gate, export, batch-predict"
PIPELINE_DESCRIPTION = (
    "Handwritten-digit recognition on MNIST: download and verify, upload to the object store, "
    "train a CNN on a GPU node, export a versioned SavedModel for TF Serving when it is accurate "
    "enough, and classify every image under a prefix."
)
TUNE_PIPELINE_NAME = "mnist-tune"
TUNE_PIPELINE_DISPLAY_NAME = (
    "MNIST digits: tune with Katib, then train, gate, export, batch-predict"
)
TUNE_PIPELINE_DESCRIPTION = (
    "A Katib search over the learning rate, batch size and number of epochs, each trial scored "
    "on its validation split, then the MNIST pipeline with the best trial's values."
)  # plain words: the KFP UI renders a description as Markdown (`_x_` is emphasis)
TUNE_TIMEOUT_SECONDS = 6 * 3600  # for the Katib Experiment to end


def build_pipeline(options: ClusterOptions | None = None):
    """The `mnist-digits` pipeline function with `options` (GPU scheduling, store Secret)."""
    options = options or ClusterOptions()
    options.validate()

    @dsl.pipeline(
        name=PIPELINE_NAME, display_name=PIPELINE_DISPLAY_NAME, description=PIPELINE_DESCRIPTION
    )
    @from_table(MAIN, "Train, gate, export and batch-predict MNIST digits.")
    def mnist_pipeline(
        source: str = D["source"],
        verify_checksums: bool = D["verify_checksums"],
        store_uri: str = D["store_uri"],
        s3_endpoint: str = D["s3_endpoint"],
        epochs: int = D["epochs"],
        batch_size: int = D["batch_size"],
        learning_rate: float = D["learning_rate"],
        seed: int = D["seed"],
        train_limit: int = D["train_limit"],
        validation_split: float = D["validation_split"],
        augment: str = D["augment"],
        train_workers: int = D["train_workers"],
        min_accuracy: float = D["min_accuracy"],
        images_uri: str = D["images_uri"],
        results_uri: str = D["results_uri"],
        min_confidence: float = D["min_confidence"],
        max_failed_fraction: float = D["max_failed_fraction"],
        deploy: bool = D["deploy"],
        serving_endpoint: str = D["serving_endpoint"],
    ):
        checked = _check(
            options,
            source=source, verify_checksums=verify_checksums, store_uri=store_uri,
            s3_endpoint=s3_endpoint, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed, train_limit=train_limit,
            validation_split=validation_split, augment=augment, train_workers=train_workers,
            min_accuracy=min_accuracy, images_uri=images_uri,
            results_uri=results_uri, min_confidence=min_confidence,
            max_failed_fraction=max_failed_fraction, deploy=deploy,
            serving_endpoint=serving_endpoint,
        )  # fmt: skip
        dataset = _fetch_and_upload(
            options, checked, source, verify_checksums, store_uri, s3_endpoint
        )
        trained = _train(
            options, checked, dataset, store_uri, s3_endpoint, epochs, batch_size,
            learning_rate, seed, train_limit, validation_split, augment, train_workers,
        )  # fmt: skip
        with dsl.If(trained.outputs[spec.ACCURACY_OUTPUT] >= min_accuracy, name="accurate-enough"):
            publish_and_predict(
                options, trained, store_uri, s3_endpoint, images_uri, results_uri,
                min_confidence, max_failed_fraction, serving_endpoint, deploy,
            )  # fmt: skip

    return mnist_pipeline


def build_tune_pipeline(options: ClusterOptions | None = None):
    """The `mnist-tune` pipeline: a Katib search (tune) after unpack-and-upload, then train,
    gate, export and batch-predict with the best trial's hyper-parameters. Refused when an
    algorithm the pipeline offers (ALGORITHMS) cannot search its space."""
    options = options or ClusterOptions()
    options.validate()
    unusable = unusable_algorithms()
    if unusable:
        raise TypeError(f"{TUNE_PIPELINE_NAME} offers an algorithm Katib cannot run: {unusable[0]}")

    @dsl.pipeline(
        name=TUNE_PIPELINE_NAME,
        display_name=TUNE_PIPELINE_DISPLAY_NAME,
        description=TUNE_PIPELINE_DESCRIPTION,
    )
    @from_table(TUNING, "Tune with Katib, then train, gate, export, predict.")
    def mnist_tune(
        source: str = D["source"],
        verify_checksums: bool = D["verify_checksums"],
        store_uri: str = D["store_uri"],
        s3_endpoint: str = D["s3_endpoint"],
        seed: int = D["seed"],
        train_limit: int = D["train_limit"],
        validation_split: float = TD["validation_split"],
        augment: str = D["augment"],
        train_workers: int = D["train_workers"],
        min_accuracy: float = D["min_accuracy"],
        images_uri: str = D["images_uri"],
        results_uri: str = D["results_uri"],
        min_confidence: float = D["min_confidence"],
        max_failed_fraction: float = D["max_failed_fraction"],
        deploy: bool = D["deploy"],
        serving_endpoint: str = D["serving_endpoint"],
        algorithm: str = D["algorithm"],
        goal: float = D["goal"],
        max_trials: int = D["max_trials"],
        parallel_trials: int = D["parallel_trials"],
        max_epochs: int = D["max_epochs"],
    ):
        checked = _check(
            options,
            source=source, verify_checksums=verify_checksums, store_uri=store_uri,
            s3_endpoint=s3_endpoint, seed=seed, train_limit=train_limit,
            validation_split=validation_split, augment=augment, train_workers=train_workers,
            min_accuracy=min_accuracy, images_uri=images_uri,
            results_uri=results_uri, min_confidence=min_confidence,
            max_failed_fraction=max_failed_fraction, deploy=deploy,
            serving_endpoint=serving_endpoint, algorithm=algorithm, goal=goal,
            max_trials=max_trials, parallel_trials=parallel_trials, max_epochs=max_epochs,
        )  # fmt: skip
        dataset = _fetch_and_upload(
            options, checked, source, verify_checksums, store_uri, s3_endpoint
        )
        searched = tune(
            dataset_uri=dataset, s3_endpoint=s3_endpoint, seed=seed, train_limit=train_limit,
            validation_split=validation_split, augment=augment, max_epochs=max_epochs,
            algorithm=algorithm,
            goal=goal, max_trials=max_trials,
            parallel_trials=parallel_trials, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            trial_pod=json.dumps(cluster.trial_pod(options), sort_keys=True),
            timeout_seconds=TUNE_TIMEOUT_SECONDS,
        )  # fmt: skip
        searched.set_caching_options(False)
        on_cluster(options, searched, spec.TUNE, store=False, retry=cluster.retry_network_io)
        best = searched.outputs
        # The split was the trials' yardstick; the chosen values then train as the main
        # pipeline's defaults do, a twentieth held out only to calibrate the probabilities.
        trained = _train(
            options, checked, dataset, store_uri, s3_endpoint, best["epochs"],
            best["batch_size"], best["learning_rate"], seed, train_limit,
            D["validation_split"], augment, train_workers,
        )  # fmt: skip
        with dsl.If(trained.outputs[spec.ACCURACY_OUTPUT] >= min_accuracy, name="accurate-enough"):
            publish_and_predict(
                options, trained, store_uri, s3_endpoint, images_uri, results_uri,
                min_confidence, max_failed_fraction, serving_endpoint, deploy,
            )  # fmt: skip

    return mnist_tune


def _check(options, **parameters):
    """The first task: check-parameters over the pipeline's every parameter."""
    checked = check_parameters(
        **parameters, train_gpu=json.dumps(cluster.gpu_settings(options.gpu), sort_keys=True)
    )
    checked.set_caching_options(True)
    on_cluster(options, checked, spec.CHECK_PARAMETERS, store=False)
    return checked


def _fetch_and_upload(options, checked, source, verify_checksums, store_uri, s3_endpoint):
    """download and unpack-and-upload, once the parameters passed; the dataset's URI."""
    fetched = download(source=source, verify_checksums=verify_checksums, s3_endpoint=s3_endpoint)
    fetched.after(checked).set_caching_options(True)
    on_cluster(options, fetched, spec.DOWNLOAD, retry=cluster.retry_network_io)
    uploaded = unpack_and_upload(
        dataset=fetched.outputs[spec.DATASET_OUTPUT],
        store_uri=store_uri,
        s3_endpoint=s3_endpoint,
        verify_checksums=verify_checksums,
    )
    uploaded.set_caching_options(True)
    on_cluster(options, uploaded, spec.UNPACK_UPLOAD, retry=cluster.retry_network_io)
    return uploaded.outputs[spec.DATASET_URI_OUTPUT]


def _train(
    options, checked, dataset, store_uri, s3_endpoint, epochs, batch_size, learning_rate, seed,
    train_limit, validation_split, augment, train_workers,
):  # fmt: skip
    """The train task on a GPU node (when it trains itself: `checked` says, from
    train_workers); a preempted pod is retried and resumes."""
    trained = train(
        dataset_uri=dataset,
        store_uri=store_uri,
        s3_endpoint=s3_endpoint,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        train_limit=train_limit,
        validation_split=validation_split,
        augment=augment,
        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        train_workers=train_workers,
        worker_pod=json.dumps(cluster.trial_pod(options), sort_keys=True),
    )
    trained.set_caching_options(False)
    cluster.request_gpu(trained, options.gpu, placement=checked)
    on_cluster(options, trained, spec.TRAIN, retry=cluster.retry_preemption)
    return trained


def compile_pipeline(
    output: str, options: ClusterOptions | None = None, tuning: bool = False
) -> None:
    """Write the KFP IR YAML of the pipeline (`tuning`: the tuning pipeline) to `output`."""
    build, name = (build_tune_pipeline, TUNE_PIPELINE_NAME) if tuning else (
        build_pipeline, PIPELINE_NAME)  # fmt: skip
    compiler.Compiler().compile(build(options), package_path=output, pipeline_name=name)
