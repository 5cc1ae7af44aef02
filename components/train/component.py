"""KFP interface of the train step: fit the CNN, report metrics and the confusion matrix."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Metrics, Model, Output

from components.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train(
    dataset_uri: str,
    s3_endpoint: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    train_limit: int,
    model: Output[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
) -> float:
    """Train on the dataset at `dataset_uri`; returns the test accuracy (used by the gate)."""
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.TRAIN):
        import tempfile

        from components.common.store import open_store
        from components.train.trainer import TrainConfig, train_from_store

        cfg = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            train_limit=train_limit,
        )
        with tempfile.TemporaryDirectory() as work:
            result = train_from_store(
                open_store(dataset_uri, s3_endpoint), "", cfg, model.path, work
            )
        metrics.log_metric("test_accuracy", result.test_accuracy)
        metrics.log_metric("test_loss", result.test_loss)
        metrics.log_metric("train_seconds", round(result.seconds, 1))
        confusion.log_confusion_matrix([str(d) for d in range(10)], result.confusion)
        model.metadata.update(
            {"framework": "keras", "test_accuracy": result.test_accuracy, "epochs": epochs}
        )
        return result.test_accuracy
