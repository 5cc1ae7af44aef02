"""The export step as TF Serving and a reader of the store see it.

Fast first, without a model: the infra check's command and verdicts (a stand-in interpreter
plays the fresh process), the version a publish claims and the line it logs, what is left
when a publish fails midway, the warm-up records, the check's fixed batch. Then real exports
of one Keras model, built once for the module: one refused for its provenance, one failing its
check, one to a folder and one to S3 (the version folder's layout, its lineage record, its
warm-up requests, the step's log lines, the artifact's copy and the run's checkpoints).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from components.common import provenance, spec
from components.common.records import RecordError
from components.export import exporter
from components.export.exporter import CLAIM_FILE, ExportError
from components.store import LocalStore, StoreError, open_store, sha256_file

PREFIX = "models/mnist"


@contextlib.contextmanager
def logged() -> list[str]:
    """The messages logged by the components (the `mnist` loggers) in the block."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, root = Keep(logging.INFO), logging.getLogger("mnist")
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


# -- the infra check's command and verdicts, with a stand-in for the fresh interpreter -------

_STAND_IN = """#!{python}
import os, shutil, sys, time
seen = {seen!r}
os.makedirs(seen, exist_ok=True)
with open(os.path.join(seen, "argv"), "w") as f:
    f.write("\\n".join(sys.argv[1:]))
for n, arg in enumerate(sys.argv[1:]):
    if arg.endswith(".npy") and os.path.isfile(arg):
        shutil.copy(arg, os.path.join(seen, f"arg{{n}}.npy"))
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
sys.stdout.flush()
time.sleep({sleep})
sys.exit({code})
"""


def stand_in(monkeypatch, tmp_path, stdout="", stderr="", code=0, sleep=0.0) -> Path:
    """Make the check's "fresh interpreter" a script that records its arguments (and copies
    the .npy files it is given) into the folder returned, prints `stdout` and `stderr`, and
    exits with `code` after `sleep` seconds."""
    seen = tmp_path / "seen"
    script = tmp_path / "python"
    script.write_text(
        _STAND_IN.format(
            python=sys.executable,
            seen=str(seen),
            stdout=stdout,
            stderr=stderr,
            sleep=sleep,
            code=code,
        )  # fmt: skip
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(script))
    return seen


@pytest.fixture
def saved_model(tmp_path) -> Path:
    """A folder shaped like a SavedModel (the stand-in never reads it)."""
    folder = tmp_path / "work" / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


def test_the_check_runs_the_verify_module_on_the_model_the_batch_and_the_expected_output(
    monkeypatch, tmp_path, saved_model
):
    seen = stand_in(
        monkeypatch, tmp_path, stdout="loading\n3 predictions match the trained model\n"
    )
    sample = exporter.check_sample(n=3)
    expected = np.random.default_rng(1).random((3, 10), dtype=np.float32)
    before = sorted(p.relative_to(saved_model) for p in saved_model.rglob("*"))

    with logged() as lines:
        exporter.verify_in_fresh_process(saved_model, sample, expected)

    argv = (seen / "argv").read_text().split("\n")
    assert argv[:3] == ["-m", "components.export.verify", str(saved_model)]
    assert len(argv) == 5
    np.testing.assert_array_equal(np.load(seen / "arg3.npy"), sample)
    np.testing.assert_array_equal(np.load(seen / "arg4.npy"), expected)
    # the batch and the expected output are kept beside the SavedModel, never inside it
    assert all(Path(arg).parent == saved_model.parent for arg in argv[3:])
    assert sorted(p.relative_to(saved_model) for p in saved_model.rglob("*")) == before
    assert lines == ["infra check passed: 3 predictions match the trained model"]


def test_a_failed_check_is_one_line_ending_with_the_last_three_lines_it_printed(
    monkeypatch, tmp_path, saved_model
):
    stand_in(
        monkeypatch, tmp_path, code=1,
        stdout="o1\no2\no3\no4\no5\n", stderr="Traceback\nValueError: bad\n",
    )  # fmt: skip
    sample = exporter.check_sample(n=2)
    with logged() as lines, pytest.raises(ExportError) as e:
        exporter.verify_in_fresh_process(saved_model, sample, np.zeros((2, 10), np.float32))
    assert str(e.value) == (
        "the exported SavedModel failed its check: o5 / Traceback / ValueError: bad"
    )
    assert lines == []


def test_a_check_that_dies_fails_the_export_with_what_it_printed(
    monkeypatch, tmp_path, saved_model
):
    """Exit status 137: killed for memory; only a 0 is a pass."""
    stand_in(monkeypatch, tmp_path, stdout="loading the SavedModel\n", code=137)
    with pytest.raises(ExportError) as e:
        exporter.verify_in_fresh_process(
            saved_model, exporter.check_sample(n=2), np.zeros((2, 10), np.float32)
        )
    assert str(e.value) == "the exported SavedModel failed its check: loading the SavedModel"


