"""Batch prediction over a local folder and an S3 prefix: rows, errors, thresholds, publishing."""

import csv
import io
import logging
import threading

import numpy as np
import pytest

from components.batch_predict import report, stream
from components.batch_predict.model import BatchPredictError, load_classifier
from components.batch_predict.predictor import batch_predict
from components.batch_predict.stream import load_one, preprocess_stream
from components.common import spec
from components.store import LocalStore, open_store
from tests.unit import digit_images
from tests.unit.digit_images import classify, encode, render, sample_files

HEADER = ",".join(spec.PREDICTIONS_HEADER)


@pytest.fixture(scope="module")
def samples():
    return sample_files()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return digit_images.save_model(tmp_path_factory.mktemp("model") / "1")


@pytest.fixture
def log_lines():
    """The batch-predict log, one entry per line."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.extend(record.getMessage().splitlines())

    handler = Collect()
    logger = logging.getLogger("mnist.batch_predict")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """(images URI, results URI, S3 endpoint): in a folder, or on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "images"), str(tmp_path / "results"), ""
    root = f"s3://{request.getfixturevalue('s3_bucket')}"
    return f"{root}/in/images", f"{root}/out", request.getfixturevalue("s3_env")


def put(where, files: dict[str, bytes]) -> None:
    images_uri, _, endpoint = where
    store = open_store(images_uri, endpoint)
    for key, data in files.items():
        store.put_bytes(key, data)


def read_rows(where) -> tuple[str, list[dict]]:
    _, results_uri, endpoint = where
    text = open_store(results_uri, endpoint).get_bytes(spec.PREDICTIONS_CSV).decode()
    return text.splitlines()[0], list(csv.DictReader(io.StringIO(text)))


def published(where) -> bool:
    _, results_uri, endpoint = where
    return open_store(results_uri, endpoint).stat(spec.PREDICTIONS_CSV) is not None


def test_every_image_gets_a_row_and_bad_ones_an_error(where, samples, log_lines):
    files, expected = samples
    put(where, files)
    summary = batch_predict(where[0], where[1], classify, s3_endpoint=where[2], batch_size=4)
    failures = sum(isinstance(v, str) for v in expected.values())
    assert summary["total"] == len(expected)
    assert (summary["predicted"], summary["failed"]) == (len(expected) - failures, failures)
    assert summary["predictions_uri"].endswith(f"{where[1].rstrip('/')}/{spec.PREDICTIONS_CSV}")
    header, rows = read_rows(where)
    assert header == HEADER
    assert [r["image"] for r in rows] == sorted(expected)
    # the other files are skipped, and named with the reason in the log and the UI table
    assert summary["skipped"] == 2
    assert "README.txt (not an image type read here)" in summary["markdown"]
    assert any("skipped labels.csv: not an image type" in line for line in log_lines)
    for row in rows:
        want = expected[row["image"]]
        if isinstance(want, int):
            assert (row["prediction"], row["error"]) == (str(want), "")
            assert 0.0 < float(row["confidence"]) <= 1.0
        else:
            assert row["prediction"] == row["confidence"] == ""
            assert want in row["error"]
    assert "7.jpg: The result: [7]" in log_lines
    assert "sub/2.Png: The result: [2]" in log_lines
    assert "empty.jpg: error: empty file" in log_lines


def test_decoder_processes_give_the_same_rows(where, samples):
    put(where, samples[0])
    batch_predict(*where[:2], classify, where[2], batch_size=5, processes=0)
    in_threads = read_rows(where)
    summary = batch_predict(*where[:2], classify, where[2], batch_size=5, processes=2)
    assert read_rows(where) == in_threads
    assert summary["total"] == len(samples[1])


def test_the_exported_model_classifies_from_s3(s3_env, s3_bucket, model_dir):
    root = f"s3://{s3_bucket}"
    store = open_store(f"{root}/images", s3_env)
    for digit in range(10):
        store.put_bytes(f"{digit}.PNG", encode(render(digit, light=digit % 2 == 0), "PNG"))
    summary = batch_predict(f"{root}/images", f"{root}/images", load_classifier(model_dir), s3_env)
    assert (summary["predicted"], summary["failed"]) == (10, 0)
    rows = list(csv.DictReader(io.StringIO(store.get_bytes(spec.PREDICTIONS_CSV).decode())))
    assert [r["prediction"] for r in rows] == [str(d) for d in range(10)]
    again = batch_predict(f"{root}/images", f"{root}/images", classify, s3_env)
    assert again["total"] == 10  # the CSV beside the images is not taken for an image


def test_load_classifier_checks_the_signature(model_dir, tmp_path):
    import tensorflow as tf

    probabilities, classes = load_classifier(model_dir)(np.zeros((3, 28, 28), np.uint8))
    assert probabilities.shape == (3, 10) and classes.shape == (3,)
    assert classes.dtype == np.int64 and probabilities.dtype == np.float32
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"other": module.f})
    with pytest.raises(BatchPredictError, match="no 'serving_default' signature"):
        load_classifier(tmp_path / "m")


@pytest.mark.parametrize(
    ("shape", "dtype", "outputs", "message"),
    [
        ([None, 784], "float32", ("probabilities", "classes"), r"takes float32 \(None, 784\)"),
        ([None, 28, 28], "uint8", ("probabilities",), r"lacks \['classes'\]"),
    ],
)
def test_load_classifier_refuses_another_models_signature(tmp_path, shape, dtype, outputs, message):
    """A SavedModel of another kind failed on its first batch with TensorFlow's own error,
    which `predict` showed as a traceback."""
    import tensorflow as tf

    def serve(images):
        return {name: tf.zeros([tf.shape(images)[0]]) for name in outputs}

    module = tf.Module()
    module.f = tf.function(serve, input_signature=[tf.TensorSpec(shape, dtype, name="images")])
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.f})
    with pytest.raises(BatchPredictError, match=message):
        load_classifier(tmp_path / "m")


