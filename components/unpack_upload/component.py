"""KFP interface of the unpack-and-upload step: validate the IDX files, then upload them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import SLIM_IMAGE


@dsl.component(base_image=SLIM_IMAGE, install_kfp_package=False)
def unpack_and_upload(
    dataset: Input[Dataset],
    store_uri: str,
    s3_endpoint: str,
    verify_checksums: bool,
    uploaded: Output[Dataset],
) -> NamedTuple("Outputs", dataset_uri=str):
    """Extract and validate every IDX file, then upload them under the store's dataset prefix.

    Args:
        dataset: the files download fetched (four .gz IDX files, or one archive).
        store_uri: the store root (s3://bucket/prefix or a local folder).
        s3_endpoint: S3 endpoint (host:port or http(s)://host:port); empty for AWS or a folder.
        verify_checksums: require MNIST's exact record counts and shapes.
        uploaded: counts, sizes, each file's sha256 and the dataset digest.

    Returns:
        dataset_uri: the URI of the uploaded dataset (its manifest is written last).
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.UNPACK_UPLOAD, locals()):
        import json
        import tempfile
        from pathlib import Path

        from components.common import spec
        from components.store import open_store
        from components.unpack_upload.unpack import unpack_and_upload as unpack

        store = open_store(store_uri, s3_endpoint)
        with tempfile.TemporaryDirectory() as work:
            meta = unpack(
                Path(dataset.path),
                store,
                spec.DATASET_PREFIX,
                canonical=verify_checksums,
                workdir=Path(work),
                source=dataset.metadata.get("source", ""),
            )
        uploaded.metadata.update(meta)
        Path(uploaded.path).write_text(json.dumps(meta, indent=2))
        return (meta["dataset_uri"],)
