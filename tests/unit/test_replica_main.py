"""A TFJob replica's code (components/train/distributed.py) run in this process: which replica
TF_CONFIG makes it and whether it is the chief, its scores and predictions, its training loop's
rows, and what its `main` leaves under --out, as the chief and as another replica.

tests/unit/test_tfjob.py runs two replicas as processes (the collective training itself);
here one replica with no TF_CONFIG (a single-worker MultiWorkerMirroredStrategy, which works
in-process) calls the same functions directly, so a wrong change to them fails a test here."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components.dataset import mnist
from components.store import LocalStore
from components.train import distributed
from components.train.config import TrainConfig

pytest.importorskip("tensorflow")

CLUSTER = {"chief": ["chief-0:2222"], "worker": ["worker-0:2222", "worker-1:2222"]}


# -- which replica this is ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tf_config", "expected"),
    [
        (None, ("chief", 0, {})),
        ("", ("chief", 0, {})),
        ("{}", ("chief", 0, {})),
        (
            json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}),
            ("worker", 1, CLUSTER),
        ),
        (
            json.dumps({"cluster": CLUSTER, "task": {"type": "chief", "index": 0}}),
            ("chief", 0, CLUSTER),
        ),
        # the operator writes the index as a number; a string one is read as one
        (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": "2"}}),
         ("worker", 2, CLUSTER)),
        # no task: the process is the chief of whatever cluster is named
        (json.dumps({"cluster": CLUSTER}), ("chief", 0, CLUSTER)),
        (json.dumps({"task": {"type": "worker"}}), ("worker", 0, {})),
    ],
)  # fmt: skip
def test_the_replica_is_what_tf_config_says_and_a_lone_process_is_the_chief(
    monkeypatch, tf_config, expected
):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    kind, index, cluster = distributed.task()
    assert (kind, index, cluster) == expected
    assert type(index) is int


@pytest.mark.parametrize(
    ("kind", "index", "cluster", "chief"),
    [
        ("chief", 0, CLUSTER, True),
        ("chief", 0, {}, True),  # no TF_CONFIG: task() says a lone chief
        ("worker", 0, CLUSTER, False),  # the cluster has a chief: worker 0 is not it
        ("worker", 0, {"worker": ["w0:2222", "w1:2222"]}, True),  # no chief: worker 0 is
        ("worker", 1, {"worker": ["w0:2222", "w1:2222"]}, False),
        ("worker", 1, CLUSTER, False),
        ("ps", 0, {"worker": ["w0:2222"], "ps": ["p0:2222"]}, False),
        ("evaluator", 0, {"worker": ["w0:2222"], "evaluator": ["e0:2222"]}, False),
    ],
)
def test_only_the_chief_or_worker_0_of_a_chiefless_cluster_is_the_chief(
    kind, index, cluster, chief
):
    assert distributed.is_chief(kind, index, cluster) is chief


# -- predictions and scores from this replica alone ------------------------------------------


class StubModel:
    """A callable model: each image's probabilities are a fixed function of its first pixel,
    and each call is recorded (its batch size and `training`)."""

    def __init__(self):
        self.calls: list[tuple[int, object]] = []

    @staticmethod
    def probabilities(images: np.ndarray) -> np.ndarray:
        first = images.reshape(len(images), -1)[:, 0].astype(np.float64)
        logits = np.stack([np.cos(first * (k + 1) / 7.0) * 3 for k in range(10)], axis=1)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def __call__(self, images, training=None):
        self.calls.append((len(images), training))
        return self.probabilities(np.asarray(images))


def stub_images(n: int) -> np.ndarray:
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    return images


def test_predict_goes_through_the_images_512_at_a_time_in_inference_mode():
    model, images = StubModel(), stub_images(1300)
    probabilities = distributed.predict(model, images)
    assert model.calls == [(512, False), (512, False), (276, False)]
    assert probabilities.shape == (1300, 10)
    np.testing.assert_array_equal(probabilities, StubModel.probabilities(images))
    few = StubModel()
    three = distributed.predict(few, images[:3])
    np.testing.assert_array_equal(three, few.probabilities(images[:3]))
    assert few.calls == [(3, False)]


def test_scores_are_the_accuracy_and_the_mean_cross_entropy_of_the_labels():
    model, images = StubModel(), stub_images(700)  # more than one chunk
    probabilities = StubModel.probabilities(images).astype(np.float64)
    rng = np.random.default_rng(0)
    labels = probabilities.argmax(axis=1)
    wrong = rng.random(700) < 0.3
    labels[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10  # another class
    accuracy, loss = distributed.scores(model, images, labels)
    expected_accuracy = np.sum(probabilities.argmax(axis=1) == labels) / 700
    expected_loss = np.mean([-np.log(probabilities[i, labels[i]]) for i in range(700)])
    assert expected_accuracy == 1 - wrong.mean()  # neither all right nor all wrong
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-12)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert type(accuracy) is float and type(loss) is float
    assert {training for _, training in model.calls} == {False}


def test_a_certain_right_answer_costs_nothing_and_a_zero_probability_is_bounded():
    class Fixed:
        def __call__(self, images, training=None):
            return np.array([[1.0] + [0.0] * 9, [0.0, 1.0] + [0.0] * 8], np.float32)

    accuracy, loss = distributed.scores(Fixed(), stub_images(2), np.array([0, 0]))
    assert accuracy == 0.5
    # the right class of the second image has probability 0: -log(1e-7), not infinity
    assert loss == pytest.approx((-np.log(1.0 + 1e-7) - np.log(1e-7)) / 2, rel=1e-6)


# -- the training loop ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_data(small_mnist_dir):
    return mnist.load_split(small_mnist_dir, "train"), mnist.load_split(small_mnist_dir, "test")


@pytest.fixture(scope="module")
def strategy():
    """One single-worker MultiWorkerMirroredStrategy for the module's fits (no TF_CONFIG)."""
    import os

    import tensorflow as tf

    saved = os.environ.pop("TF_CONFIG", None)
    try:
        yield tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        if saved is not None:
            os.environ["TF_CONFIG"] = saved


