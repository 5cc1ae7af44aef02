"""Photos of handwritten digits on paper: the preprocessing reads what people upload.

The photos are real MNIST test digits drawn on synthetic paper (tests/photos.py, seeded); they
are scored with a k-nearest-neighbour classifier over MNIST training digits, which reaches about
0.955 on clean MNIST, so accuracies are asserted against that ceiling with a margin. The
previous preprocessing (benchmarks/legacy_preprocess.py) scored 0.0 to 0.2 on the ruled, squared
and shadowed kinds of this same set.
"""

from __future__ import annotations

import collections
import contextlib
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from benchmarks.legacy_preprocess import legacy_to_mnist
from components.reading.image_decode import ImageError
from components.reading.images import to_mnist
from tests import photos
from tests.conftest import SHARED_MNIST, have_full_mnist

pytestmark = pytest.mark.skipif(not have_full_mnist(), reason="needs the MNIST files")
PER_KIND = 8


@pytest.fixture(scope="module")
def mnist_test():
    return photos.load_mnist(SHARED_MNIST, "test")


@pytest.fixture(scope="module")
def knn():
    return photos.knn(str(SHARED_MNIST))


def accuracy(knn, pairs) -> float:
    """Share of (photo bytes, label) read as the right digit; an ImageError is a miss."""
    right = 0
    for data, label in pairs:
        with contextlib.suppress(ImageError):
            right += int(knn(to_mnist(data)[None])[0]) == label
    return right / len(pairs)


def test_every_kind_of_photo_is_read(mnist_test, knn):
    by_kind = collections.defaultdict(list)
    for kind, data, label in photos.photos(*mnist_test, per_kind=PER_KIND, seed=7):
        by_kind[kind].append((data, label))
    scores = {kind: accuracy(knn, pairs) for kind, pairs in by_kind.items()}
    assert min(scores.values()) >= 0.75, scores  # at most 2 of 8 wrong in any kind
    assert sum(scores.values()) / len(scores) >= 0.9, scores


def test_clean_mnist_images_stay_as_good_as_before(mnist_test, knn):
    """28x28 MNIST digits, their negatives, and the same digits large on white paper."""
    images, labels = mnist_test
    pick = np.random.default_rng(3).choice(len(images), 150, replace=False)
    cases = []
    for i in pick:
        digit = Image.fromarray(images[i])
        big = Image.fromarray(255 - images[i]).resize((280, 280), Image.Resampling.BICUBIC)
        for img in (digit, Image.fromarray(255 - images[i]), big):
            buf = io.BytesIO()
            img.save(buf, "PNG")
            cases.append((buf.getvalue(), int(labels[i])))
    ours = accuracy(knn, cases)
    legacy = np.mean([int(knn(legacy_to_mnist(d)[None])[0]) == y for d, y in cases])
    assert ours >= legacy - 0.01, (ours, legacy)
    assert ours >= 0.9


def test_a_page_with_only_lines_says_so_instead_of_guessing():
    page = Image.new("L", (900, 700), 238)
    draw = ImageDraw.Draw(page)
    for y in range(30, 700, 45):
        draw.line([(0, y), (900, y)], fill=160, width=2)
    draw.line([(120, 0), (120, 700)], fill=120, width=3)
    buf = io.BytesIO()
    page.save(buf, "JPEG", quality=85)
    with pytest.raises(ImageError, match="no digit found"):
        to_mnist(buf.getvalue())


def test_iphone_heic_photos_are_read(mnist_test, knn):
    import pillow_heif

    pillow_heif.register_heif_opener()
    images, labels = mnist_test
    rng = np.random.default_rng(5)
    page = Image.open(io.BytesIO(photos.sticky(images[0], rng))).convert("RGB")
    buf = io.BytesIO()
    page.save(buf, "HEIF", quality=80)
    assert buf.getvalue()[4:12] == b"ftypheic"
    assert int(knn(to_mnist(buf.getvalue())[None])[0]) == int(labels[0])
