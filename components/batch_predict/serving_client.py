"""Batch prediction through a running TF Serving: its gRPC `PredictionService.Predict`.

`grpc_classifier` returns a callable with the same contract as `model.load_classifier`'s
(uint8 images [N, 28, 28] -> probabilities float32 [N, 10], classes int64 [N]), so
`batch_predict` writes the same CSV whichever way the model runs. This module holds the
client: the channel, the retries of UNAVAILABLE and DEADLINE_EXCEEDED, the errors that say
what to check, and the readiness check; the messages themselves are serving_tensors.py's.

Importing tensorflow-serving-api's generated modules imports all of TensorFlow (they import
`tensorflow.core.framework.*_pb2`, whose parent package is `tensorflow`; about 5 s), so they are
imported only where a request is built or read. The endpoint check lives in
components/common/endpoints.py, cheap enough to validate a pipeline parameter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
import numpy as np

from components.batch_predict.serving_tensors import ServingError, decode_outputs, images_to_tensor
from components.common import spec
from components.common.endpoints import check_target
from components.common.log import get_logger

if TYPE_CHECKING:
    from tensorflow_serving.apis import predict_pb2

log = get_logger("batch_predict.serving")

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_BACKOFF = 10.0  # seconds: the longest single wait between attempts
# What to check, by status code, for the failures a user can fix.
HINTS = {
    grpc.StatusCode.NOT_FOUND: "is model_name the --model_name TF Serving serves, with a version "
    "loaded?",
    grpc.StatusCode.FAILED_PRECONDITION: f"does the model have a {spec.SIGNATURE!r} signature?",
    grpc.StatusCode.INVALID_ARGUMENT: f"does the signature take uint8 {spec.SIGNATURE_INPUT!r} "
    "[N, 28, 28] and return the expected outputs?",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "use a smaller batch or raise max_message_mb",
}


def call_with_retries(
    rpc: Callable, request, target: str, timeout: float, attempts: int, backoff: float
):
    """`rpc(request)`, retried on UNAVAILABLE / DEADLINE_EXCEEDED with capped exponential backoff.

    Predict and GetModelStatus have no side effects, so a retry cannot do anything twice. Any
    other status, or the last retryable one, becomes a ServingError naming target and code.
    """
    attempt = 1
    while True:
        try:
            return rpc(request, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            if code not in RETRYABLE:
                raise _error(target, code, details) from e
            if attempt >= attempts:
                raise _error(target, code, f"{details} (after {attempts} attempts)") from e
            delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            error = _error(target, code, details)
            log.warning("%s; retry %d/%d in %.1fs", error, attempt, attempts - 1, delay)
            time.sleep(delay)
            attempt += 1


def _error(target: str, code: grpc.StatusCode, details: str) -> ServingError:
    """One line: where, which status, what the server said, and what to check."""
    if code in RETRYABLE:
        hint = f"is TF Serving running and reachable at {target}, on its gRPC port?"
    else:
        hint = HINTS.get(code, "")
    message = f"TF Serving at {target}: gRPC status {code.name}: {details}"
    return ServingError(f"{message} ({hint})" if hint else message, code)


class ServingClassifier:
    """A Classifier (see model.py) whose model runs in TF Serving, reached over gRPC.

    One channel per classifier, opened lazily by gRPC on the first call; `close()` (or `with`)
    releases it, and garbage collection does too.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        timeout: float,
        max_message_mb: int,
        attempts: int,
        backoff: float,
    ):
        self.target = check_target(target)
        _check_options(model_name, timeout, max_message_mb, attempts, backoff)
        self.model_name, self.timeout = model_name, timeout
        self.attempts, self.backoff = attempts, backoff
        self.max_bytes = max_message_mb * 1024 * 1024
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._channel = open_channel(self.target, self.max_bytes)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel).Predict

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities float32 [N, 10], classes int64 [N]) for uint8 images [N, 28, 28]."""
        request = self.request(images)
        response = call_with_retries(
            self._predict, request, self.target, self.timeout, self.attempts, self.backoff
        )
        try:
            return decode_outputs(response, len(images))
        except ServingError as e:
            raise ServingError(
                f"TF Serving at {self.target}, model {self.model_name!r}: {e}"
            ) from e

    def request(self, images: np.ndarray) -> predict_pb2.PredictRequest:
        """The PredictRequest for a batch; refused here if it exceeds the message limit."""
        from tensorflow_serving.apis import model_pb2, predict_pb2

        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=self.model_name, signature_name=spec.SIGNATURE),
            output_filter=[spec.OUTPUT_PROBABILITIES, spec.OUTPUT_CLASSES],
        )
        request.inputs[spec.SIGNATURE_INPUT].CopyFrom(images_to_tensor(images))
        if request.ByteSize() > self.max_bytes:
            raise ServingError(
                f"a batch of {len(images)} images is {request.ByteSize()} bytes, more than "
                f"max_message_mb ({self.max_bytes // 2**20} MB): use a smaller batch_size"
            )
        return request

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ServingClassifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def grpc_classifier(
    target: str,
    model_name: str = "mnist",
    timeout: float = 30.0,
    max_message_mb: int = 64,
    *,
    attempts: int = 5,
    backoff: float = 1.0,
) -> ServingClassifier:
    """A Classifier that sends each batch to TF Serving's `PredictionService.Predict` at `target`.

    `target` is the gRPC "host:port" (TF Serving's port 8500), `model_name` its --model_name;
    each call may take `timeout` seconds and is tried up to `attempts` times while the server
    is UNAVAILABLE or slow (waits of `backoff`, doubling, at most MAX_BACKOFF seconds).
    Raises ValueError for a bad target or option, at once, before any network I/O.
    """
    return ServingClassifier(target, model_name, timeout, max_message_mb, attempts, backoff)


def check_model_ready(
    target: str,
    model_name: str = "mnist",
    timeout: float = 10.0,
    *,
    attempts: int = 5,
    backoff: float = 1.0,
) -> list[int]:
    """The versions of `model_name` TF Serving reports AVAILABLE (ModelService.GetModelStatus).

    The same test as TF Serving's REST `GET /v1/models/<name>` that a readiness probe uses; it
    says the model is loaded, not that Predict will succeed. Raises ServingError when the
    server cannot be reached, does not know the model, or has no version AVAILABLE yet.
    """
    check_target(target)
    _check_options(model_name, timeout, 1, attempts, backoff)
    from tensorflow_serving.apis import get_model_status_pb2, model_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name=model_name)
    )
    with open_channel(target, 4 * 1024 * 1024) as channel:
        rpc = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
        response = call_with_retries(rpc, request, target, timeout, attempts, backoff)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    versions = sorted(s.version for s in response.model_version_status if s.state == available)
    if not versions:
        states = {
            s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
            for s in response.model_version_status
        }
        raise ServingError(
            f"TF Serving at {target} has no version of {model_name!r} AVAILABLE: "
            f"{states or 'no versions'}"
        )
    return versions


def open_channel(target: str, max_bytes: int) -> grpc.Channel:
    """An insecure channel (in-cluster traffic) with send and receive limits of `max_bytes`."""
    options = [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
    ]
    return grpc.insecure_channel(target, options=options)


def _check_options(
    model_name: str, timeout: float, max_message_mb: int, attempts: int, backoff: float
) -> None:
    if not model_name or any(c.isspace() or c == "/" for c in model_name):
        raise ValueError(f"model_name must be TF Serving's --model_name, got {model_name!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be more than 0 seconds, got {timeout}")
    if not 1 <= max_message_mb <= 2047:  # gRPC limits are int32 bytes
        raise ValueError(f"max_message_mb must be within 1..2047, got {max_message_mb}")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if backoff < 0:
        raise ValueError(f"backoff must be 0 or more, got {backoff}")
