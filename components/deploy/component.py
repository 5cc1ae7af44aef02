"""KFP interface of the optional deploy step: serve the published model with KServe."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def deploy(
    model_uri: str,
    exported: Input[Model],
    timeout_seconds: int,
) -> NamedTuple("Outputs", url=str):
    """Create or patch the InferenceService `mnist` in the run's namespace, wait until Ready.

    Args:
        model_uri: the published version (`<store>/models/mnist/<version>`, s3://).
        exported: the SavedModel export published; its warm-up requests make the canary.
        timeout_seconds: how long to wait for the InferenceService to be Ready.

    Returns:
        url: the predictor's URL, after one canary request has been answered correctly.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.DEPLOY, locals()):
        from pathlib import Path

        from components.deploy.kserve import deploy as deploy_model

        result = deploy_model(
            model_uri, Path(exported.path) / names.WARMUP_FILE, timeout=float(timeout_seconds)
        )
        return (result["url"],)
