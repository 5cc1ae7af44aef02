"""Export: the serving signature, atomic versioned publishing, the infra check, warm-up records."""

import json
from pathlib import Path

import numpy as np
import pytest

from components.common import spec
from components.export import exporter, verify
from components.store import LocalStore, open_store
from components.train import model as train_model


@pytest.fixture(scope="module")
def model():
    return train_model.build_model(seed=7)


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "saved_model"
    exporter.save_serving_model(model, path)
    return path


def test_signature_takes_uint8_and_returns_probabilities_and_classes(model, saved):
    import tensorflow as tf

    signature = tf.saved_model.load(str(saved)).signatures[spec.SIGNATURE]
    (arg,) = signature.structured_input_signature[1].values()
    assert arg.dtype == tf.uint8 and arg.shape.as_list() == [None, 28, 28]
    assert arg.name == spec.SIGNATURE_INPUT
    sample = exporter.check_sample(n=5)
    out = signature(**{spec.SIGNATURE_INPUT: tf.constant(sample)})
    np.testing.assert_allclose(
        out[spec.OUTPUT_PROBABILITIES].numpy(), np.asarray(model(sample)), atol=1e-5
    )
    assert out[spec.OUTPUT_CLASSES].numpy().tolist() == np.asarray(model(sample)).argmax(1).tolist()


def test_infra_check_passes_and_catches_a_mismatch(model, saved):
    sample = exporter.check_sample(n=4)
    exporter.verify_in_fresh_process(saved, sample, np.asarray(model(sample)))
    with pytest.raises(exporter.ExportError, match="failed its check"):
        exporter.verify_in_fresh_process(saved, sample, np.full((4, 10), 0.1, np.float32))


def test_warmup_requests_are_prediction_logs(saved, tmp_path):
    import shutil

    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    copy = tmp_path / "m"
    shutil.copytree(saved, copy)
    exporter.write_warmup_requests(copy, exporter.check_sample(n=8))
    records = list(tf.data.TFRecordDataset(str(copy / exporter.WARMUP_FILE)))
    assert len(records) == 2
    log = prediction_log_pb2.PredictionLog.FromString(records[1].numpy())
    request = log.predict_log.request
    assert request.model_spec.signature_name == spec.SIGNATURE
    assert tf.make_ndarray(request.inputs[spec.SIGNATURE_INPUT]).shape == (8, 28, 28)


class RecordingStore(LocalStore):
    """A real local store that remembers the order of uploads."""

    def __init__(self, root):
        super().__init__(root)
        self.puts: list[str] = []

    def put_file(self, key, src, sha256=None, exclusive=False):
        self.puts.append(key)
        super().put_file(key, src, sha256, exclusive)


def test_publish_numbers_versions_and_writes_saved_model_last(saved, tmp_path):
    store = RecordingStore(tmp_path / "store")
    assert exporter.publish(saved, store, "models/mnist") == (1, store.uri("models/mnist/1"))
    assert store.puts[-1] == "models/mnist/1/saved_model.pb"
    assert any(key.startswith("models/mnist/1/variables/") for key in store.puts)
    version, _ = exporter.publish(saved, store, "models/mnist")
    assert version == 2
    assert (tmp_path / "store/models/mnist/1/saved_model.pb").is_file()


def test_publish_skips_partial_and_foreign_folders(saved, tmp_path):
    store = open_store(str(tmp_path / "store"))
    store.put_bytes("models/mnist/3/variables/variables.index", b"partial, no saved_model.pb")
    store.put_bytes("models/mnist/notes/readme.txt", b"not a version")
    version, _ = exporter.publish(saved, store, "models/mnist")
    assert version == 4
    assert store.get_bytes("models/mnist/3/variables/variables.index").startswith(b"partial")


def test_publish_to_s3(saved, s3_bucket, s3_env):
    store = open_store(f"s3://{s3_bucket}/root", s3_env)
    version, uri = exporter.publish(saved, store, "models/mnist")
    assert (version, uri) == (1, f"s3://{s3_bucket}/root/models/mnist/1")
    info = store.stat("models/mnist/1/saved_model.pb")
    assert info is not None and info.sha256


# -- the infra check's verdicts (components/export/verify.py), in this process ---------------


def verify_with(saved: Path, sample: np.ndarray, expected: np.ndarray, tmp_path: Path) -> int:
    np.save(tmp_path / "sample.npy", sample)
    np.save(tmp_path / "expected.npy", expected)
    return verify.main([str(saved), str(tmp_path / "sample.npy"), str(tmp_path / "expected.npy")])


def test_the_infra_check_passes_within_its_tolerance_and_says_how_many(
    model, saved, tmp_path, capsys
):
    sample = exporter.check_sample(n=6)
    expected = np.asarray(model(sample)) + 5e-5  # within atol=1e-4
    assert verify_with(saved, sample, expected, tmp_path) == 0
    assert capsys.readouterr().out == "6 predictions match the trained model\n"


def test_the_infra_check_feeds_the_signature_uint8_whatever_the_samples_type(
    model, saved, tmp_path, capsys
):
    sample = exporter.check_sample(n=3)
    expected = np.asarray(model(sample))
    assert verify_with(saved, sample.astype(np.int64), expected, tmp_path) == 0
    assert capsys.readouterr().out == "3 predictions match the trained model\n"


