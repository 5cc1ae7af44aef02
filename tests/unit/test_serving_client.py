"""Batch prediction through TF Serving's gRPC API, against a stand-in server on 127.0.0.1."""

import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from components.batch_predict.model import BatchPredictError, load_classifier
from components.batch_predict.predictor import batch_predict
from components.batch_predict.serving_client import check_model_ready, check_target, grpc_classifier
from components.batch_predict.serving_tensors import (
    ServingError,
    decode_outputs,
    images_to_tensor,
    tensor_to_array,
)
from components.common import spec
from components.reading.images import to_mnist
from tests.servers import free_port
from tests.serving_server import serve_saved_model
from tests.unit import digit_images
from tests.unit.digit_images import encode, render, sample_files

REPO = Path(__file__).resolve().parents[2]
FAST = {"attempts": 3, "backoff": 0.01, "timeout": 10.0}  # bounded retries, short waits


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return digit_images.save_model(tmp_path_factory.mktemp("model") / "1")


@pytest.fixture(scope="module")
def server(model_dir):
    with serve_saved_model(model_dir) as stand_in:
        yield stand_in


@pytest.fixture
def serving(server):
    """The module's server, with no recorded calls and no pending faults."""
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """uint8 [10, 28, 28]: the digits 0..9, preprocessed as batch-predict does."""
    return np.stack([to_mnist(encode(render(d, (60, 60)), "PNG")) for d in range(10)])


def write_images(folder, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_batch_predict_through_serving_writes_the_same_csv(tmp_path, model_dir, serving):
    files, expected = sample_files()
    write_images(tmp_path / "images", files)
    images = str(tmp_path / "images")
    local = batch_predict(images, str(tmp_path / "local"), load_classifier(model_dir), batch_size=4)
    with grpc_classifier(serving.target, **FAST) as classify:
        remote = batch_predict(images, str(tmp_path / "remote"), classify, batch_size=4)

    local_csv = (tmp_path / "local" / spec.PREDICTIONS_CSV).read_text()
    assert (tmp_path / "remote" / spec.PREDICTIONS_CSV).read_text() == local_csv
    assert {k: remote[k] for k in ("predicted", "failed", "total")} == {
        k: local[k] for k in ("predicted", "failed", "total")
    }
    digits = {k: v for k, v in expected.items() if isinstance(v, int)}
    assert remote["predicted"] == len(digits)
    for key, digit in digits.items():  # the model's own, meaningful predictions
        assert f"\n{key},{digit}," in local_csv
    sent = [r.inputs[spec.SIGNATURE_INPUT] for r in serving.requests]
    assert all(r.model_spec.name == "mnist" for r in serving.requests)
    assert all(r.model_spec.signature_name == spec.SIGNATURE for r in serving.requests)
    assert all(t.dtype == types_pb2.DT_UINT8 and t.tensor_content for t in sent)
    assert all([d.size for d in t.tensor_shape.dim][1:] == [28, 28] for t in sent)
    assert sum(t.tensor_shape.dim[0].size for t in sent) == len(digits)
    assert max(t.tensor_shape.dim[0].size for t in sent) <= 4


@pytest.mark.parametrize("value_fields", [False, True], ids=["tensor_content", "typed_values"])
def test_both_response_encodings_decode_to_the_local_result(model_dir, digits, value_fields):
    expected_p, expected_c = load_classifier(model_dir)(digits)
    with serve_saved_model(model_dir, value_fields=value_fields) as stand_in:
        probabilities, classes = grpc_classifier(stand_in.target, **FAST)(digits)
        encoded = stand_in.responses[-1].outputs[spec.OUTPUT_PROBABILITIES]
    assert bool(encoded.float_val) == value_fields  # the encoding asked for was the one sent
    assert bool(encoded.tensor_content) != value_fields
    assert probabilities.dtype == np.float32 and classes.dtype == np.int64
    np.testing.assert_array_equal(probabilities, expected_p)
    np.testing.assert_array_equal(classes, expected_c)
    assert classes.tolist() == list(range(10))


def test_a_wrong_model_name_fails_at_once_naming_target_and_status(serving, digits):
    with pytest.raises(ServingError) as caught:
        grpc_classifier(serving.target, model_name="mnsit", **FAST)(digits)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert "NOT_FOUND" in str(caught.value) and serving.target in str(caught.value)
    assert "model_name" in str(caught.value)
    assert len(serving.requests) == 1  # not retried


def test_a_wrong_model_name_fails_the_batch_with_the_same_message(tmp_path, serving):
    write_images(tmp_path / "images", {"7.png": encode(render(7), "PNG")})
    classify = grpc_classifier(serving.target, model_name="mnsit", **FAST)
    with pytest.raises(BatchPredictError, match=f"{serving.target}.*NOT_FOUND"):
        batch_predict(str(tmp_path / "images"), str(tmp_path / "out"), classify)
    assert not (tmp_path / "out" / spec.PREDICTIONS_CSV).exists()


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED], ids=lambda c: c.name
)
def test_transient_failures_are_retried(serving, digits, code):
    serving.fail_next(2, code)
    _, classes = grpc_classifier(serving.target, **FAST)(digits)
    assert classes.tolist() == list(range(10))
    assert len(serving.requests) == 3


