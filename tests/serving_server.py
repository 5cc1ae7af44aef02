"""A stand-in for TF Serving on 127.0.0.1: gRPC PredictionService and ModelService.

It loads a SavedModel and runs its real signature, so predictions are the model's own, and
answers errors with the status codes TF Serving uses (its servables/tensorflow/predict_util.cc):
NOT_FOUND for an unknown model or version, FAILED_PRECONDITION for an unknown signature,
INVALID_ARGUMENT for bad inputs or an unknown output. It records every request and response,
and can be told to fail the next calls with a given status (fault injection).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

VERSION = 1  # the one version the stand-in serves
MAX_MESSAGE = 64 * 1024 * 1024
# The typed value field of each output dtype, for answers without `tensor_content`.
VALUE_FIELDS = {tf.float32: "float_val", tf.float64: "double_val", tf.int64: "int64_val"}


class ServingStandIn(
    prediction_service_pb2_grpc.PredictionServiceServicer,
    model_service_pb2_grpc.ModelServiceServicer,
):
    """The servicer, and the handle tests use: `target`, `requests`, `responses`, `fail_next`.

    `value_fields` answers with float_val/int64_val instead of tensor_content (TF Serving may
    send either); `available = False` makes GetModelStatus report the version still LOADING.
    """

    def __init__(self, model_dir: Path, model_name: str = "mnist", value_fields: bool = False):
        self.model = tf.saved_model.load(str(model_dir))
        self.model_name, self.value_fields = model_name, value_fields
        self.available = True
        self.target = ""  # set once the server listens
        self.requests: list[predict_pb2.PredictRequest] = []
        self.responses: list[predict_pb2.PredictResponse] = []
        self._faults: list[grpc.StatusCode] = []
        self._lock = threading.Lock()

    def fail_next(self, n: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        """Answer the next `n` Predict calls with `code`, as a restarting server would."""
        with self._lock:
            self._faults.extend([code] * n)

    def reset(self) -> None:
        """Forget recorded calls and pending faults (between tests sharing one server)."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.responses.clear()
        self.available = True

    def Predict(self, request, context):  # noqa: N802 - the gRPC method's name
        self._record_and_inject(request, context)
        name, signature = self._signature(request.model_spec, context)
        outputs = self._run(signature, request.inputs, context)
        wanted = list(request.output_filter) or sorted(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"output tensor alias not found: {unknown}"
            )
        response = predict_pb2.PredictResponse(
            model_spec=model_pb2.ModelSpec(name=self.model_name, signature_name=name)
        )
        response.model_spec.version.value = VERSION
        for key in wanted:
            response.outputs[key].CopyFrom(self._encode(outputs[key].numpy()))
        with self._lock:
            self.responses.append(response)
        return response

    def GetModelStatus(self, request, context):  # noqa: N802 - the gRPC method's name
        if request.model_spec.name != self.model_name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find any versions of model {request.model_spec.name}",
            )
        status = get_model_status_pb2.ModelVersionStatus
        state = status.AVAILABLE if self.available else status.LOADING
        return get_model_status_pb2.GetModelStatusResponse(
            model_version_status=[status(version=VERSION, state=state)]
        )

    def _record_and_inject(self, request, context) -> None:
        copy = predict_pb2.PredictRequest()
        copy.CopyFrom(request)
        with self._lock:
            self.requests.append(copy)
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            context.abort(fault, f"injected fault: {fault.name}")

    def _signature(self, model_spec, context):
        """(name, concrete function) the request names, or NOT_FOUND / FAILED_PRECONDITION."""
        version = model_spec.version.value if model_spec.HasField("version") else VERSION
        if model_spec.name != self.model_name or version != VERSION:
            servable = f"Specific({model_spec.name}, {version})"
            if not model_spec.HasField("version"):
                servable = f"Latest({model_spec.name})"
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {servable}")
        name = model_spec.signature_name or "serving_default"
        if name not in self.model.signatures:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.'
            )
        return name, self.model.signatures[name]

    def _run(self, signature, inputs, context) -> dict:
        """The signature's outputs for the request's inputs, or INVALID_ARGUMENT."""
        specs = signature.structured_input_signature[1]
        if set(inputs) != set(specs):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input keys {sorted(inputs)} differ from the signature's {sorted(specs)}",
            )
        try:
            arrays = {key: tf.make_ndarray(proto) for key, proto in inputs.items()}
            for key, array in arrays.items():
                _check_input(key, array, specs[key])
            return signature(**{key: tf.constant(a) for key, a in arrays.items()})
        except (ValueError, TypeError, tf.errors.OpError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad input: {e}")

    def _encode(self, array):
        proto = tf.make_tensor_proto(array)
        field = VALUE_FIELDS.get(tf.as_dtype(array.dtype))
        if self.value_fields and field:
            proto.ClearField("tensor_content")
            getattr(proto, field).extend(array.ravel().tolist())
        return proto


def _check_input(key: str, array, tensor_spec: tf.TensorSpec) -> None:
    if tf.as_dtype(array.dtype) != tensor_spec.dtype:
        raise ValueError(f"{key}: expects {tensor_spec.dtype.name}, got {array.dtype}")
    if not tensor_spec.shape.is_compatible_with(array.shape):
        raise ValueError(f"{key}: expects shape {tensor_spec.shape}, got {list(array.shape)}")


@contextlib.contextmanager
def serve_saved_model(
    model_dir: Path, model_name: str = "mnist", value_fields: bool = False
) -> Iterator[ServingStandIn]:
    """Serve `model_dir` on 127.0.0.1 (a free port); yields the stand-in, `target` set."""
    stand_in = ServingStandIn(model_dir, model_name, value_fields)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    server = grpc.server(ThreadPoolExecutor(max_workers=4), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(stand_in, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    if not port:
        raise RuntimeError("the gRPC stand-in could not bind a port on 127.0.0.1")
    server.start()
    stand_in.target = f"127.0.0.1:{port}"
    try:
        yield stand_in
    finally:
        server.stop(grace=1.0).wait(timeout=5.0)
