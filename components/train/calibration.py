"""Temperature scaling: probabilities that mean what they say, fitted on held-out examples.

A network trained to a low loss is over-confident: its top probability on a digit it gets wrong
is often 0.9 or more, so the low-confidence flag (min_confidence) misses the mistakes. Temperature
scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) divides the logits by one
number T, fitted to minimise the negative log-likelihood on examples the model did not train on.
The ranking of the classes, so every answer, stays the same; only how sure it is changes.

T is applied inside the model: the classifier's weights and bias divided by T give logits / T,
so the exported SavedModel, TF Serving, KServe and every reader of it see calibrated
probabilities with no extra layer and nothing to keep in step. NumPy only, but `apply` (Keras).
"""

from __future__ import annotations

import math

import numpy as np

CLASSIFIER = "probabilities"  # the softmax Dense layer of model.build_model
# 1/T is searched on [1/20, 20] (log scale): wider than any temperature a trained model needs
_LOW, _HIGH = math.log(1 / 20), math.log(20)
_STEPS = 60  # golden-section steps: the bracket shrinks by 0.618^60, to ~1e-12 of its width


def nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `labels` under softmax(log(probabilities) / temperature)."""
    logits = np.log(np.clip(probabilities.astype(np.float64), 1e-30, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits).sum(axis=1))
    return float(np.mean(log_z - logits[np.arange(len(labels)), labels.astype(int)]))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises `nll` on these held-out (probabilities, labels).

    The NLL is convex in 1/T (a log-sum-exp of a linear function, minus a linear one), so a
    golden-section search on log(1/T) finds its one minimum. No examples: 1.0 (left as is)."""
    if len(labels) == 0:
        return 1.0

    def cost(log_beta: float) -> float:
        return nll(probabilities, labels, math.exp(-log_beta))

    ratio = (math.sqrt(5) - 1) / 2
    low, high = _LOW, _HIGH
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    cost_a, cost_b = cost(a), cost(b)
    for _ in range(_STEPS):
        if cost_a <= cost_b:
            high, b, cost_b = b, a, cost_a
            a = high - ratio * (high - low)
            cost_a = cost(a)
        else:
            low, a, cost_a = a, b, cost_b
            b = low + ratio * (high - low)
            cost_b = cost(b)
    return math.exp(-(low + high) / 2)


def apply(model, temperature: float) -> None:
    """Divide the classifier's logits by `temperature`, in place: its kernel and bias / T."""
    layer = model.get_layer(CLASSIFIER)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])


def calibrate(model, probabilities: np.ndarray, labels: np.ndarray, log) -> float:
    """Fit T on the held-out examples' `probabilities` (the trained model's) and apply it to
    `model`; log the NLL before and after. Returns T."""
    temperature = fit_temperature(probabilities, labels)
    apply(model, temperature)
    log.info(
        "calibrated on %d held-out examples: temperature %.3f (their loss %.4f -> %.4f)",
        len(labels),
        temperature,
        nll(probabilities, labels),
        nll(probabilities, labels, temperature),
    )
    return temperature