@pytest.mark.parametrize(
    "change, line",
    [
        (lambda p: p + 2e-3, "probabilities differ: max abs diff 0.002"),
        (lambda p: p[:3], "probabilities of shape (4, 10), not (3, 10)"),
    ],
    ids=["values", "shape"],
)
def test_the_infra_check_fails_on_other_probabilities_and_says_how(
    model, saved, tmp_path, capsys, change, line
):
    sample = exporter.check_sample(n=4)
    assert verify_with(saved, sample, change(np.asarray(model(sample))), tmp_path) == 1
    assert capsys.readouterr().out == f"{line}\n"


def test_the_infra_check_fails_on_classes_that_are_not_the_argmax(tmp_path, capsys):
    """A serving signature whose classes disagree with its own probabilities."""
    import tensorflow as tf

    class Contrary(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8)])
        def serve(self, images):
            n = tf.shape(images)[0]
            probabilities = tf.one_hot(tf.fill([n], 3), 10)
            return {
                spec.OUTPUT_PROBABILITIES: probabilities,
                spec.OUTPUT_CLASSES: tf.argmin(probabilities, axis=1),
            }

    module = Contrary()
    tf.saved_model.save(
        module, str(tmp_path / "contrary"), signatures={spec.SIGNATURE: module.serve}
    )
    sample = exporter.check_sample(n=2)
    expected = np.eye(10, dtype=np.float32)[[3, 3]]
    assert verify_with(tmp_path / "contrary", sample, expected, tmp_path) == 1
    assert capsys.readouterr().out == "classes differ from the argmax of the probabilities\n"


# -- the export step's work, end to end in this process --------------------------------------


def test_export_publishes_a_checked_version_with_its_lineage_and_drops_the_checkpoints(
    model, tmp_path, caplog
):
    from components.common import provenance

    model_dir, store = tmp_path / "model", LocalStore(tmp_path / "store")
    model_dir.mkdir()
    model.save(model_dir / spec.MODEL_FILE)
    checkpoints = store.uri("checkpoints/r1")
    lineage = {"dataset_digest": "d1", "run": {"id": "r1"}, "checkpoints_uri": checkpoints}
    (model_dir / provenance.PROVENANCE_FILE).write_text(json.dumps(lineage))
    for name in ("epoch-0001/latest.weights.h5", "LATEST.json"):
        store.put_bytes(f"checkpoints/r1/{name}", b"x")
    caplog.set_level("INFO", logger="mnist")

    meta = exporter.export_from_artifact(
        model_dir, tmp_path / "work", store, "models/mnist", tmp_path / "artifact", "t-7", ""
    )

    digest = provenance.folder_digest(tmp_path / "artifact")
    assert meta == {
        "published_uri": store.uri("models/mnist/1"),
        "version": 1,
        "signature": spec.SIGNATURE,
        "saved_model_digest": digest,
        "dataset_digest": "d1",
    }
    version = tmp_path / "store/models/mnist/1"
    record = json.loads((version / provenance.PROVENANCE_FILE).read_text())
    assert record.pop("exported_at")
    assert record == {
        "dataset_digest": "d1",
        "run": {"id": "r1", "export_task_id": "t-7"},
        "saved_model_digest": digest,
    }
    assert (
        provenance.folder_digest(version, skip=(provenance.PROVENANCE_FILE, "CLAIM.json")) == digest
    )
    assert (version / exporter.WARMUP_FILE).is_file() and (
        version / exporter.SAVED_MODEL_PB
    ).is_file()
    assert not list(store.list("checkpoints/r1"))
    assert f"removed the run's 2 checkpoint file(s) at {checkpoints}" in caplog.messages


def test_a_model_without_lineage_is_exported_with_what_export_knows(model, tmp_path):

    store = LocalStore(tmp_path / "store")
    sample = exporter.check_sample(n=8)
    meta = exporter.export_and_publish(model, tmp_path / "work", store, "models/mnist", sample)
    assert (meta["version"], meta["dataset_digest"]) == (1, "")
    record = json.loads((tmp_path / "store/models/mnist/1/provenance.json").read_text())
    assert set(record) == {"saved_model_digest", "exported_at"}
    assert record["saved_model_digest"] == meta["saved_model_digest"]
    assert list(store.list("checkpoints")) == []


def test_provenance_names_tensorflows_version_from_the_cpu_only_distribution(monkeypatch):
    """The laptop venv installs tensorflow-cpu (requirements/overrides.txt): the model's
    provenance still records TensorFlow's version, under `tensorflow`."""
    from importlib.metadata import PackageNotFoundError

    from components.common import provenance

    installed = {"tensorflow-cpu": "2.21.0", "kfp": "2.17.3"}

    def version(name):
        if name not in installed:
            raise PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(provenance, "version", version)
    found = provenance.versions()
    assert found["tensorflow"] == "2.21.0" and found["kfp"] == "2.17.3"
    assert "tensorflow-cpu" not in found and "keras" not in found
