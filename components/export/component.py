"""KFP interface of the export step: SavedModel in TF Serving's layout, published to the store."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def export(
    model: Input[Model], store_uri: str, s3_endpoint: str, task_id: str, exported: Output[Model]
) -> NamedTuple("Outputs", model_uri=str):
    """Publish the model as the next `<store>/models/mnist/<version>/` for TF Serving.

    Args:
        model: the trained Keras model and its provenance.json (from train).
        store_uri: the store root (s3://bucket/prefix or a local folder).
        s3_endpoint: S3 endpoint (host:port or http(s)://host:port); empty for AWS or a folder.
        task_id: this task's ID (dsl.PIPELINE_TASK_ID_PLACEHOLDER), for provenance.
        exported: a copy of the published SavedModel, with its URI, version and digests.

    Returns:
        model_uri: the URI of the published version folder.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.EXPORT, locals()):
        import tempfile
        from pathlib import Path

        from components.common import spec
        from components.export.exporter import export_from_artifact
        from components.store import open_store

        with tempfile.TemporaryDirectory() as work:
            meta = export_from_artifact(
                Path(model.path),
                Path(work),
                open_store(store_uri, s3_endpoint),
                spec.MODELS_PREFIX,
                Path(exported.path),
                task_id,
                s3_endpoint,
            )
        exported.metadata.update(meta)
        return (meta["published_uri"],)