def test_a_check_that_never_answers_fails_the_export_in_one_line(
    monkeypatch, tmp_path, saved_model
):
    stand_in(monkeypatch, tmp_path, stdout="loading\n", sleep=30)
    monkeypatch.setattr(exporter, "_CHECK_TIMEOUT_S", 0.5)
    with pytest.raises(ExportError) as e:
        exporter.verify_in_fresh_process(
            saved_model, exporter.check_sample(n=2), np.zeros((2, 10), np.float32)
        )
    assert str(e.value) == "the exported SavedModel failed its check: no verdict within 0.5 s"


# -- publishing: the version claimed, the line logged, what a failure leaves -------------------

FILES = {
    "saved_model.pb": b"graph",
    "fingerprint.pb": b"fingerprint",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"weights",
}


def fake_model(folder: Path) -> Path:
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_publishing_says_which_version_how_many_files_and_where(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put_bytes(f"{PREFIX}/2/{CLAIM_FILE}", b"{}")
    with logged() as lines:
        version, uri = exporter.publish(fake_model(tmp_path / "m"), store, PREFIX)
    assert (version, uri) == (3, store.uri(f"{PREFIX}/3"))
    assert lines == [f"publishing version 3 (4 files) to {store.uri(f'{PREFIX}/3')}"]


def test_a_file_that_appears_in_a_claimed_version_is_not_overwritten_and_the_version_stays_hidden(
    tmp_path,
):
    """Someone writes into the version this export claimed: the export stops with one line,
    their file is kept, and saved_model.pb never lands, so TF Serving never loads it."""
    store = LocalStore(tmp_path / "store")
    intruder = f"{PREFIX}/1/variables/variables.index"

    def someone_writes(phase: str, version: int) -> None:
        if phase == "claimed":
            store.put_bytes(intruder, b"someone else's")

    with pytest.raises(ExportError) as e:
        exporter.publish(fake_model(tmp_path / "m"), store, PREFIX, someone_writes)
    assert str(e.value) == f"{store.uri(intruder)} appeared while publishing; not overwriting it"
    assert store.get_bytes(intruder) == b"someone else's"
    assert store.stat(f"{PREFIX}/1/saved_model.pb") is None


class FailingStore(LocalStore):
    """A real folder store whose uploads fail from the `fail_at`-th file on."""

    def __init__(self, root, fail_at: int):
        super().__init__(root)
        self.fail_at, self.files = fail_at, 0

    def put_file(self, key, src, sha256=None, exclusive=False):
        self.files += 1
        if self.files >= self.fail_at:
            raise StoreError(f"upload to {self.uri(key)} failed: connection reset")
        super().put_file(key, src, sha256, exclusive)


def test_a_publish_that_fails_midway_leaves_a_claimed_version_without_saved_model_pb(tmp_path):
    store = FailingStore(tmp_path / "store", fail_at=3)
    model = fake_model(tmp_path / "m")
    with pytest.raises(StoreError, match="connection reset"):
        exporter.publish(model, store, PREFIX)
    left = sorted(info.key for info in store.list(PREFIX))
    uploaded = ["fingerprint.pb", "variables/variables.data-00000-of-00001"]  # by name, .pb last
    assert left == sorted(f"{PREFIX}/1/{name}" for name in [CLAIM_FILE, *uploaded])

    store.fail_at = 10**6  # the next export: a new number, the abandoned one left as it is
    assert exporter.publish(model, store, PREFIX)[0] == 2
    assert sorted(info.key for info in store.list(f"{PREFIX}/1")) == left
    assert store.get_bytes(f"{PREFIX}/2/saved_model.pb") == FILES["saved_model.pb"]


@pytest.mark.parametrize(
    "prefix", ["models/mnist", "models/mnist/", "/models/mnist/", "models/MNIST-X"]
)
def test_the_versions_under_a_prefix_on_s3_whatever_its_slashes(s3_bucket, s3_env, prefix):
    store = open_store(f"s3://{s3_bucket}/root", s3_env)
    base = prefix.strip("/")
    for key in ("12/saved_model.pb", f"3/{CLAIM_FILE}", "X4/x", "notes/5"):
        store.put_bytes(f"{base}/{key}", b"x")
    store.put_bytes(f"{base}-old/40/saved_model.pb", b"another prefix")
    assert exporter.existing_versions(store, prefix) == {3, 12}
    assert exporter.claim_version(store, prefix) == 13


def test_every_file_published_to_s3_carries_its_sha256(s3_bucket, s3_env, tmp_path):
    store = open_store(f"s3://{s3_bucket}/root", s3_env)
    model = fake_model(tmp_path / "m")
    exporter.publish(model, store, PREFIX)
    for name in FILES:
        assert store.stat(f"{PREFIX}/1/{name}").sha256 == sha256_file(model / name)


# -- warm-up requests and the check's batch (TensorFlow, no model) ----------------------------


def warmup_requests(folder: Path) -> list:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = tf.data.TFRecordDataset(str(folder / spec.WARMUP_FILE))
    return [
        prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request for r in records
    ]


def images_of(request) -> np.ndarray:
    import tensorflow as tf

    return tf.make_ndarray(request.inputs[spec.SIGNATURE_INPUT])


def test_warmup_is_one_image_then_the_whole_batch_for_the_mnist_models_signature(tmp_path):
    sample = exporter.check_sample(n=5)
    exporter.write_warmup_requests(tmp_path / "m", sample)
    requests = warmup_requests(tmp_path / "m")
    assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [
        ("mnist", spec.SIGNATURE),
        ("mnist", spec.SIGNATURE),
    ]
    assert [images_of(r).dtype for r in requests] == [np.uint8, np.uint8]
    np.testing.assert_array_equal(images_of(requests[0]), sample[:1])
    np.testing.assert_array_equal(images_of(requests[1]), sample)


def test_warmup_written_again_replaces_the_first(tmp_path):
    exporter.write_warmup_requests(tmp_path / "m", exporter.check_sample(n=5))
    again = exporter.check_sample(seed=3, n=2)
    exporter.write_warmup_requests(tmp_path / "m", again, model_name="digits")
    requests = warmup_requests(tmp_path / "m")
    assert [r.model_spec.name for r in requests] == ["digits", "digits"]
    np.testing.assert_array_equal(images_of(requests[1]), again)


def test_the_checks_batch_is_fixed_uint8_images_blank_saturated_then_random():
    sample = exporter.check_sample(n=6)
    assert (sample.dtype, sample.shape) == (np.uint8, (6, 28, 28))
    assert (sample[0] == 0).all() and (sample[1] == 255).all()
    random = sample[2:]
    assert (random.min(), random.max()) == (0, 255)  # the whole range of a pixel
    assert len(np.unique(random)) > 200
    np.testing.assert_array_equal(exporter.check_sample(n=6), sample)
    assert not np.array_equal(exporter.check_sample(seed=1, n=6), sample)
    assert exporter.check_sample().shape == (32, 28, 28)


# -- real exports of one Keras model ------------------------------------------------------


@pytest.fixture(scope="module")
def keras_model():
    from components.train import model as train_model

    return train_model.build_model(seed=11)


def test_saving_the_serving_model_prints_nothing(keras_model, tmp_path, capfd):
    exporter.save_serving_model(keras_model, tmp_path / "saved_model")
    assert (tmp_path / "saved_model" / spec.SAVED_MODEL_PB).is_file()
    assert capfd.readouterr().out == ""


@pytest.fixture(scope="module")
def model_keras(keras_model, tmp_path_factory) -> Path:
    """The model as train leaves it in its artifact: model.keras."""
    path = tmp_path_factory.mktemp("trained") / spec.MODEL_FILE
    keras_model.save(path)
    return path


def test_a_provenance_whose_run_is_not_an_object_is_refused_naming_it(model_keras, tmp_path):
    (tmp_path / "model").mkdir()
    shutil.copy(model_keras, tmp_path / "model")
    lineage = tmp_path / "model" / provenance.PROVENANCE_FILE
    lineage.write_text(json.dumps({"dataset_digest": "d1", "run": "r1"}))
    store = LocalStore(tmp_path / "store")
    with pytest.raises(RecordError) as e:
        exporter.export_from_artifact(
            tmp_path / "model", tmp_path / "work", store, PREFIX, tmp_path / "artifact", "t", ""
        )
    assert str(e.value) == f"{lineage}: field 'run' is a str"
    assert list(store.list("")) == []


def test_a_model_that_fails_its_check_publishes_nothing_and_claims_no_version(
    keras_model, monkeypatch, tmp_path
):
    stand_in(monkeypatch, tmp_path, stdout="probabilities differ: max abs diff 0.3\n", code=1)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ExportError) as e:
        exporter.export_and_publish(
            keras_model, tmp_path / "work", store, PREFIX, exporter.check_sample(n=4)
        )
    assert str(e.value) == (
        "the exported SavedModel failed its check: probabilities differ: max abs diff 0.3"
    )
    assert list(store.list("")) == []


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# Each real export is one test: mutmut credits what a shared fixture runs to the first test
# that uses it alone, so every assertion about an export sits in the test that makes it.