def test_a_persistently_unavailable_server_fails_after_bounded_attempts(serving, digits):
    serving.fail_next(10)
    with pytest.raises(ServingError, match="after 3 attempts") as caught:
        grpc_classifier(serving.target, **FAST)(digits)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert serving.target in str(caught.value)
    assert len(serving.requests) == 3


def test_other_server_errors_are_not_retried(serving, digits):
    serving.fail_next(1, grpc.StatusCode.INTERNAL)
    with pytest.raises(ServingError, match="INTERNAL") as caught:
        grpc_classifier(serving.target, **FAST)(digits)
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert len(serving.requests) == 1


def test_nothing_listening_is_unavailable_after_bounded_attempts(digits):
    target = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServingError, match=f"{target}.*UNAVAILABLE.*after 3 attempts"):
        grpc_classifier(target, **FAST)(digits)


def test_an_input_the_signature_refuses_is_invalid_argument(serving, digits):
    with pytest.raises(ServingError, match="INVALID_ARGUMENT") as caught:
        grpc_classifier(serving.target, **FAST)(digits[:, :, :27].copy())
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(serving.requests) == 1


@pytest.mark.parametrize(
    "images", [np.zeros((2, 28, 28), np.float32), np.zeros((28, 28), np.uint8)], ids=str
)
def test_images_other_than_uint8_batches_are_refused_before_sending(serving, images):
    with pytest.raises(ValueError, match="uint8"):
        grpc_classifier(serving.target, **FAST)(images)
    assert serving.requests == []


def test_a_batch_over_the_message_limit_is_refused_before_sending(serving):
    images = np.zeros((1400, 28, 28), np.uint8)  # just over 1 MB
    with pytest.raises(ServingError, match="max_message_mb.*batch_size"):
        grpc_classifier(serving.target, max_message_mb=1, **FAST)(images)
    assert serving.requests == []


@pytest.mark.parametrize(
    "target, problem",
    [
        ("http://127.0.0.1:8500", "scheme"),
        ("grpc://tf-serving:8500", "scheme"),
        ("dns:///tf-serving:8500", "scheme"),
        ("unix:/run/serving.sock", "scheme"),
        ("tf-serving", "with the gRPC port"),
        ("tf-serving:", "with the gRPC port"),
        ("[::1]", "with the gRPC port"),
        (":8500", "host name"),
        ("tf-serving:0", "1 to 65535"),
        ("tf-serving:99999", "1 to 65535"),
        ("tf-serving:grpc", "host name"),
        ("tf-serving:8501/v1/models/mnist", "host name"),
        (" tf-serving:8500", "host name"),
        ("", "with the gRPC port"),
    ],
)
def test_bad_targets_are_refused_naming_the_parameter(target, problem):
    with pytest.raises(ValueError, match="serving_endpoint") as caught:
        grpc_classifier(target)
    assert problem in str(caught.value) and repr(target) in str(caught.value)


