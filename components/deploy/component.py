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
    s3_endpoint: str = "",
) -> NamedTuple("Outputs", url=str):
    """Serve the version `model_uri` with the InferenceService `mnist` in the run's namespace
    (KServe 0.16 or later), once it is complete in the store; wait until it is rolled out.

    Args:
        model_uri: the published version (`<store>/models/mnist/<version>`, s3://).
        exported: the SavedModel export published; its warm-up requests make the canary.
        timeout_seconds: how long to wait for KServe to roll the version out.
        s3_endpoint: the store's S3 endpoint, to check the version complete (with the store
            Secret's credentials; without them the check is skipped, with a warning).

    Returns:
        url: the predictor's URL, after one canary request has been answered correctly.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.DEPLOY, locals()):
        from pathlib import Path

        from components.deploy.kserve import deploy as deploy_model
        from components.deploy.kserve import models_store

        result = deploy_model(
            model_uri,
            Path(exported.path) / names.WARMUP_FILE,
            timeout=float(timeout_seconds),
            store=models_store(model_uri, s3_endpoint),
        )
        return (result["url"],)
