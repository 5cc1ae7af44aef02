"""A Katib trial's code (components/tune/trial.py) run in this process: the lines Katib's StdOut
collector reads, each out of the process as soon as its epoch ends; the refusal of a trial with
no validation split, in one line, before anything is fetched; and a trial that never evaluates
the test set (it is scored on its validation split alone).

tests/unit/test_katib_tune.py runs the trial as a process too (what Katib runs)."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest

from components.common.failure import ERROR_FILE_ENV
from components.common.log import get_logger
from components.store import LocalStore
from components.tune import trial

# The log's handler is made once, on the stdout of the moment: here, not inside a test that
# has swapped sys.stdout for its own stream.
get_logger("trial")


@pytest.fixture(scope="module")
def dataset_uri(small_mnist_dir, tmp_path_factory) -> str:
    """The small data set (1200 training and 300 test images) uploaded as the pipeline does."""
    from components.unpack_upload.unpack import unpack_and_upload

    root = tmp_path_factory.mktemp("trial-store")
    unpack_and_upload(small_mnist_dir, LocalStore(root), canonical=False)
    return f"{root}/datasets/mnist"


# train_limit=300 and validation_split=0.2: 240 examples trained on, the last 60 scored
FLAGS = ["--learning-rate=0.01", "--batch-size=60", "--train-limit=300", "--validation-split=0.2"]
HELD = 60


class Stdout:
    """A stand-in for the process's stdout with a buffer as a pipe's: what was written but not
    flushed stays in `buffered`, what Katib's collector could read is in `out`."""

    def __init__(self):
        self.raw = io.BytesIO()
        self.stream = io.TextIOWrapper(self.raw, encoding="utf-8", write_through=False)

    @property
    def out(self) -> str:
        return self.raw.getvalue().decode()


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def collector_lines(text: str) -> list[str]:
    """The `name=value` lines (the log's own lines have a date, a level and a `:`)."""
    return [line for line in text.splitlines() if re.match(r"^\w+=", line)]


