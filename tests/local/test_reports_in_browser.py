"""The HTML reports as a person sees them: rendered by a real Chromium, inside a sandboxed
iframe as the KFP UI shows them, with every picture decoded and nothing fetched from outside.

Needs Debian's chromium (`.ci/run` installs it) and the playwright package (never
`playwright install`). Screenshots are kept in out/screenshots/ as artifacts of the run.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components.batch_predict.predictor import batch_predict
from components.dataset import mnist
from components.train.config import TrainConfig
from components.train.report import training_report
from components.train.trainer import train
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = REPO / "out" / "screenshots"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)
SAMPLES = REPO / "pipeline" / "samples"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def show(browser, html_text: str, name: str):
    """Load the report into a sandboxed iframe (as the KFP UI does); returns (page, frame).

    Any request leaving the page (a script, font or stylesheet from elsewhere) fails the test.
    """
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    outside = []
    page.on("request", lambda r: r.url.startswith(("http", "ws")) and outside.append(r.url))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(
        '<iframe id="r" sandbox="" style="width:1060px;height:2400px;border:0"></iframe>'
    )
    page.eval_on_selector("#r", "(f, html) => { f.srcdoc = html; }", html_text)
    frame = page.frame_locator("#r")
    frame.locator("h1").wait_for()
    assert outside == [] and errors == []
    return page, frame


def decoded_images(page) -> tuple[int, int]:
    """(images, decoded images) inside the iframe, read through the frame object."""
    (frame,) = [f for f in page.frames if f != page.main_frame]
    return frame.evaluate(
        "() => [document.images.length,"
        " [...document.images].filter(i => i.complete && i.naturalWidth > 0).length]"
    )


def screenshot(page, name: str) -> Path:
    """The whole report: the iframe and the viewport are grown to the report's height first
    (Chromium paints only the visible part of a frame)."""
    (frame,) = [f for f in page.frames if f != page.main_frame]
    page.eval_on_selector("#r", "f => { f.style.height = '10px'; }")
    height = frame.evaluate("document.documentElement.scrollHeight") + 16
    page.eval_on_selector("#r", "(f, h) => { f.style.height = h + 'px'; }", height)
    page.set_viewport_size({"width": 1100, "height": height})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # a page with pictures, not a blank one
    return path


@pytest.fixture(scope="module")
def trained(small_mnist_dir):
    train_data = mnist.load_split(small_mnist_dir, "train")
    test_data = mnist.load_split(small_mnist_dir, "test")
    cfg = TrainConfig(epochs=2, batch_size=64, learning_rate=0.01)
    return train(train_data, test_data, cfg), test_data, cfg


def test_the_training_report_renders(browser, trained):
    result, (images, labels), cfg = trained
    page, frame = show(browser, training_report(result, images, labels, cfg), "train")
    assert frame.locator("h1").inner_text().startswith("Training: test accuracy ")
    assert frame.locator("#curves svg").count() == 2
    assert frame.locator("#curves svg polyline").count() == 3  # train loss, test loss, accuracy
    assert frame.locator("#confusion svg rect").count() == 100
    mistakes = int((result.predicted != labels).sum())
    assert frame.locator("#mistakes .cell").count() == min(mistakes, 48)
    total, decoded = decoded_images(page)
    assert total == decoded == min(mistakes, 48)
    assert frame.locator("#confusion svg").is_visible()
    calibrated = (
        f"probabilities calibrated at temperature {result.temperature:.2f} on the validation split"
        if cfg.validation_split
        else "probabilities not calibrated (no validation split)"
    )
    assert calibrated in frame.locator("body").inner_text()
    screenshot(page, "train-report")
    # why the two losses differ names dropout only for a run that had some
    other = training_report(result, images, labels, replace(cfg, dropout=0.3))
    assert "with dropout 0.3 on" in other and ", with dropout off." in other
    none = training_report(result, images, labels, replace(cfg, dropout=0.0))
    assert "with dropout" not in none and "on the clean test images.</p>" in none


def test_the_batch_predict_report_renders(browser, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(SAMPLES, images)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (images / "notes.txt").write_text("not an image")

    def classify(batch: np.ndarray):
        # a stand-in model: confident on some images, unsure on the others
        probabilities = np.full((len(batch), 10), 0.02, dtype=np.float32)
        classes = batch.reshape(len(batch), -1).sum(axis=1).astype(int) % 10
        probabilities[np.arange(len(batch)), classes] = np.where(classes % 2, 0.5, 0.9)
        return probabilities, classes

    summary = batch_predict(
        str(images), str(tmp_path / "out"), classify, model_label="models/mnist/3"
    )
    page, frame = show(browser, summary["html"], "batch-predict")
    heading = frame.locator("h1").inner_text()
    assert heading == "Batch prediction: 10 of 11 images classified"
    cells = frame.locator("#images .cell")
    assert cells.count() == 11
    assert "error" in cells.first.get_attribute("class"), "failures come first"
    assert "broken.png" in cells.first.inner_text()
    assert "unsure" in cells.nth(1).get_attribute("class"), "then the low-confidence ones"
    total, decoded = decoded_images(page)
    assert total == decoded == 20  # 10 thumbnails and the 10 28x28 the model saw
    assert "notes.txt" in frame.locator("#problems").inner_text()
    assert "models/mnist/3" in frame.locator(".meta").inner_text()
    screenshot(page, "batch-predict-report")


@pytest.mark.parametrize("width", [390, 1280])
def test_both_reports_fit_a_phone_and_a_laptop(browser, trained, tmp_path, width):
    """Nothing wider than the screen (a digest, a URI, a chart), no empty header row in the
    provenance table, round tick values, and why the two losses differ, said."""
    result, (images, labels), cfg = trained
    images_dir = tmp_path / "images"
    shutil.copytree(SAMPLES, images_dir)

    def classify(batch: np.ndarray):
        probabilities = np.full((len(batch), 10), 0.01, dtype=np.float32)
        probabilities[:, 7] = 0.91
        return probabilities, np.full(len(batch), 7)

    lineage = {
        "saved_model_digest": "77541476447f922bee5d7276d601d0b114b50703d13e95ef8",
        "model_uri": "s3://mlpipeline/a-long-store-prefix/of/a/team/models/mnist/12",
    }
    summary = batch_predict(
        str(images_dir), str(tmp_path / "out"), classify, model_label="m", lineage=lineage
    )
    for name, html_text in (
        ("train", training_report(result, images, labels, cfg)),
        ("batch-predict", summary["html"]),
    ):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_content(html_text)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        assert page.locator("th:empty").count() == 0, name
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-report-{width}.png"), full_page=True)
        if name == "train":
            ticks = page.locator("#curves svg text[text-anchor=end]").all_text_contents()
            assert ticks and all(len(t.replace("-", "").replace(".", "")) <= 4 for t in ticks)
            losses = page.inner_text("#losses")
            assert "Why the test loss is below the training loss" in losses
            assert ("dropout" in losses) == bool(cfg.dropout)  # said only when there is one
        else:
            assert "77541476447f922bee5d" in page.inner_text("#provenance")
        page.close()
