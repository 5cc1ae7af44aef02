"""Training logic: configuration checks, the model's contract, and a small real fit."""

import numpy as np
import pytest

from components.dataset import mnist
from components.train import model as train_model
from components.train import trainer


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", 2.0),
        ("train_limit", -1),
    ],
)
def test_config_refuses_out_of_range(field, value):
    with pytest.raises(ValueError, match=field):
        trainer.TrainConfig(**{field: value})


def test_confusion_matrix_rows_are_true_classes():
    matrix = train_model.confusion_matrix(np.array([0, 0, 1, 9]), np.array([0, 1, 1, 3]))
    assert matrix[0][0] == 1 and matrix[0][1] == 1 and matrix[1][1] == 1 and matrix[9][3] == 1
    assert sum(map(sum, matrix)) == 4


def test_model_takes_uint8_pixels_and_scales_itself():
    model = train_model.build_model(seed=1)
    assert model.inputs[0].dtype == "uint8" and tuple(model.inputs[0].shape) == (None, 28, 28)
    out = np.asarray(model(np.full((3, 28, 28), 255, np.uint8), training=False))
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert "rescaling" in [layer.name.split("_")[0] for layer in model.layers]


@pytest.fixture(scope="module")
def small_fit(small_mnist_dir):
    from tests.conftest import have_full_mnist

    train = mnist.load_split(small_mnist_dir, "train")
    test = mnist.load_split(small_mnist_dir, "test")
    epochs = []
    # Shifts of up to 2 pixels keep a real digit a digit, but blur the synthetic stand-in
    # (tests/conftest.py), whose classes differ only by where their bars are, 1 or 2 pixels
    # apart: there, 3 epochs end anywhere from 0.4 to 1.0 depending on the shifts drawn.
    cfg = trainer.TrainConfig(
        epochs=3,
        batch_size=64,
        learning_rate=0.01,
        seed=3,
        augment="shift" if have_full_mnist() else "none",
        validation_split=0.0,
    )
    return trainer.train(train, test, cfg, on_epoch=epochs.append), epochs, test


def test_small_fit_learns(small_fit):
    result, epochs, test = small_fit
    assert result.test_accuracy > 0.7  # chance is 0.1
    assert [row["epoch"] for row in epochs] == [1, 2, 3] == [r["epoch"] for r in result.history]
    assert sum(map(sum, result.confusion)) == len(test[0])
    diagonal = sum(result.confusion[i][i] for i in range(10))
    assert diagonal / len(test[0]) == pytest.approx(result.test_accuracy, abs=1e-6)


def test_train_limit_uses_first_examples(small_mnist_dir, caplog):
    train = mnist.load_split(small_mnist_dir, "train")
    test = mnist.load_split(small_mnist_dir, "test")
    cfg = trainer.TrainConfig(epochs=1, batch_size=50, train_limit=100, augment="none")
    result = trainer.train(train, test, cfg)
    assert len(result.history) == 1
    assert 0.0 <= result.test_accuracy <= 1.0


def test_a_fit_without_a_validation_split_has_no_validation_columns(small_fit):
    _, epochs, _ = small_fit
    assert all("validation_accuracy" not in row for row in epochs)


# --- the same seed, the same model --------------------------------------------------------