def run_trial(monkeypatch, argv: list[str]):
    """trial.main(argv) with its stdout captured and each epoch's row recorded, with what the
    collector could read of stdout once the trial had reported that epoch."""
    pytest.importorskip("tensorflow")
    import components.train.trainer as trainer

    stdout, rows, results = Stdout(), [], []
    real_report, real_train = trial.report, trainer.train

    def report(row):
        real_report(row)
        rows.append((dict(row), stdout.out))

    def train(*args, **kwargs):
        results.append(real_train(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(trial, "report", report)
    monkeypatch.setattr(trainer, "train", train)
    saved, sys.stdout = sys.stdout, stdout.stream
    try:
        code = trial.main(argv)
    finally:
        sys.stdout = saved
    stdout.stream.flush()
    return code, stdout.out, rows, results


def test_each_epoch_prints_its_number_then_its_validation_accuracy_and_loss(
    dataset_uri, monkeypatch
):
    """Three lines an epoch, in order, the values with 6 decimals (`name=value`: what the
    StdOut collector parses), each epoch's out of the process as the epoch ends; the accuracy
    is that of the 60 held-out examples (a multiple of 1/60)."""
    code, out, rows, _ = run_trial(
        monkeypatch, [f"--dataset-uri={dataset_uri}", "--epochs=2", *FLAGS]
    )
    assert code == 0
    lines = collector_lines(out)
    assert [line.split("=")[0] for line in lines] == [
        "epoch", "validation_accuracy", "validation_loss"] * 2  # fmt: skip
    assert [lines[0], lines[3]] == ["epoch=1", "epoch=2"]
    assert [row["epoch"] for row, _ in rows] == [1, 2]
    for (row, seen), epoch in zip(rows, (lines[:3], lines[3:]), strict=True):
        accuracy, loss = epoch[1], epoch[2]
        assert re.fullmatch(r"validation_accuracy=[01]\.\d{6}", accuracy), accuracy
        assert re.fullmatch(r"validation_loss=\d+\.\d{6}", loss), loss
        value = float(accuracy.split("=")[1])
        assert 0 <= value <= 1 and float(loss.split("=")[1]) >= 0
        assert accuracy == f"validation_accuracy={row['validation_accuracy']:.6f}"
        assert loss == f"validation_loss={row['validation_loss']:.6f}"
        assert value * HELD == pytest.approx(round(value * HELD), abs=1e-3)
        # flushed: the collector has read this epoch's three lines by the time it ends
        assert collector_lines(seen)[-3:] == epoch


def test_a_trial_never_evaluates_the_test_set(dataset_uri, monkeypatch):
    """Katib scores a trial on its validation split: the test split is not loaded, no dataset
    of it is made, no epoch nor the end evaluates it, and no row or result has test figures
    (the full run's 10,000 test images each epoch, for nothing)."""
    from components.dataset import mnist
    from components.train import model as model_

    splits, scored = [], []
    real_load, real_dataset = mnist.load_split, model_.dataset

    def load_split(folder, split, limit=0):
        splits.append(split)
        return real_load(folder, split, limit)

    def dataset(images, labels, cfg, training, epoch=None):
        if not training:
            scored.append(len(labels))
        return real_dataset(images, labels, cfg, training, epoch)

    monkeypatch.setattr(mnist, "load_split", load_split)
    monkeypatch.setattr(model_, "dataset", dataset)
    records = Records()
    logging.getLogger("mnist").addHandler(records)
    try:
        code, _, rows, (result,) = run_trial(
            monkeypatch, [f"--dataset-uri={dataset_uri}", "--epochs=1", *FLAGS]
        )
    finally:
        logging.getLogger("mnist").removeHandler(records)
    assert code == 0
    assert splits == ["train"]
    assert scored == [HELD]  # the validation examples, nothing else
    ((row, _),) = rows
    assert set(row) == {"epoch", "train_loss", "validation_accuracy", "validation_loss",
                        "seconds", "samples_per_second"}  # fmt: skip
    assert result.history == [row]
    assert (result.test_accuracy, result.test_loss, result.confusion) == (None, None, None)
    assert result.predicted is None and result.confidence is None
    (line,) = [r.getMessage() for r in records.records if r.getMessage().startswith("epoch 1/1")]
    assert line.startswith(
        f"epoch 1/1: train loss {row['train_loss']:.4f}, "
        f"validation accuracy {row['validation_accuracy']:.4f}, {row['seconds']:.1f} s, "
    )


def test_an_epochs_line_shows_the_scores_its_row_has():
    """The train step's rows have a test accuracy (and a validation one with a split); a
    trial's only a validation one."""
    from components.train.callbacks import scores_text

    both = {"validation_accuracy": 0.98124, "test_accuracy": 0.99046}
    assert scores_text(both) == "validation accuracy 0.9812, test accuracy 0.9905, "
    assert scores_text({"test_accuracy": 0.99046}) == "test accuracy 0.9905, "
    assert scores_text({"validation_accuracy": 0.98124}) == "validation accuracy 0.9812, "
    assert scores_text({}) == ""


@pytest.mark.parametrize("split", ["0", "0.0"])
def test_a_trial_without_a_validation_split_is_refused_in_one_line_before_any_fetch(
    tmp_path, monkeypatch, split
):
    """The data set named does not exist: the refusal comes first, as one logged line (and
    the same in $MNIST_ERROR_FILE, what `run --local` shows), exit status 1, no store opened
    and nothing on stdout for the collector."""
    import components.store

    opened = []
    monkeypatch.setattr(components.store, "open_store", lambda *a: opened.append(a))
    errors = tmp_path / "errors"
    monkeypatch.setenv(ERROR_FILE_ENV, str(errors))
    records = Records()
    logging.getLogger("mnist").addHandler(records)
    stdout = Stdout()
    saved, sys.stdout = sys.stdout, stdout.stream
    try:
        with pytest.raises(SystemExit) as exit_:
            trial.main([f"--dataset-uri={tmp_path}/none", "--learning-rate=0.01", "--epochs=2",
                        "--batch-size=64", f"--validation-split={split}"])  # fmt: skip
    finally:
        logging.getLogger("mnist").removeHandler(records)
        sys.stdout = saved
    assert exit_.value.code == 1
    line = (
        "trial: validation_split=0.0: a Katib trial is scored on its validation split and this "
        "one holds out nothing; set validation_split above 0 (mnist-tune's default is 0.1), "
        "the test set is kept for the accuracy gate"
    )
    assert [(r.levelname, r.name, r.getMessage()) for r in records.records] == [
        ("ERROR", "mnist.trial", line)
    ]
    assert errors.read_text() == line + "\n"
    assert opened == []
    stdout.stream.flush()
    assert collector_lines(stdout.out) == []


@pytest.mark.parametrize(
    "missing", ["--dataset-uri", "--learning-rate", "--batch-size", "--epochs"]
)
def test_each_flag_katib_or_the_template_sets_is_required_and_named(missing, capsys):
    """A trial template that drops a searched value (or the data set) fails at once, naming the
    flag and the trial's command, not by training with a default Katib never chose."""
    given = {"--dataset-uri": "/data", "--learning-rate": "0.01", "--batch-size": "64",
             "--epochs": "2"}  # fmt: skip
    argv = [f"{flag}={value}" for flag, value in given.items() if flag != missing]
    with pytest.raises(SystemExit) as exit_:
        trial.parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m components.tune.trial ")
    assert "the following arguments are required: " + missing in err


def test_no_s3_endpoint_is_the_empty_one():
    argv = ["--dataset-uri=/data", "--learning-rate=0.01", "--batch-size=64", "--epochs=2"]
    assert trial.parser().parse_args(argv).s3_endpoint == ""


def test_each_collector_line_leaves_the_process_as_it_is_printed(monkeypatch):
    """Katib's collector reads the trial's stdout through a pipe: each line is flushed by itself,
    so a trial killed (or timed out) between two lines has reported every line before."""
    seen: list[str] = []

    class Flushed(io.StringIO):
        def flush(self):
            seen.append(self.getvalue())

    monkeypatch.setattr(sys, "stdout", Flushed())
    trial.report({"epoch": 3, trial.METRIC: 0.5, trial.LOSS: 1.25})
    assert seen == [
        "epoch=3\n",
        "epoch=3\nvalidation_accuracy=0.500000\n",
        "epoch=3\nvalidation_accuracy=0.500000\nvalidation_loss=1.250000\n",
    ]


def test_the_data_set_is_read_from_the_uri_and_endpoint_given(monkeypatch, tmp_path):
    """The trial opens the store the template names, with its S3 endpoint, and fetches the whole
    data set folder (the manifest at the uri's root) before training."""
    import components.dataset.manifest as manifest
    import components.store as store

    calls = []

    class Fetched(Exception):
        pass

    def open_store(uri, endpoint=""):
        calls.append(("open", uri, endpoint))
        return "the store"

    def fetch_dataset(where, prefix, dest):
        calls.append(("fetch", where, prefix))
        raise Fetched

    monkeypatch.setattr(store, "open_store", open_store)
    monkeypatch.setattr(manifest, "fetch_dataset", fetch_dataset)
    argv = ["--dataset-uri=s3://mnist/datasets/mnist", "--s3-endpoint=http://minio:9000", *FLAGS,
            "--epochs=1"]  # fmt: skip
    with pytest.raises(Fetched):
        trial.main(argv)
    assert calls == [
        ("open", "s3://mnist/datasets/mnist", "http://minio:9000"),
        ("fetch", "the store", ""),
    ]
