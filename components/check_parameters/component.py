"""KFP interface of the first step: every pipeline parameter checked against the one table.

A run started from the Kubeflow UI or a recurring run was checked by no CLI. This step fails it
in its first seconds with the line the CLI would print (`min_accuracy=7 is out of range: must be
from 0 to 1`), before anything is downloaded. Each later step checks the parameters it receives
again (components/common/failure.py `reported`), so a component reused in another pipeline is
no less safe. tests/compile checks that this signature is the table's.
"""

from typing import NamedTuple

from kfp import dsl

from components.images import SLIM_IMAGE


@dsl.component(base_image=SLIM_IMAGE, install_kfp_package=False)
def check_parameters(
    source: str,
    verify_checksums: bool,
    store_uri: str,
    s3_endpoint: str,
    seed: int,
    train_limit: int,
    validation_split: float,
    augment: str,
    train_workers: int,
    min_accuracy: float,
    images_uri: str,
    results_uri: str,
    min_confidence: float,
    max_failed_fraction: float,
    deploy: bool,
    serving_endpoint: str,
    # The tuning pipeline leaves these three to its search; kfp copies a lightweight
    # component's source alone, so the table's defaults are written out (a test compares them).
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 0.01,
    # The tuning pipeline's own.
    algorithm: str = "tpe",
    goal: float = 0.995,
    max_trials: int = 12,
    parallel_trials: int = 2,
    max_epochs: int = 8,
    # Not a pipeline parameter: the train task's GPU settings, compiled in (pipeline/cluster.py).
    train_gpu: str = "{}",
) -> NamedTuple("Outputs", train_gpus=int, train_node_selector=dict, train_tolerations=list):
    """Check every pipeline parameter's value (components/common/parameters.py); fail the run
    with one line naming the first bad one.

    Returns:
        train_gpus: the GPUs the train task's pod asks for: none when it launches a TFJob.
        train_node_selector: its node selector (the GPU nodes', or none).
        train_tolerations: its tolerations (the GPU taint's, or none).
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.CHECK_PARAMETERS, locals()):
        import json

        from components.common.log import get_logger
        from components.common.placement import train_placement

        get_logger(names.CHECK_PARAMETERS).info("every parameter is within its bounds")
        return train_placement(train_workers, json.loads(train_gpu))
