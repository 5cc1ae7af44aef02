"""KFP interface of the tune step: a Katib Experiment over the train step's hyper-parameters."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Output

from components.images import SLIM_IMAGE


@dsl.component(base_image=SLIM_IMAGE, install_kfp_package=False)
def tune(
    dataset_uri: str,
    s3_endpoint: str,
    seed: int,
    train_limit: int,
    validation_split: float,
    augment: str,
    max_epochs: int,
    algorithm: str,
    goal: float,
    max_trials: int,
    parallel_trials: int,
    run_id: str,
    trial_pod: str,
    timeout_seconds: int,
    report: Output[HTML],
) -> NamedTuple("Best", learning_rate=float, batch_size=int, epochs=int):
    """Search learning_rate, batch_size and epochs with Katib; return the best trial's values.

    Args:
        dataset_uri: the dataset folder unpack-and-upload wrote.
        s3_endpoint: S3 endpoint of the store, for the trials.
        seed: the pipeline's seed: every trial trains with it, and the search's sampler.
        train_limit: the pipeline's train_limit: every trial trains on the first N images.
        validation_split: the share of those images a trial holds out and is scored on (above
            0: the test set is kept for the accuracy gate).
        augment: the pipeline's augment: every trial trains with it.
        max_epochs: the largest number of epochs a trial may train.
        algorithm: Katib's search algorithm (tpe, random, grid, bayesianoptimization, ...).
        goal: stop when a trial's last epoch reaches this validation accuracy.
        max_trials: trials in all.
        parallel_trials: trials at once.
        run_id: the pipeline run's ID (dsl.PIPELINE_JOB_ID_PLACEHOLDER): names the Experiment.
        trial_pod: the trials' image and pod settings (JSON, set at compile time).
        timeout_seconds: how long to wait for the Experiment to end.
        report: every trial's parameters and validation accuracy, the best marked (HTML).

    Returns:
        learning_rate: the best trial's learning rate.
        batch_size: the best trial's batch size.
        epochs: the best trial's number of epochs.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.TUNE, locals()):
        import json
        from collections import namedtuple

        from components.common.kube import own_namespace
        from components.train.config import TrainConfig
        from components.tune import katib

        fixed = TrainConfig.from_values(locals())  # every training parameter this step gets
        pod = json.loads(trial_pod)
        body = katib.experiment(
            katib.experiment_name(run_id),
            own_namespace(),
            pod.pop("image"),
            dataset_uri,
            s3_endpoint,
            max_epochs,
            algorithm,
            goal,
            max_trials,
            parallel_trials,
            pod,
            fixed=fixed,
        )
        best = katib.tune(body, float(timeout_seconds), report_path=report.path)
        return namedtuple("Best", ["learning_rate", "batch_size", "epochs"])(**best)