@pytest.mark.parametrize(("limit", "ok"), [(0.6, True), (0.5, False), (0.0, False)])
def test_the_step_fails_past_the_failed_share_and_publishes_nothing(where, limit, ok):
    good = {f"{d}.png": encode(render(d), "PNG") for d in (1, 2)}
    put(where, {**good, "a.jpg": b"", "b.jpg": b"junk", "c.gif": b"GIF89a"})  # 3 of 5 fail
    if ok:
        summary = batch_predict(*where[:2], classify, where[2], max_failed_fraction=limit)
        assert (summary["failed"], summary["total"]) == (3, 5) and published(where)
        return
    open_store(where[1], where[2]).put_bytes(spec.PREDICTIONS_CSV, b"an earlier run's")
    with pytest.raises(BatchPredictError, match=r"3 of 5 images .* failed \(60.0%") as e:
        batch_predict(*where[:2], classify, where[2], max_failed_fraction=limit)
    assert "a.jpg: empty file" in str(e.value)
    assert not published(where)


def test_nothing_classified_is_a_failure_whatever_the_threshold(where):
    put(where, {"a.jpg": b"", "b.png": b"junk"})
    with pytest.raises(BatchPredictError, match="no image under .* could be classified"):
        batch_predict(*where[:2], classify, where[2], max_failed_fraction=1.0)
    assert not published(where)


def test_no_images_at_all_is_a_failure(where):
    put(where, {"notes.txt": b"hello"})
    with pytest.raises(
        BatchPredictError,
        match=r"no images \(.jpg, .jpeg, .png, .bmp, .gif, .tif, .tiff, .webp, .heic, .heif\)",
    ):
        batch_predict(*where[:2], classify, where[2])


def test_a_broken_model_fails_the_step_and_publishes_nothing(where):
    put(where, {"1.png": encode(render(1), "PNG")})

    def broken(images):
        raise RuntimeError("shape mismatch")

    with pytest.raises(BatchPredictError, match="the model failed on a batch: shape mismatch"):
        batch_predict(*where[:2], broken, where[2])
    assert not published(where)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"workers": 0}, "workers"),
        ({"max_failed_fraction": 1.5}, "max_failed_fraction"),
        ({"max_failed_fraction": -0.1}, "max_failed_fraction"),
        ({"processes": -1}, "processes"),
    ],
)
def test_bad_arguments_name_the_parameter(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        batch_predict(str(tmp_path), str(tmp_path), classify, **kwargs)


def test_one_image_file_and_file_uri(tmp_path):
    (tmp_path / "7.JPG").write_bytes(encode(render(7), "JPEG"))
    summary = batch_predict(f"file://{tmp_path}/7.JPG", str(tmp_path / "out"), classify)
    assert (summary["predicted"], summary["total"]) == (1, 1)
    assert "| 7.JPG | 7 |" in summary["markdown"]


def test_the_markdown_table_is_capped_and_escaped(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "TABLE_ROWS", 3)
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a|b.png", "c.png", "d.png", "e.png", "f.png"):
        (folder / name).write_bytes(encode(render(1), "PNG"))
    table = batch_predict(str(folder), str(tmp_path / "out"), classify)["markdown"]
    assert "| image | prediction | confidence | error |" in table
    assert "| a\\|b.png | 1 |" in table
    assert table.count("\n| ") == 4  # header and three rows
    assert "... and 2 more rows in predictions.csv" in table


def test_a_vanished_object_becomes_an_error_row(tmp_path):
    item = load_one(LocalStore(tmp_path), "gone.png")
    assert item.pixels is None and "no object" in item.error and "gone.png" in item.error


class CountingStore:
    """A store of identical images that counts GETs, to see how far the pool runs ahead."""

    def __init__(self, data: bytes):
        self.data, self.gets, self.lock = data, 0, threading.Lock()

    def get_bytes(self, key: str) -> bytes:
        with self.lock:
            self.gets += 1
        return self.data


@pytest.mark.parametrize("processes", [0, 2])
def test_the_stream_holds_a_bounded_window_however_many_images(processes):
    store = CountingStore(encode(render(4, (28, 28)), "PNG"))
    keys = [f"{i}.png" for i in range(5000)]
    window, most_ahead = 64, 0
    images = preprocess_stream(store, keys, workers=4, window=window, processes=processes)
    for consumed, item in enumerate(images):
        assert item.key == keys[consumed]  # in listing order
        with store.lock:
            most_ahead = max(most_ahead, store.gets - consumed)
    assert store.gets == len(keys)
    assert most_ahead <= window + 8  # the window plus one chunk, never the whole listing


@pytest.mark.parametrize(
    ("quota", "expected"), [("max 100000", "all"), ("100000 100000", 1), ("150000 100000", 2)]
)
def test_decoder_processes_respect_a_pod_cpu_limit(tmp_path, monkeypatch, quota, expected):
    (tmp_path / "cpu.max").write_text(quota + "\n")
    monkeypatch.setattr(stream, "_CGROUP_QUOTAS", ((tmp_path / "cpu.max",) * 2,))
    monkeypatch.setattr(stream.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert stream.available_cpus() == (8 if expected == "all" else expected)
