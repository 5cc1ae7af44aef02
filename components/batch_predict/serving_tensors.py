"""TF Serving's wire format: uint8 images to a request's TensorProto, a response back to arrays.

Tensors are encoded and decoded with TensorFlow's `make_tensor_proto` / `make_ndarray`
(byte-identical to the former hand-written encoding), which read both forms TF Serving may
answer with (`tensor_content` bytes or the typed `*_val` fields). What the server sends back
is checked before `batch_predict` indexes it, so a wrong shape, dtype or class fails the step
with a ServingError that says so. Apart from the client (serving_client.py), which only moves
these messages: channels, retries and readiness.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import grpc
import numpy as np

from components.common import spec
from components.common.errors import StepError

if TYPE_CHECKING:
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import predict_pb2


class ServingError(StepError, RuntimeError):
    """TF Serving refused or failed a request; `code` is the gRPC status code, if any."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code


def images_to_tensor(images: np.ndarray) -> tensor_pb2.TensorProto:
    """A DT_UINT8 TensorProto of `images` [N, H, W] (TensorFlow's own `make_tensor_proto`).

    Anything but uint8 is refused, not cast: float pixels in 0..1 cast to uint8 would be all
    black, the very train/serve mismatch the exported signature exists to prevent.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        got = getattr(images, "dtype", type(images).__name__), getattr(images, "shape", "")
        raise ValueError(f"images must be a uint8 array [N, 28, 28], got {got[0]} {got[1]}")
    import tensorflow as tf  # already loaded by tensorflow_serving's generated modules

    return tf.make_tensor_proto(images)


def tensor_to_array(proto: tensor_pb2.TensorProto, name: str) -> np.ndarray:
    """The ndarray a TensorProto holds (`tf.make_ndarray`), from `tensor_content` or from its
    typed value field, refusing what `make_ndarray` would silently pad or misread."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:  # DT_INVALID (no dtype set) or a number TensorFlow has no type for
        raise ServingError(f"output {name!r} has dtype {proto.dtype}: no TensorFlow type") from None
    if not (dtype.is_floating or dtype.is_integer):
        kind = types_pb2.DataType.Name(proto.dtype)
        raise ServingError(f"output {name!r} has dtype {kind}, expected a numeric tensor")
    shape = [d.size for d in proto.tensor_shape.dim]
    count = math.prod(shape)
    if proto.tensor_content:
        held, allowed = len(proto.tensor_content) // dtype.size, (count,)
    else:  # one typed value fills the whole tensor; make_ndarray pads any other short count
        held, allowed = len(getattr(proto, _TYPED_FIELDS.get(dtype.name, "float_val"))), (1, count)
    if held not in allowed:
        raise ServingError(f"output {name!r} holds {held} values for shape {shape}")
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as e:
        raise ServingError(f"output {name!r} cannot be read for shape {shape}: {e}") from None


_TYPED_FIELDS = {
    "float32": "float_val",
    "float64": "double_val",
    "int32": "int_val",
    "uint8": "int_val",
    "int64": "int64_val",
}


def decode_outputs(response: predict_pb2.PredictResponse, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities float32 [n, K], classes int64 [n]) from a PredictResponse, checked.

    Checked because `batch_predict` indexes the probabilities by the classes: a wrong shape or
    an out-of-range class must fail the step with a clear message, not an IndexError.
    """
    wanted = (spec.OUTPUT_PROBABILITIES, spec.OUTPUT_CLASSES)
    missing = [name for name in wanted if name not in response.outputs]
    if missing:
        raise ServingError(f"the response lacks {missing}; it has {sorted(response.outputs)}")
    probabilities, classes = (tensor_to_array(response.outputs[k], k) for k in wanted)
    if probabilities.ndim != 2 or len(probabilities) != n or classes.shape != (n,):
        raise ServingError(
            f"for {n} images the server returned {spec.OUTPUT_PROBABILITIES} "
            f"{list(probabilities.shape)} and {spec.OUTPUT_CLASSES} {list(classes.shape)}"
        )
    if n and not (classes.min() >= 0 and classes.max() < probabilities.shape[1]):
        raise ServingError(f"the server returned classes outside 0..{probabilities.shape[1] - 1}")
    return probabilities.astype(np.float32), classes.astype(np.int64)