def test_an_export_to_a_folder_is_one_complete_version_with_its_record_warmup_and_copy(
    model_keras, tmp_path
):
    """A model with no provenance.json, exported to a folder store where an abandoned claim
    holds version 2, into an artifact folder KFP already made, with no task ID."""
    (tmp_path / "model").mkdir()
    shutil.copy(model_keras, tmp_path / "model")
    store = LocalStore(tmp_path / "store")
    store.put_bytes(f"{PREFIX}/2/{CLAIM_FILE}", b"{}")
    (tmp_path / "artifact").mkdir()
    with logged() as lines:
        meta = exporter.export_from_artifact(
            tmp_path / "model", tmp_path / "work", store, PREFIX, tmp_path / "artifact", "", ""
        )

    # the next version after the abandoned claim, in TF Serving's layout, and nothing else
    version = tmp_path / "store" / PREFIX / "3"
    assert (meta["version"], meta["published_uri"]) == (3, store.uri(f"{PREFIX}/3"))
    published = files_under(version)
    assert {
        spec.SAVED_MODEL_PB, "variables/variables.index", spec.WARMUP_FILE,
        provenance.PROVENANCE_FILE, CLAIM_FILE,
    } <= set(published)  # fmt: skip
    assert {name.split("/")[0] for name in published} <= {
        *spec.MODEL_VERSION_ENTRIES,
        provenance.PROVENANCE_FILE,
        CLAIM_FILE,
    }

    # the lineage record: the export's own fields alone
    record = json.loads(published[provenance.PROVENANCE_FILE])
    assert record.pop("exported_at")
    assert record == {
        "run": {"export_task_id": ""},
        "saved_model_digest": meta["saved_model_digest"],
    }
    assert meta["dataset_digest"] == ""

    # TF Serving's warm-up: the check's first image, then its first eight
    requests = warmup_requests(version)
    sample = exporter.check_sample()
    assert [r.model_spec.name for r in requests] == ["mnist", "mnist"]
    np.testing.assert_array_equal(images_of(requests[0]), sample[:1])
    np.testing.assert_array_equal(images_of(requests[1]), sample[:8])

    # the step's log: each stage, and no checkpoints removed when none were named
    assert lines == [
        "saving the SavedModel",
        "checking it in a fresh process",
        "infra check passed: 32 predictions match the trained model",
        f"publishing version 3 ({len(published) - 1} files) to {meta['published_uri']}",
    ]

    # the artifact's copy: the version but its claim
    del published[CLAIM_FILE]
    assert files_under(tmp_path / "artifact") == published