class Log:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, message, *args):
        self.lines.append(message % args)


@pytest.mark.parametrize("validation_split", [0.25, 0.0])
def test_fit_trains_on_the_kept_examples_and_each_row_is_that_epochs_scores(
    small_data, strategy, monkeypatch, validation_split
):
    """train_limit=200: with validation_split=0.25 each epoch trains on the first 150 examples
    (4 steps of at most 40) and scores the last 50, which it never trains on; without, on all
    200 and no row has validation columns. A row's train_loss is the mean of its steps'
    losses, its scores those of the model as it ends the epoch. The model is the configured
    one, its batch normalisation synchronized across replicas (the global batch's statistics,
    as one device would keep), its learning-rate schedule as long as the steps it trains, and
    each step's loss a mean over the global batch."""
    import keras

    from components.train import model as model_

    train, test = small_data
    cfg = TrainConfig(epochs=2, batch_size=40, learning_rate=0.01, seed=5, train_limit=200,
                      validation_split=validation_split, dropout=0.3)  # fmt: skip
    kept = 150 if validation_split else 200
    seeds, datasets, variables, steps, optimizers, global_batches = [], [], [], [], [], []
    real_seed, real_dataset = model_.seed_everything, model_.dataset
    real_optimizer = model_.optimizer
    monkeypatch.setattr(
        model_, "optimizer", lambda c, n: optimizers.append((c, n)) or real_optimizer(c, n)
    )
    real_variable, real_step = model_.epoch_variable, distributed.train_step
    monkeypatch.setattr(model_, "seed_everything", lambda *a: seeds.append(a) or real_seed(*a))

    def dataset(images, labels, cfg, training, epoch=None):
        datasets.append((images.copy(), labels.copy(), training))
        return real_dataset(images, labels, cfg, training, epoch)

    def epoch_variable():
        variables.append(real_variable())
        return variables[-1]

    def train_step(strategy_, model, optimizer, global_batch):
        global_batches.append(global_batch)
        step = real_step(strategy_, model, optimizer, global_batch)

        def recorded(batch):
            loss = step(batch)
            sizes = [len(y) for y in strategy_.experimental_local_results(batch[1])]
            steps.append((int(variables[-1].numpy()), sum(sizes), float(loss)))
            return loss

        return recorded

    monkeypatch.setattr(model_, "dataset", dataset)
    monkeypatch.setattr(model_, "epoch_variable", epoch_variable)
    monkeypatch.setattr(distributed, "train_step", train_step)
    log = Log()
    scored = []
    real_scores = distributed.scores
    monkeypatch.setattr(
        distributed, "scores", lambda m, x, y: scored.append(len(y)) or real_scores(m, x, y)
    )
    started = time.monotonic()
    model, history, temperature = distributed.fit(strategy, train, test, cfg, log)
    took = time.monotonic() - started

    assert seeds == [(5, True)]
    norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and all(x.synchronized is True for x in norms)
    (dropout,) = [x for x in model.layers if isinstance(x, keras.layers.Dropout)]
    assert dropout.rate == 0.3
    ((configured, steps_per_epoch),) = optimizers
    assert configured.dropout == 0.3 and configured.epochs == 2
    assert type(steps_per_epoch) is int and steps_per_epoch == (4 if validation_split else 5)
    assert global_batches == [40]
    ((images, labels, training),) = datasets
    assert training is True
    np.testing.assert_array_equal(images, train[0][:kept])
    np.testing.assert_array_equal(labels, train[1][:kept])
    batch_sizes = [40, 40, 40, 30] if validation_split else [40] * 5
    assert [(e, n) for e, n, _ in steps] == [(0, n) for n in batch_sizes] + [
        (1, n) for n in batch_sizes]  # fmt: skip
    assert [row["epoch"] for row in history] == [1, 2]
    per_epoch = len(batch_sizes)
    for row, losses in zip(history, (steps[:per_epoch], steps[per_epoch:]), strict=True):
        assert row["train_loss"] == pytest.approx(np.mean([x for _, _, x in losses]), rel=1e-6)
    last = history[-1]
    # the rows were scored before the model was calibrated on its validation split (if any):
    # the same answers, and with no split the same model
    test_accuracy, test_loss = real_scores(model, *test)
    assert last["test_accuracy"] == test_accuracy
    assert (last["test_loss"] == test_loss) == (temperature == 1.0)
    assert 0 < history[0]["seconds"] < history[1]["seconds"] <= took
    if validation_split:
        assert scored == [50, 300, 50, 300]  # validation, then test, each epoch
        expected = {"epoch", "train_loss", "validation_accuracy", "validation_loss",
                    "test_accuracy", "test_loss", "seconds"}  # fmt: skip
        accuracy, loss = real_scores(model, train[0][150:200], train[1][150:200])
        assert last["validation_accuracy"] == accuracy and loss <= last["validation_loss"]
        assert temperature != 1.0
    else:
        assert scored == [300, 300] and temperature == 1.0
        expected = {"epoch", "train_loss", "test_accuracy", "test_loss", "seconds"}
    assert [set(row) for row in history] == [expected, expected]
    assert log.lines[0] == "1 replicas (MultiWorkerMirroredStrategy): global batch 40"
    assert log.lines[1:3] == [
        f"epoch {row['epoch']}/2: train loss {row['train_loss']:.4f}, "
        + (f"validation accuracy {row['validation_accuracy']:.4f}, " if validation_split else "")
        + f"test accuracy {row['test_accuracy']:.4f}"
        for row in history
    ]
    calibrated = f"calibrated on 50 held-out examples: temperature {temperature:.3f} (their loss"
    assert [line.startswith(calibrated) for line in log.lines[3:]] == [True] * bool(
        validation_split
    )