@pytest.mark.parametrize(
    "target", ["127.0.0.1:8500", "tf-serving.kubeflow.svc.cluster.local:8500", "[::1]:8500"]
)
def test_good_targets_are_accepted(target):
    assert check_target(target) == target


def test_checking_a_target_does_not_import_tensorflow():
    """So the pipeline can validate `serving_endpoint` when it is built, without a 5 s import."""
    code = (
        "import sys\n"
        "from components.batch_predict.serving_client import check_target\n"
        "check_target('tf-serving:8500')\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize(
    "options",
    [{"model_name": ""}, {"timeout": 0}, {"max_message_mb": 0}, {"attempts": 0}, {"backoff": -1}],
    ids=lambda o: next(iter(o)),
)
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        grpc_classifier("127.0.0.1:8500", **options)


def test_model_ready_reports_the_available_versions(serving):
    assert check_model_ready(serving.target, **FAST) == [1]
    serving.available = False
    with pytest.raises(ServingError, match="no version of 'mnist' AVAILABLE.*LOADING"):
        check_model_ready(serving.target, **FAST)
    with pytest.raises(ServingError, match="NOT_FOUND") as caught:
        check_model_ready(serving.target, "mnsit", **FAST)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "change, code",
    [
        ({"name": "other"}, grpc.StatusCode.NOT_FOUND),
        ({"signature_name": "predict"}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"input": "pixels"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"dtype": np.float32}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else v.name,
)
def test_the_stand_in_answers_like_tf_serving(serving, digits, change, code):
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(
            name=change.get("name", "mnist"),
            signature_name=change.get("signature_name", spec.SIGNATURE),
        )
    )
    images = digits.astype(change.get("dtype", np.uint8))
    tensor = tf_tensor(images)
    request.inputs[change.get("input", spec.SIGNATURE_INPUT)].CopyFrom(tensor)
    with grpc.insecure_channel(serving.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=10)
    assert caught.value.code() == code


def tf_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    import tensorflow as tf

    return tf.make_tensor_proto(array)


def test_images_encode_as_tensorflow_decodes_them(digits):
    import tensorflow as tf

    np.testing.assert_array_equal(tf.make_ndarray(images_to_tensor(digits)), digits)


def test_a_tensor_filled_with_one_value_decodes_whole():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[3])
    proto.tensor_shape.dim.add(size=4)
    assert tensor_to_array(proto, "classes").tolist() == [3, 3, 3, 3]


@pytest.mark.parametrize("dtype", [types_pb2.DT_INVALID, 999])
def test_an_output_of_no_dtype_is_a_serving_error(dtype):
    """tf.dtypes.as_dtype raises a bare TypeError for a dtype it has no type for."""
    proto = tensor_pb2.TensorProto(dtype=dtype, float_val=[0.5])
    with pytest.raises(ServingError, match=f"output 'probabilities' has dtype {int(dtype)}"):
        tensor_to_array(proto, "probabilities")


def test_a_malformed_or_unexpected_response_is_a_clear_error():
    def response(probabilities: np.ndarray, classes: np.ndarray) -> predict_pb2.PredictResponse:
        out = predict_pb2.PredictResponse()
        out.outputs[spec.OUTPUT_PROBABILITIES].CopyFrom(tf_tensor(probabilities))
        out.outputs[spec.OUTPUT_CLASSES].CopyFrom(tf_tensor(classes))
        return out

    p, c = np.full((2, 10), 0.1, np.float32), np.array([1, 2], np.int64)
    assert decode_outputs(response(p, c), 2)[1].tolist() == [1, 2]
    with pytest.raises(ServingError, match="for 3 images"):
        decode_outputs(response(p, c), 3)
    with pytest.raises(ServingError, match="outside 0..9"):
        decode_outputs(response(p, np.array([1, 10], np.int64)), 2)
    with pytest.raises(ServingError, match="lacks"):
        decode_outputs(predict_pb2.PredictResponse(), 2)
    strings = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"7"])
    with pytest.raises(ServingError, match="DT_STRING"):
        tensor_to_array(strings, "classes")
    short = tf_tensor(p)
    short.tensor_content = short.tensor_content[:-4]
    with pytest.raises(ServingError, match="holds 19 values"):
        tensor_to_array(short, "probabilities")
