"""The DAG: download -> unpack-and-upload -> train (GPU) -> [accuracy gate] export -> batch-predict.

`build_pipeline(options)` returns the pipeline function for the given cluster options (it is built
on demand, not at import, so the CLI pays for it once). Compiling imports kfp only: TensorFlow is
imported inside the steps.
"""

from kfp import compiler, dsl

from components.batch_predict.component import batch_predict
from components.common import spec
from components.download.component import download
from components.export.component import export
from components.train.component import train
from components.train.config import TrainConfig
from components.unpack_upload.component import unpack_and_upload
from pipeline.cluster import (
    ClusterOptions,
    request_gpu,
    retry_network_io,
    set_resources,
    use_store_credentials,
)

PIPELINE_NAME = "mnist-digits"
_TRAIN = TrainConfig()  # the training defaults live with the training code
PIPELINE_DESCRIPTION = (
    "Handwritten-digit recognition on MNIST: download and verify, upload to the object store, "
    "train a CNN on a GPU node, export a versioned SavedModel for TF Serving when it is accurate "
    "enough, and classify every image under a prefix."
)


def build_pipeline(options: ClusterOptions | None = None):
    """The pipeline function with `options` (GPU scheduling, store Secret) applied."""
    options = options or ClusterOptions()
    options.validate()

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
    def mnist_pipeline(
        source: str = spec.DEFAULT_SOURCE,
        verify_checksums: bool = True,
        store_uri: str = spec.DEFAULT_STORE,
        s3_endpoint: str = spec.IN_CLUSTER_S3_ENDPOINT,
        epochs: int = _TRAIN.epochs,
        batch_size: int = _TRAIN.batch_size,
        learning_rate: float = _TRAIN.learning_rate,
        seed: int = _TRAIN.seed,
        train_limit: int = _TRAIN.train_limit,
        min_accuracy: float = 0.98,
        images_uri: str = "",
        results_uri: str = "",
        max_failed_fraction: float = 0.5,
        serving_endpoint: str = "",
    ):
        """Train, gate, export and batch-predict MNIST digits.

        Args:
            source: Where MNIST comes from: an http(s) base URL holding the four .gz IDX
                files, an archive (.zip, .tar.gz), s3://bucket/key, or a local path.
            verify_checksums: Require the files to match the original MNIST release
                (sha256 and record counts).
            store_uri: Object store root, s3://bucket/prefix; datasets, models and
                predictions go under it.
            s3_endpoint: S3 endpoint of the store, host:port or http(s)://host:port
                (default: KFP's in-cluster MinIO).
            epochs: Training epochs (>= 1).
            batch_size: Training batch size (>= 1).
            learning_rate: Peak learning rate of the one-cycle schedule.
            seed: Random seed for reproducible training.
            train_limit: Train on the first N examples only (0 = all), for quick runs.
            min_accuracy: Export and predict only when the test accuracy reaches this (0..1).
            images_uri: Images to classify (default <store_uri>/images).
            results_uri: Where predictions.csv goes (default <store_uri>/predictions).
            max_failed_fraction: Fail batch-predict when more than this share of images
                cannot be read.
            serving_endpoint: Send batch-predict's batches to TF Serving's gRPC endpoint
                (host:port, e.g. mnist-serving:8500) instead of loading the model in the step.
        """
        fetched = download(
            source=source, verify_checksums=verify_checksums, s3_endpoint=s3_endpoint
        )
        fetched.set_caching_options(True)
        uploaded = unpack_and_upload(
            dataset=fetched.outputs["dataset"],
            store_uri=store_uri,
            s3_endpoint=s3_endpoint,
            verify_checksums=verify_checksums,
        )
        uploaded.set_caching_options(True)
        trained = train(
            dataset_uri=uploaded.outputs["Output"],
            s3_endpoint=s3_endpoint,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            train_limit=train_limit,
        )
        trained.set_caching_options(False)
        request_gpu(trained, options.gpu)
        # The gate compares the task's single return value ("Output"): kfp.local resolves that
        # form of condition operand; a named NamedTuple field it does not.
        with dsl.If(trained.outputs["Output"] >= min_accuracy, name="accurate-enough"):
            exported = export(
                model=trained.outputs["model"], store_uri=store_uri, s3_endpoint=s3_endpoint
            )
            predicted = batch_predict(
                model_uri=exported.outputs["Output"],
                store_uri=store_uri,
                images_uri=images_uri,
                results_uri=results_uri,
                s3_endpoint=s3_endpoint,
                max_failed_fraction=max_failed_fraction,
                serving_endpoint=serving_endpoint,
            )
            predicted.set_caching_options(False)
        for task, name in (
            (fetched, "download"),
            (uploaded, "unpack-and-upload"),
            (trained, "train"),
            (exported, "export"),
            (predicted, "batch-predict"),
        ):
            set_resources(task, name)
            use_store_credentials(task, options.secret_name)
        if options.pod_retries:
            for task in (fetched, uploaded, exported, predicted):
                retry_network_io(task)

    return mnist_pipeline


def compile_pipeline(output: str, options: ClusterOptions | None = None) -> None:
    """Write the KFP IR YAML of the pipeline to `output`."""
    compiler.Compiler().compile(
        build_pipeline(options), package_path=output, pipeline_name=PIPELINE_NAME
    )