# -- main: what the chief writes, and what another replica does not ---------------------------

CFG = TrainConfig(epochs=2, batch_size=50, learning_rate=0.01, seed=42, train_limit=300,
                  validation_split=0.2)  # fmt: skip


@pytest.fixture(scope="module")
def dataset_store(small_mnist_dir, tmp_path_factory):
    """The small data set uploaded as the pipeline does; (its URI, its dataset digest)."""
    from components.dataset.manifest import dataset_digest, read_manifest
    from components.unpack_upload.unpack import unpack_and_upload

    root = tmp_path_factory.mktemp("replica-store")
    unpack_and_upload(small_mnist_dir, LocalStore(root), canonical=False)
    uri = f"{root}/datasets/mnist"
    return uri, dataset_digest(read_manifest(LocalStore(Path(uri)), "")["files"])


def recorded_writes(monkeypatch) -> list[tuple[str, list[str]]]:
    """Each LocalStore write as (its key, the keys already in that store when it began)."""
    writes = []
    put_file, put_bytes = LocalStore.put_file, LocalStore.put_bytes

    def before(store, key):
        writes.append((key, sorted(info.key for info in store.list(""))))

    def file_spy(self, key, path, *args, **kwargs):
        before(self, key)
        return put_file(self, key, path, *args, **kwargs)

    def bytes_spy(self, key, data, *args, **kwargs):
        before(self, key)
        return put_bytes(self, key, data, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "put_file", file_spy)
    monkeypatch.setattr(LocalStore, "put_bytes", bytes_spy)
    return writes


