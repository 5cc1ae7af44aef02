"""The model a batch runs through: an exported SavedModel loaded as a `Classifier`.

A Classifier is any function from uint8 images [N, 28, 28] to (probabilities, classes); this
module makes one from a model version in the store (or a local folder), checking its serving
signature first, and serving_client.py makes one that calls TF Serving instead. Apart from
the batch loop so that the UI and the `predict` command can load a model without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from components.common import spec
from components.common.errors import StepError
from components.common.failure import one_line
from components.store import open_store

# images uint8 [N, 28, 28] -> (probabilities float32 [N, 10], classes int64 [N])
Classifier = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class BatchPredictError(StepError, RuntimeError):
    """The batch as a whole failed: nothing classified, too many failures, or a broken model."""


def load_model_version(model_uri: str, s3_endpoint: str, work: Path) -> Classifier:
    """Fetch one exported model version (a folder or s3:// prefix) into `work` and load it.

    `saved_model.pb` is checked for before anything is copied, and only the entries of one
    version are copied, so a mistaken URI (a bucket root, `/`) fails at once, copying nothing.
    """
    if not model_uri.strip():
        raise BatchPredictError("the model URI is empty: give an exported version folder")
    store = open_store(model_uri, s3_endpoint)
    if store.stat(spec.SAVED_MODEL_PB) is None:
        raise BatchPredictError(
            f"no SavedModel at {model_uri}: {spec.SAVED_MODEL_PB} is missing (give one version, "
            f"such as <store>/{spec.MODELS_PREFIX}/1)"
        )
    for info in store.list(""):
        if info.key.split("/", 1)[0] in spec.MODEL_VERSION_ENTRIES:
            target = work / info.key
            target.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(info.key, target)
    return load_classifier(work, model_uri)


def load_classifier(model_dir: Path, label: str = "") -> Classifier:
    """Load an exported SavedModel and return a function over batches of 28x28 uint8 images."""
    import tensorflow as tf  # only here: importing the module must stay cheap

    label = label or str(model_dir)
    try:
        loaded = tf.saved_model.load(str(model_dir))
    except Exception as e:  # noqa: BLE001 - TF raises many kinds for a corrupt SavedModel
        raise BatchPredictError(f"model {label} cannot be loaded: {one_line(e)[:200]}") from None
    if spec.SIGNATURE not in loaded.signatures:
        raise BatchPredictError(f"model {label} has no {spec.SIGNATURE!r} signature")
    serve = loaded.signatures[spec.SIGNATURE]
    inputs = serve.structured_input_signature[1]
    if set(inputs) != {spec.SIGNATURE_INPUT}:
        raise BatchPredictError(
            f"model {label}: signature {spec.SIGNATURE!r} takes {sorted(inputs)}, "
            f"expected [{spec.SIGNATURE_INPUT!r}]"
        )
    _check_signature(serve, inputs[spec.SIGNATURE_INPUT], label)

    def classify(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = serve(**{spec.SIGNATURE_INPUT: tf.constant(images, dtype=tf.uint8)})
        return out[spec.OUTPUT_PROBABILITIES].numpy(), out[spec.OUTPUT_CLASSES].numpy()

    classify.model = loaded  # the signature holds its variables only weakly
    return classify


def _check_signature(serve, images, label: str) -> None:
    """The input is uint8 [N, 28, 28] and both outputs are there: another model's signature
    would fail on the first batch, with TensorFlow's own error (a traceback in `predict`)."""
    import tensorflow as tf

    shape = images.shape
    if images.dtype != tf.uint8 or shape.rank != 3 or list(shape)[1:] != [28, 28]:
        raise BatchPredictError(
            f"model {label}: signature {spec.SIGNATURE!r} takes {images.dtype.name} {shape}, "
            "expected uint8 [N, 28, 28]"
        )
    missing = {spec.OUTPUT_PROBABILITIES, spec.OUTPUT_CLASSES} - set(serve.structured_outputs)
    if missing:
        raise BatchPredictError(
            f"model {label}: signature {spec.SIGNATURE!r} lacks {sorted(missing)}"
        )
