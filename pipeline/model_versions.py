"""Which exported model version a command uses: the one named, or a store's newest complete one.

`predict --model` and `ui --model` take a version folder (or s3:// prefix), the folder of the
versions, or a store root (its models/mnist/ prefix); "complete" is what TF Serving would load
(serving_sync: the version's saved_model.pb is there).
"""

from __future__ import annotations

from components.common import spec
from components.common.errors import StepError
from components.store import open_store


class ModelNotFound(StepError, LookupError):
    """No model version where --model points, or the store cannot be read: one line."""


def resolve_version(model_uri: str, s3_endpoint: str = "") -> str:
    """`model_uri` itself when it is a version folder (it holds saved_model.pb), else the
    newest complete version under it (a store root, or its models/mnist prefix): what `ui` and
    `predict` take as --model."""
    from components.serving_sync.sync import published_versions
    from components.store import StoreError, join

    if not model_uri.strip():
        raise ModelNotFound("the model URI is empty: give a store or a model version folder")
    try:
        store = open_store(model_uri, s3_endpoint)
        if store.stat(spec.SAVED_MODEL_PB) is not None:
            return model_uri
        for prefix in ("", spec.MODELS_PREFIX):
            versions = published_versions(store, prefix)
            if versions:
                return join(model_uri, prefix, str(versions[-1]))
    except (StoreError, ValueError, OSError) as e:
        raise ModelNotFound(f"cannot read models at {model_uri}: {e}") from None
    raise ModelNotFound(
        f"no complete model version at {model_uri} (nor under {spec.MODELS_PREFIX}/): run "
        "`make demo` or the pipeline first, or give --model a version folder"
    )