def test_the_chief_writes_the_model_the_report_and_last_a_complete_result(
    dataset_store, small_mnist_dir, tmp_path, monkeypatch, lines
):
    import keras

    import components.store as store

    monkeypatch.delenv("TF_CONFIG", raising=False)
    uri, digest = dataset_store
    out = tmp_path / "out"
    writes = recorded_writes(monkeypatch)
    opened, real_open = [], store.open_store
    monkeypatch.setattr(
        store, "open_store", lambda u, e=None: opened.append((u, e)) or real_open(u, e)
    )
    endpoint = "http://127.0.0.1:9"  # what the TFJob gives; a folder store does not use it
    argv = [f"--dataset-uri={uri}", f"--out={out}", f"--s3-endpoint={endpoint}"]
    assert distributed.main([*argv, *CFG.as_flags()]) == 0

    assert opened == [(uri, endpoint), (str(out), endpoint)]
    assert lines()[-1] == f"chief: model and report at {LocalStore(out).uri()}"

    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "report.html", "result.json"]
    # result.json last, once the model and the report are there: its presence means complete
    assert writes == [
        ("model.keras", []),
        ("report.html", ["model.keras"]),
        ("result.json", ["model.keras", "report.html"]),
    ]
    result = json.loads((out / "result.json").read_text())
    assert set(result) == {"test_accuracy", "test_loss", "confusion", "history", "seconds",
                           "dataset_digest", "replicas", "temperature"}  # fmt: skip
    history = result["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    for row in history:
        assert set(row) == {"epoch", "train_loss", "validation_accuracy", "validation_loss",
                            "test_accuracy", "test_loss", "seconds"}  # fmt: skip
        assert 0 <= row["validation_accuracy"] <= 1 and row["validation_loss"] >= 0
        assert 0 <= row["test_accuracy"] <= 1 and row["train_loss"] >= 0
    assert result["test_accuracy"] == history[-1]["test_accuracy"]
    assert result["test_loss"] == history[-1]["test_loss"]
    assert result["seconds"] == history[-1]["seconds"] > 0
    assert result["replicas"] == 1
    assert result["dataset_digest"] == digest
    confusion = np.array(result["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 300  # the whole test split
    right = int(np.trace(confusion))
    assert right / 300 == pytest.approx(result["test_accuracy"], abs=1e-9)

    images, labels = mnist.load_split(small_mnist_dir, "test")
    model = keras.models.load_model(out / "model.keras")
    predicted = np.asarray(model.predict(images, verbose=0)).argmax(axis=1)
    assert np.sum(predicted == labels) == pytest.approx(right, abs=2)  # the same model
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    assert f"Training: test accuracy {result['test_accuracy']:.4f}" in page
    assert f"300 test images, {300 - right} misclassified" in page


def test_a_replica_that_is_not_the_chief_trains_and_writes_nothing(
    dataset_store, tmp_path, monkeypatch
):
    """Worker 1 of a cluster with a chief (what `task` says is monkeypatched: the strategy
    itself is a single worker's): it fits and saves its model like the others, into a
    temporary folder that goes, and --out stays empty."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distributed, "task", lambda: ("worker", 1, CLUSTER))
    fits = []
    real_fit = distributed.fit
    monkeypatch.setattr(distributed, "fit", lambda *a: fits.append(a[3]) or real_fit(*a))
    writes = recorded_writes(monkeypatch)
    uri, _ = dataset_store
    out = tmp_path / "out"
    cfg = replace(CFG, epochs=1)
    assert distributed.main([f"--dataset-uri={uri}", f"--out={out}", *cfg.as_flags()]) == 0
    assert fits == [cfg]
    assert writes == []
    assert not out.exists() or list(out.rglob("*")) == []


def test_worker_0_of_a_cluster_without_a_chief_writes_the_outputs(
    dataset_store, tmp_path, monkeypatch
):
    """The Training Operator may start only workers: worker 0 is then the chief, by its own
    index in that cluster, and its lines are the train step's (logger mnist.train)."""
    import logging

    monkeypatch.delenv("TF_CONFIG", raising=False)
    chiefless = {"worker": ["worker-0:2222", "worker-1:2222"]}
    monkeypatch.setattr(distributed, "task", lambda: ("worker", 0, chiefless))
    names = []

    class Names(logging.Handler):
        def emit(self, record):
            names.append(record.name)

    handler = Names()
    logging.getLogger("mnist").addHandler(handler)
    try:
        uri, _ = dataset_store
        out = tmp_path / "out"
        cfg = replace(CFG, epochs=1)
        assert distributed.main([f"--dataset-uri={uri}", f"--out={out}", *cfg.as_flags()]) == 0
    finally:
        logging.getLogger("mnist").removeHandler(handler)
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "report.html", "result.json"]
    assert names and set(names) == {"mnist.train"}


REQUIRED = ["--dataset-uri=/data", "--out=/out", *CFG.as_flags()]


@pytest.mark.parametrize("missing", ["--dataset-uri", "--out", "--epochs", "--seed"])
def test_each_flag_the_launcher_gives_is_required_and_named(missing, capsys):
    """The TFJob's command gives every flag (components/train/tfjob.py); one left out fails at
    once, naming it and the replica's command, not by training with a default."""
    argv = [arg for arg in REQUIRED if not arg.startswith(missing + "=")]
    assert len(argv) == len(REQUIRED) - 1
    with pytest.raises(SystemExit) as exit_:
        distributed.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m components.train.distributed ")
    assert "the following arguments are required: " + missing in err


def test_the_help_says_what_out_is(capsys):
    with pytest.raises(SystemExit):
        distributed.main(["--help"])
    assert re.search(
        r"\n  --out OUT +where the chief writes its outputs\n", capsys.readouterr().out
    )


def test_the_data_set_is_read_from_the_uri_and_endpoint_given(monkeypatch):
    """Every replica opens the store the TFJob names, with its S3 endpoint (no endpoint: the
    empty one, the environment's), and fetches the whole data set folder."""
    import components.dataset.manifest as manifest
    import components.store as store

    calls = []

    class Fetched(Exception):
        pass

    def open_store(uri, endpoint=None):
        calls.append(("open", uri, endpoint))
        return "the store"

    def fetch_dataset(where, prefix, dest):
        calls.append(("fetch", where, prefix))
        raise Fetched

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(store, "open_store", open_store)
    monkeypatch.setattr(manifest, "fetch_dataset", fetch_dataset)
    given = ["--dataset-uri=s3://mnist/datasets/mnist", "--out=s3://mnist/runs/r1/train"]
    for endpoint, argv in [("http://minio:9000", ["--s3-endpoint=http://minio:9000"]), ("", [])]:
        calls.clear()
        with pytest.raises(Fetched):
            distributed.main([*given, *argv, *CFG.as_flags()])
        assert calls == [
            ("open", "s3://mnist/datasets/mnist", endpoint),
            ("fetch", "the store", ""),
        ]
