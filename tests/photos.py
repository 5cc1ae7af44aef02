"""Synthetic photos of handwritten digits on paper, and a classifier to score preprocessing.

Real MNIST test digits (handwriting) are drawn onto synthetic paper of six kinds: ruled notebook
paper with coloured ink and a margin line; squared paper in pencil, turned a little; a 12 MP phone
photo under a strong shadow with heavy JPEG; a digit in a printed box on grey paper; a small digit
off-centre on white paper; a sticky note, coloured and blurred. Everything is seeded, so a test
can assert accuracy with a margin and a benchmark can compare methods on the same images.

The scorer is a k-nearest-neighbour classifier over MNIST training digits (blurred, centred,
unit-length features): no training, deterministic, about 96% on clean MNIST, and it reads the
preprocessed 28x28 exactly as the model would receive it.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from components.dataset import mnist

KINDS = ("ruled", "grid", "shadow", "box", "offcentre", "sticky")
TWELVE_MP = (4000, 3000)


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _stroke_mask(digit: np.ndarray, height: int) -> Image.Image:
    """The digit's ink as an L mask `height` px tall, smooth at any scale."""
    img = Image.fromarray(digit).crop(Image.fromarray(digit).getbbox() or (0, 0, 28, 28))
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.Resampling.BICUBIC)


def _ink_on(paper: Image.Image, digit: np.ndarray, height: int, at, ink) -> Image.Image:
    """Composite the digit in colour `ink` onto `paper`, its top-left at `at`."""
    mask = _stroke_mask(digit, height)
    layer = Image.new(paper.mode, mask.size, ink)
    paper.paste(layer, at, mask)
    return paper


def _centred(paper: Image.Image, size: tuple[int, int], rng, jitter: float = 0.08):
    w, h = paper.size
    dx, dy = (rng.uniform(-jitter, jitter) * n for n in (w, h))
    return int(w / 2 - size[0] / 2 + dx), int(h / 2 - size[1] / 2 + dy)


def ruled(digit: np.ndarray, rng) -> bytes:
    w, h = 1200, 900
    page = Image.new("RGB", (w, h), (238, 236, 230))
    draw = ImageDraw.Draw(page)
    spacing = int(rng.integers(40, 60))
    for y in range(int(rng.integers(10, spacing)), h, spacing):
        draw.line([(0, y), (w, y)], fill=(150, 175, 225), width=2)
    margin = int(w * rng.uniform(0.1, 0.18))
    draw.line([(margin, 0), (margin, h)], fill=(215, 110, 110), width=3)
    height = int(h * rng.uniform(0.3, 0.45))
    ink = [(25, 45, 160), (20, 20, 30), (150, 30, 120)][int(rng.integers(3))]
    size = _stroke_mask(digit, height).size
    page = _ink_on(page, digit, height, _centred(page, size, rng), ink)
    page = page.rotate(
        float(rng.uniform(-2, 2)), Image.Resampling.BICUBIC, fillcolor=(238, 236, 230)
    )
    return jpeg(page, 85)


def grid(digit: np.ndarray, rng) -> bytes:
    w, h = 1200, 900
    page = Image.new("L", (w, h), 240)
    draw = ImageDraw.Draw(page)
    step = int(rng.integers(32, 48))
    for x in range(int(rng.integers(0, step)), w, step):
        draw.line([(x, 0), (x, h)], fill=185, width=2)
    for y in range(int(rng.integers(0, step)), h, step):
        draw.line([(0, y), (w, y)], fill=185, width=2)
    height = int(h * rng.uniform(0.3, 0.45))
    pencil = int(rng.integers(85, 115))
    size = _stroke_mask(digit, height).size
    page = _ink_on(page, digit, height, _centred(page, size, rng), pencil)
    grain = rng.normal(0, 5, (h, w))
    page = Image.fromarray(np.clip(np.asarray(page, np.float32) + grain, 0, 255).astype(np.uint8))
    page = page.rotate(float(rng.uniform(-4, 4)), Image.Resampling.BICUBIC, fillcolor=240)
    return jpeg(page, 90)


