"""The train step's HTML report: learning curves, the confusion matrix, the digits it got wrong."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from components.common import report
from components.train.config import TrainConfig

MISTAKES_SHOWN = 48


def training_report(result, images: np.ndarray, labels: np.ndarray, cfg: TrainConfig) -> str:
    """A self-contained page for `result` (a TrainResult) on the test split (images, labels)."""
    epochs = [row["epoch"] for row in result.history]
    curves = report.line_chart(
        "Loss",
        epochs,
        {
            "train loss": [row["train_loss"] for row in result.history],
            "test loss": [row["test_loss"] for row in result.history],
        },
        "loss",
    ) + report.line_chart(
        "Test accuracy",
        epochs,
        {"test accuracy": [row["test_accuracy"] for row in result.history]},
        "accuracy",
    )
    wrong = np.flatnonzero(result.predicted != labels)
    # the most confident mistakes first: those are the ones worth a look
    wrong = wrong[np.argsort(-result.confidence[wrong], kind="stable")][:MISTAKES_SHOWN]
    cells = "".join(
        '<div class="cell error">'
        + report.img(images[i], 56, f"test image {i}")
        + f"true {labels[i]} → <b>{result.predicted[i]}</b><br>p={result.confidence[i]:.2f}</div>"
        for i in wrong
    )
    n_wrong = int((result.predicted != labels).sum())
    settings = ", ".join(f"{k}={v}" for k, v in asdict(cfg).items())
    # what the two losses were measured with: dropout only if training had any
    on, off = ("", "")
    if cfg.dropout:
        on, off = f" with dropout {cfg.dropout:g} on", ", with dropout off"
    calibrated = (
        f"probabilities calibrated at temperature {result.temperature:.2f} on the validation split"
        if result.temperature != 1.0
        else "probabilities not calibrated (no validation split)"
    )
    return report.page(
        f"Training: test accuracy {result.test_accuracy:.4f}",
        f"{len(labels)} test images, {n_wrong} misclassified; test loss "
        f"{result.test_loss:.4f}; {result.seconds:.1f} s of training; {calibrated}; {settings}",
        [
            '<h2>Learning curves</h2><div class="charts" id="curves">' + curves + "</div>"
            '<p class="meta" id="losses">Why the test loss is below the training loss: the '
            "training loss is the mean over each epoch, while the weights were still changing, "
            f"on augmented images (shifted, thickened, blurred){on}; the test loss is measured "
            f"after the epoch, on the clean test images{off}.</p>",
            '<h2>Confusion matrix</h2><figure id="confusion">'
            + report.heat_map(result.confusion, [str(d) for d in range(10)])
            + "<figcaption>rows: the true digit; columns: the predicted one</figcaption></figure>",
            f"<h2>Misclassified test digits ({len(wrong)} of {n_wrong}, most confident first)"
            f'</h2><div class="grid" id="mistakes">{cells}</div>',
        ],
    )