def test_an_export_to_s3_keeps_the_lineage_removes_the_checkpoints_and_digests_each_object(
    model_keras, s3_bucket, s3_env, tmp_path
):
    """A model whose provenance names its dataset and its run's checkpoints (on S3), but no
    run; exported to S3."""
    store = open_store(f"s3://{s3_bucket}/root", s3_env)
    checkpoints = f"s3://{s3_bucket}/root/checkpoints/r2"
    for name in ("epoch-0001/latest.weights.h5", "LATEST.json"):
        store.put_bytes(f"checkpoints/r2/{name}", b"x")
    (tmp_path / "model").mkdir()
    shutil.copy(model_keras, tmp_path / "model")
    lineage = {"dataset_digest": "d9", "checkpoints_uri": checkpoints}
    (tmp_path / "model" / provenance.PROVENANCE_FILE).write_text(json.dumps(lineage))
    with logged() as lines:
        meta = exporter.export_from_artifact(
            tmp_path / "model", tmp_path / "work", store, PREFIX, tmp_path / "artifact", "t-9",
            s3_env,
        )  # fmt: skip

    assert meta == {
        "published_uri": f"s3://{s3_bucket}/root/{PREFIX}/1",
        "version": 1,
        "signature": spec.SIGNATURE,
        "saved_model_digest": provenance.folder_digest(tmp_path / "artifact"),
        "dataset_digest": "d9",
    }
    # the lineage carried into the version, gaining a run that names the export task
    record = json.loads(store.get_bytes(f"{PREFIX}/1/{provenance.PROVENANCE_FILE}"))
    assert record.pop("exported_at")
    assert record == {
        "dataset_digest": "d9",
        "run": {"export_task_id": "t-9"},
        "saved_model_digest": meta["saved_model_digest"],
    }
    # the run's checkpoints, on the same S3 endpoint, removed once the version is published
    assert list(store.list("checkpoints")) == []
    assert lines[-1] == f"removed the run's 2 checkpoint file(s) at {checkpoints}"
    # each object of the version carries the sha256 of what was uploaded
    work = tmp_path / "work" / "saved_model"
    digests = {
        info.key.split(f"{PREFIX}/1/", 1)[1]: store.stat(info.key).sha256
        for info in store.list(f"{PREFIX}/1")
        if not info.key.endswith(CLAIM_FILE)
    }
    assert digests == {name: sha256_file(work / name) for name in files_under(work)}
