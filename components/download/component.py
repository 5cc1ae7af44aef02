"""KFP interface of the download step: fetch MNIST and verify its checksums."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import SLIM_IMAGE


@dsl.component(base_image=SLIM_IMAGE, install_kfp_package=False)
def download(source: str, verify_checksums: bool, s3_endpoint: str, dataset: Output[Dataset]):
    """Fetch the four MNIST IDX files (or one archive holding them) from `source`.

    Args:
        source: https:// or http:// base URL or archive, s3://bucket/key, or a local path.
        verify_checksums: require the sha256 digests of the original MNIST release.
        s3_endpoint: S3 endpoint for an s3:// source (host:port or http(s)://host:port).
        dataset: the fetched files; metadata: source, files, bytes, each IDX file's sha256 and
            the dataset digest.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.DOWNLOAD, locals()):
        from pathlib import Path

        from components.download.fetch import download as fetch

        dataset.metadata.update(
            fetch(
                source,
                Path(dataset.path),
                verify_checksums=verify_checksums,
                s3_endpoint=s3_endpoint,
            )
        )
