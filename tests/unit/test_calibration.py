"""Temperature scaling (components/train/calibration.py): the fit, its use in the model, and
training that calibrates on its validation split."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from components.dataset import mnist
from components.train import calibration, trainer
from components.train import model as train_model


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fit_finds_the_temperature_the_labels_were_drawn_at(true_temperature):
    """Labels drawn from softmax(z / T0) and the model's probabilities softmax(z): the fitted
    temperature is T0 (the maximum-likelihood estimate, within sampling error)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (20000, 10))
    truth = softmax(logits / true_temperature)
    labels = (truth.cumsum(axis=1) < rng.random((20000, 1))).sum(axis=1)
    fitted = calibration.fit_temperature(softmax(logits), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_an_over_confident_model_is_cooled_and_its_loss_falls():
    """Right 80% of the time but always 0.999 sure: T > 1, and the held-out loss drops."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 1000)
    answers = np.where(rng.random(1000) < 0.8, labels, (labels + 1) % 10)
    probabilities = np.full((1000, 10), 0.001 / 9)
    probabilities[np.arange(1000), answers] = 0.999
    temperature = calibration.fit_temperature(probabilities, labels)
    assert temperature > 2
    assert calibration.nll(probabilities, labels, temperature) < calibration.nll(
        probabilities, labels
    )
    # calibrated, its confidence is about its accuracy
    calibrated = softmax(np.log(probabilities) / temperature)
    assert calibrated.max(axis=1).mean() == pytest.approx(0.8, abs=0.02)


def test_no_held_out_examples_leave_the_model_as_it_is():
    assert calibration.fit_temperature(np.zeros((0, 10)), np.zeros(0, int)) == 1.0


@settings(max_examples=60, deadline=None)
@given(
    logits=arrays(np.float64, (12, 10), elements=st.floats(-30, 30)),
    labels=arrays(np.int64, 12, elements=st.integers(0, 9)),
)
def test_the_fitted_temperature_is_a_minimum_of_the_loss(logits, labels):
    """Whatever the probabilities and labels, no temperature nearby, nor 1, does better (within
    the bracket the search covers: a loss still falling at its end stops there)."""
    probabilities = softmax(logits)
    t = calibration.fit_temperature(probabilities, labels)
    assert 1 / 20 - 1e-9 <= t <= 20 + 1e-9
    best = calibration.nll(probabilities, labels, t)
    for other in (t * 1.01, t / 1.01, 1.0):
        if 1 / 20 <= other <= 20:
            assert best <= calibration.nll(probabilities, labels, other) + 1e-9


def test_apply_divides_the_logits_of_the_model_by_the_temperature():
    model = train_model.build_model(seed=2)
    images = np.random.default_rng(2).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    before = np.asarray(model(images, training=False), np.float64)
    calibration.apply(model, 3.0)
    after = np.asarray(model(images, training=False), np.float64)
    np.testing.assert_allclose(after, softmax(np.log(before) / 3.0), rtol=1e-4, atol=1e-6)
    assert (after.argmax(axis=1) == before.argmax(axis=1)).all()


@pytest.fixture(scope="module")
def few_hundred(small_mnist_dir):
    return mnist.load_split(small_mnist_dir, "train"), mnist.load_split(small_mnist_dir, "test")


def test_training_with_a_validation_split_ends_calibrated_on_it(few_hundred, caplog):
    """The trained model's probabilities on its validation split need no further temperature
    (fitting again gives 1), the result and the log name the one that was applied; with no
    split, the temperature is 1 and nothing is calibrated."""
    train, test = few_hundred
    cfg = trainer.TrainConfig(
        epochs=2, batch_size=50, seed=4, train_limit=300, validation_split=0.3
    )
    with caplog.at_level("INFO"):
        result = trainer.train(train, test, cfg)
    (_, _), (held, held_labels) = train_model.split(train, cfg)
    probabilities = result.model.predict(held, verbose=0)
    assert calibration.fit_temperature(probabilities, held_labels) == pytest.approx(1, abs=0.01)
    assert result.temperature != 1.0
    assert f"temperature {result.temperature:.3f}" in caplog.text
    assert "calibrated on 90 held-out examples" in caplog.text
    plain = trainer.train(
        train, test, trainer.TrainConfig(**{**cfg.values(), "validation_split": 0})
    )
    assert plain.temperature == 1.0
