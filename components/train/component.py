"""KFP interface of the train step: fit the CNN, report metrics and the confusion matrix."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Metrics, Model, Output

from components.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train(
    dataset_uri: str,
    store_uri: str,
    s3_endpoint: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    train_limit: int,
    validation_split: float,
    augment: str,
    run_name: str,
    run_id: str,
    task_id: str,
    train_workers: int,
    worker_pod: str,
    model: Output[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
) -> NamedTuple("Outputs", test_accuracy=float):
    """Train the CNN on the MNIST dataset at `dataset_uri`.

    Args:
        dataset_uri: the dataset folder unpack-and-upload wrote (s3:// or a local folder).
        store_uri: the store root; each epoch's checkpoint goes under checkpoints/<run_id>/, so
            a retried pod of the run (after a preemption) resumes after the last epoch.
        s3_endpoint: S3 endpoint (host:port or http(s)://host:port); empty for AWS or a folder.
        epochs: passes over the training set.
        batch_size: images per training step.
        learning_rate: peak learning rate of the one-cycle schedule.
        seed: seed of the weights, shuffling and augmentation.
        train_limit: train on the first N of the 60,000 training images.
        validation_split: hold out this share of them (the last ones) to measure validation
            accuracy after each epoch; they also calibrate the model's probabilities.
        augment: training-time augmentation: none, shift or robust (components/train/model.py).
        run_name: the pipeline run's name (dsl.PIPELINE_JOB_NAME_PLACEHOLDER), for provenance.
        run_id: the pipeline run's ID (dsl.PIPELINE_JOB_ID_PLACEHOLDER), for provenance.
        task_id: this task's ID (dsl.PIPELINE_TASK_ID_PLACEHOLDER), for provenance.
        train_workers: 1 trains here; 2 or more run a TFJob of that many replicas and wait for it.
        worker_pod: the TFJob replicas' image and pod settings (JSON, set at compile time).
        model: the trained Keras model (model.keras) and its provenance.json.
        metrics: test_accuracy, test_loss, train_seconds; validation_accuracy when held out.
        confusion: the confusion matrix on the 10,000 test images.
        report: learning curves, the confusion matrix and the misclassified digits (HTML).

    Returns:
        test_accuracy: the test accuracy, which the accuracy gate compares with min_accuracy.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.TRAIN, locals()):
        from components.train.config import TrainConfig
        from components.train.step import run_step, step_metrics

        cfg = TrainConfig.from_values(locals())
        run = {"name": run_name, "id": run_id, "train_task_id": task_id}
        result, record = run_step(
            cfg, dataset_uri, store_uri, s3_endpoint, train_workers, worker_pod, run,
            model.path, report.path,
        )  # fmt: skip
        for name, value in step_metrics(result).items():
            metrics.log_metric(name, value)
        confusion.log_confusion_matrix([str(d) for d in range(10)], result.confusion)
        model.metadata.update({"framework": "keras", "epochs": epochs, **record})
        return (result.test_accuracy,)