def weights_digest(model) -> str:
    """sha256 over every weight (trainable or not) in the model's order, bytes as they are."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def few_hundred(small_mnist_dir):
    return mnist.load_split(small_mnist_dir, "train"), mnist.load_split(small_mnist_dir, "test")


def test_the_same_seed_gives_the_same_weights_and_another_seed_others(few_hundred):
    """Two trainings with the same config (shuffle, shifts and dropout on) end bit for bit
    alike; a different seed does not. Run in one process, one after the other, so whatever
    state the first leaves (graphs, threads, the random state) cannot make the second agree."""
    train, test = few_hundred
    cfg = trainer.TrainConfig(epochs=2, batch_size=64, learning_rate=0.01, seed=7, train_limit=300)
    digests = [weights_digest(trainer.train(train, test, c).model) for c in (cfg, cfg)]
    other = trainer.train(train, test, trainer.TrainConfig(**{**cfg.values(), "seed": 8}))
    assert digests[0] == digests[1]
    assert weights_digest(other.model) != digests[0]


def test_the_shifts_are_a_function_of_the_seed_the_epoch_and_the_batch(few_hundred):
    """The training data of an epoch (order and shifts) is the same however it is read: from
    a fresh pipeline or after other passes, through a parallel map; another epoch differs."""
    import tensorflow as tf

    (images, labels), _ = few_hundred
    cfg = trainer.TrainConfig(batch_size=50, seed=3, train_limit=200)

    def epoch_data(epoch: int, passes_before: int = 0):
        variable = tf.Variable(epoch, dtype=tf.int64)
        ds = train_model.dataset(images[:200], labels[:200], cfg, training=True, epoch=variable)
        for _ in range(passes_before):
            list(ds)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    first = epoch_data(0)
    again = epoch_data(0, passes_before=2)
    assert all(
        (a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(first, again, strict=True)
    )
    second = epoch_data(1)
    assert any((a[1] != b[1]).any() for a, b in zip(first, second, strict=True))
    assert sorted(np.concatenate([y for _, y in first])) == sorted(labels[:200])


# --- validation_split -------------------------------------------------------------------


def test_validation_split_holds_out_the_last_examples_and_reports_on_them(few_hundred, monkeypatch):
    """train_limit=250 and validation_split=0.2: the model trains on the first 200 examples
    only, and each epoch's row has the accuracy and loss on the last 50."""
    train, test = few_hundred
    seen = []
    real_dataset = train_model.dataset

    def spy(images, labels, cfg, training, epoch=None):
        seen.append((training, images.copy()))
        return real_dataset(images, labels, cfg, training, epoch)

    monkeypatch.setattr(train_model, "dataset", spy)
    cfg = trainer.TrainConfig(
        epochs=1, batch_size=50, seed=1, train_limit=250, validation_split=0.2
    )
    rows = []
    result = trainer.train(train, test, cfg, on_epoch=rows.append)
    (trained,) = [images for training, images in seen if training]
    np.testing.assert_array_equal(trained, train[0][:200])
    held_out = train[0][200:250]
    assert [images for training, images in seen if not training and len(images) == 50]
    (row,) = rows
    assert set(row) >= {"validation_accuracy", "validation_loss", "test_accuracy"}
    # the model was calibrated on those 50 after the epoch: the same answers, a lower loss
    loss, accuracy = result.model.evaluate(held_out, train[1][200:250], verbose=0)
    assert row["validation_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert loss <= row["validation_loss"] + 1e-6 and result.temperature != 1.0
    assert result.history == rows


@pytest.mark.parametrize(
    ("limit", "share", "kept", "held"),
    [(250, 0.2, 200, 50), (250, 0.0, 250, 0), (3, 0.5, 1, 2), (1, 0.5, 1, 0), (10, 0.01, 9, 1)],
)
def test_the_split_keeps_the_first_examples_and_holds_out_the_last(limit, share, kept, held):
    images, labels = np.arange(300), np.arange(300) % 10
    cfg = trainer.TrainConfig(train_limit=limit, validation_split=share)
    (x, y), validation = train_model.split((images, labels), cfg)
    assert list(x) == list(range(kept)) and list(y) == list(labels[:kept])
    if held:
        assert list(validation[0]) == list(range(kept, kept + held))
    else:
        assert validation is None


def test_the_step_logs_validation_accuracy_only_when_some_examples_were_held_out():
    from types import SimpleNamespace

    from components.train.step import step_metrics

    row = {"epoch": 1, "test_accuracy": 0.9}
    result = SimpleNamespace(
        test_accuracy=0.9, test_loss=0.3, seconds=12.34, history=[row], temperature=1.23456
    )
    assert step_metrics(result) == {
        "test_accuracy": 0.9,
        "test_loss": 0.3,
        "train_seconds": 12.3,
        "temperature": 1.2346,
    }
    result.history = [{**row, "validation_accuracy": 0.95, "validation_loss": 0.2}]
    assert step_metrics(result)["validation_accuracy"] == 0.95


@pytest.mark.parametrize("value", [-0.1, 0.51, 1.0])
def test_validation_split_is_a_share_of_at_most_a_half(value):
    with pytest.raises(ValueError, match="validation_split"):
        trainer.TrainConfig(validation_split=value)


def test_validation_split_reaches_replicas_and_trials_as_a_flag():
    import argparse

    from components.train.config import TrainConfig, add_flags

    cfg = TrainConfig(validation_split=0.25)
    assert "--validation-split=0.25" in cfg.as_flags()
    parser = argparse.ArgumentParser()
    add_flags(parser)
    assert TrainConfig.from_values(vars(parser.parse_args(cfg.as_flags()))) == cfg