def shadow(digit: np.ndarray, rng, size: tuple[int, int] = TWELVE_MP) -> bytes:
    w, h = size
    page = Image.new("L", (w, h), 242)
    height = int(h * rng.uniform(0.25, 0.4))
    stroke = _stroke_mask(digit, height)
    page = _ink_on(page, digit, height, _centred(page, stroke.size, rng), 35)
    small = (w // 8, h // 8)  # the light field is smooth: build it small, then enlarge
    ys, xs = np.mgrid[0 : small[1], 0 : small[0]].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / small[0] + np.sin(angle) * ys / small[1]) + 1.0
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    vignette = 1 - 0.35 * (((xs / small[0] - 0.5) ** 2 + (ys / small[1] - 0.5) ** 2) * 2)
    light = (0.3 + 0.7 * ramp) * vignette
    field = np.asarray(Image.fromarray(light.astype(np.float32), "F").resize((w, h)))
    arr = np.asarray(page, np.float32) * field + rng.normal(0, 4, (h, w)).astype(np.float32)
    return jpeg(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), 35)


def box(digit: np.ndarray, rng) -> bytes:
    w, h = 1000, 800
    grey = int(rng.integers(175, 205))
    page = Image.new("L", (w, h), grey)
    height = int(h * rng.uniform(0.3, 0.45))
    size = _stroke_mask(digit, height).size
    at = _centred(page, size, rng, jitter=0.04)
    pad = int(height * rng.uniform(0.15, 0.3))
    frame = [at[0] - pad, at[1] - pad, at[0] + size[0] + pad, at[1] + size[1] + pad]
    ImageDraw.Draw(page).rectangle(frame, outline=15, width=int(rng.integers(2, 5)))
    page = _ink_on(page, digit, height, at, 30)
    return jpeg(page, 85)


def offcentre(digit: np.ndarray, rng) -> bytes:
    w, h = 1000, 800
    page = Image.new("L", (w, h), 250)
    height = int(h * rng.uniform(0.12, 0.22))
    size = _stroke_mask(digit, height).size
    at = (
        int(rng.uniform(0.05, 0.95) * (w - size[0])),
        int(rng.uniform(0.05, 0.95) * (h - size[1])),
    )
    return png(_ink_on(page, digit, height, at, 20))


def sticky(digit: np.ndarray, rng) -> bytes:
    w = h = 800
    paper = [(250, 232, 120), (250, 180, 200), (170, 225, 250)][int(rng.integers(3))]
    page = Image.new("RGB", (w, h), paper)
    height = int(h * rng.uniform(0.4, 0.6))
    size = _stroke_mask(digit, height).size
    page = _ink_on(page, digit, height, _centred(page, size, rng), (20, 20, 25))
    page = page.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 3.0))))
    return jpeg(page, 80)


MAKERS: dict[str, Callable] = {
    "ruled": ruled,
    "grid": grid,
    "shadow": shadow,
    "box": box,
    "offcentre": offcentre,
    "sticky": sticky,
}


def photos(
    images: np.ndarray, labels: np.ndarray, per_kind: int, seed: int = 0, kinds=KINDS
) -> Iterator[tuple[str, bytes, int]]:
    """(kind, encoded photo, label): `per_kind` photos of each kind, from distinct test digits."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=per_kind * len(kinds), replace=False)
    for i, index in enumerate(picks):
        kind = kinds[i // per_kind]
        yield kind, MAKERS[kind](images[index], rng), int(labels[index])


def load_mnist(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    return mnist.load_split(folder, split)


def _features(images: np.ndarray) -> np.ndarray:
    from tests.unit.digit_images import features

    return features(images)


class Knn:
    """k-nearest neighbours over MNIST training digits, by cosine of blurred features."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, k: int = 5):
        self.train, self.labels, self.k = _features(images), labels.astype(np.int64), k

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.votes(batch)[0]

    def votes(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the classes, the share of the k neighbours that voted for each)."""
        scores = _features(batch) @ self.train.T
        nearest = np.argpartition(-scores, self.k, axis=1)[:, : self.k]
        counts = np.stack([np.bincount(v, minlength=10) for v in self.labels[nearest]])
        return counts.argmax(axis=1), counts.max(axis=1) / self.k


@functools.cache
def knn(folder: str, n: int = 20_000) -> Knn:
    images, labels = load_mnist(Path(folder), "train")
    return Knn(images[:n], labels[:n])
