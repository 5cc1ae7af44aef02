"""KFP interface of the export step: SavedModel in TF Serving's layout, published to the store."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def export(model: Input[Model], store_uri: str, s3_endpoint: str, exported: Output[Model]) -> str:
    """Publish the model as the next `<store>/models/mnist/<version>/`; returns its URI."""
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.EXPORT):
        import tempfile
        from pathlib import Path

        from components.common import spec
        from components.common.store import open_store
        from components.export.exporter import export_from_artifact

        with tempfile.TemporaryDirectory() as work:
            meta = export_from_artifact(
                Path(model.path),
                Path(work),
                open_store(store_uri, s3_endpoint),
                spec.MODELS_PREFIX,
                Path(exported.path),
            )
        exported.metadata.update(meta)
        return meta["published_uri"]
