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
    train = mnist.load_split(small_mnist_dir, "train")
    test = mnist.load_split(small_mnist_dir, "test")
    epochs = []
    cfg = trainer.TrainConfig(epochs=3, batch_size=64, learning_rate=0.01, seed=3)
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
    cfg = trainer.TrainConfig(epochs=1, batch_size=50, train_limit=100, augment=False)
    result = trainer.train(train, test, cfg)
    assert len(result.history) == 1
    assert 0.0 <= result.test_accuracy <= 1.0
