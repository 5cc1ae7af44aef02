"""The held-back reading families (tests/reading_families.py) are what they say they are.

Each maker is seeded (the same bytes for the same seed, others for another), decodes to the size
and mode its family documents, and the drawing functions yield as many images as asked, each
with the label of the digit drawn. No accuracy is asserted here: bench_reading.py measures it.
The digits are Pillow's font glyphs, white on black as MNIST, so no data set is needed.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests import reading_families as rf
from tests.unit.digit_images import render

RGB_L = {"RGB", "L"}
# family -> (modes, widths, heights): inclusive ranges of the decoded image's size
SHAPES = {
    "tight_crop": (RGB_L, (5, 200), (40, 120)),
    "dark_on_light_small": ({"L"}, (64, 64), (64, 64)),
    "paper_on_table": ({"RGB"}, (800, 800), (600, 600)),
    "printed_form": ({"RGB"}, (500, 800), (220, 320)),
    "felt_tip": ({"RGB"}, (1200, 1600), (900, 1200)),
    "whiteboard": ({"RGB"}, (1024, 1024), (768, 768)),
    "faint_ballpoint": ({"RGB"}, (600, 1000), (420, 1000)),
    "low_light": ({"RGB"}, (640, 1024), (480, 768)),
    "graph_paper": ({"RGB"}, (1000, 1000), (800, 800)),
    "carbon_copy": ({"RGB"}, (800, 800), (600, 600)),
    "pencil_smudge": ({"L"}, (1000, 1000), (800, 800)),
    "coffee_ring": ({"RGB"}, (1000, 1000), (800, 800)),
    "screenshot": ({"RGB"}, (800, 1280), (600, 800)),
    "worksheet": ({"RGB"}, (500, 800), (400, 600)),
}
CLEAN_SHAPES = {  # rendering -> (format, mode, widths)
    "jpg_q20": ("JPEG", "L", (28, 28)),
    "jpg_q50": ("JPEG", "L", (28, 28)),
    "jpg_q95": ("JPEG", "L", (28, 28)),
    "png": ("PNG", "L", (28, 28)),
    "rgb_280": ("PNG", "RGB", (280, 280)),
    "white_background": ("PNG", "RGB", (28, 28)),
    "inverted_png": ("PNG", "L", (28, 28)),
    "alpha": ("PNG", "RGBA", (28, 28)),
    "offcentre_canvas": ("PNG", "L", (56, 84)),
    "sixteen_bit": ("PNG", "I;16", (28, 28)),
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Twenty 28x28 digits, white on black, and their labels."""
    labels = np.arange(20) % 10
    images = np.stack(
        [np.asarray(render(int(d), (28, 28), light=False, height=0.75)) for d in labels]
    )
    return images, labels


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_the_documented_families_and_renderings_are_all_there():
    assert set(rf.FAMILIES) == set(SHAPES)
    assert set(rf.CLEAN) == set(CLEAN_SHAPES)
    assert set(rf.SKLEARN) == {
        "sk_tight_28",
        "sk_tight_64_dark_on_light",
        "sk_margin_200",
        "sk_tight_200",
    }


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_family_is_seeded_and_decodes_to_its_size(name, digits):
    digit = digits[0][3]
    make = rf.FAMILIES[name]
    first = make(digit, np.random.default_rng(5))
    assert make(digit, np.random.default_rng(5)) == first
    assert make(digit, np.random.default_rng(6)) != first
    img = decode(first)
    modes, widths, heights = SHAPES[name]
    assert img.mode in modes
    assert widths[0] <= img.width <= widths[1], img.size
    assert heights[0] <= img.height <= heights[1], img.size
    if name == "screenshot":
        assert img.format == "PNG"


@pytest.mark.parametrize("name", sorted(CLEAN_SHAPES))
def test_a_clean_rendering_is_seeded_and_decodes_to_its_size(name, digits):
    digit = digits[0][7]
    make = rf.CLEAN[name]
    first = make(digit, np.random.default_rng(5))
    assert make(digit, np.random.default_rng(5)) == first
    img = decode(first)
    fmt, mode, (low, high) = CLEAN_SHAPES[name]
    assert (img.format, img.mode) == (fmt, mode)
    assert img.width == img.height and low <= img.width <= high
    # Only the off-centre canvas is placed at random: the others are the digit as it is.
    others = {make(digit, np.random.default_rng(seed)) for seed in range(6, 12)}
    assert (len(others | {first}) > 1) == (name == "offcentre_canvas")


def test_the_clean_renderings_hold_the_digit_itself(digits):
    digit = digits[0][2]
    rng = np.random.default_rng(0)
    as_array = {name: np.asarray(decode(rf.CLEAN[name](digit, rng))) for name in rf.CLEAN}
    assert np.array_equal(as_array["png"], digit)
    assert np.array_equal(as_array["inverted_png"], 255 - digit)
    assert np.array_equal(as_array["white_background"][..., 0], 255 - digit)
    assert np.array_equal(as_array["alpha"][..., 3], digit)
    assert not as_array["alpha"][..., :3].any()  # black ink, transparent elsewhere
    assert np.array_equal(as_array["sixteen_bit"], digit.astype(np.uint16) * 257)
    assert int(as_array["offcentre_canvas"].sum()) == int(digit.astype(np.int64).sum())
    canvas = as_array["offcentre_canvas"]
    ys, xs = np.nonzero(canvas)
    centre = (canvas.shape[0] - 1) / 2
    assert max(abs(ys.mean() - centre), abs(xs.mean() - centre)) > 5


def test_a_tight_crop_has_ink_on_its_edges(digits):
    for i, digit in enumerate(digits[0]):
        img = np.asarray(decode(rf.tight_crop(digit, np.random.default_rng(i))).convert("L"))
        paper = int(img.max())
        edges = [img[0], img[-1], img[:, 0], img[:, -1]]
        assert sum(int(edge.min()) < paper - 64 for edge in edges) >= 2, i


def test_families_yield_per_family_images_each_with_its_digits_label(digits, monkeypatch):
    images, labels = digits[0].copy(), digits[1]
    images[:, 0, 0] = np.arange(len(images))  # a mark: each image differs from the others
    got = list(rf.families(images, labels, per_family=1, seed=3))
    assert [name for name, _, _ in got] == list(rf.FAMILIES)
    assert all(isinstance(data, bytes) and data for _, data, _ in got)
    # With makers that return the digit itself, each label can be traced to its image.
    monkeypatch.setattr(rf, "FAMILIES", {"a": _raw, "b": _raw})
    monkeypatch.setattr(rf, "CLEAN", {"c": _raw, "d": _raw, "e": _raw})
    for draw, names in ((rf.families, "ab"), (rf.clean, "cde")):
        got = list(draw(images, labels, 3, seed=4))
        assert [name for name, _, _ in got] == [n for n in names for _ in range(3)]
        drawn = [np.frombuffer(data, np.uint8).reshape(28, 28) for _, data, _ in got]
        index = [next(i for i, img in enumerate(images) if np.array_equal(img, d)) for d in drawn]
        assert len(set(index)) == len(index)  # distinct digits
        assert [label for _, _, label in got] == [int(labels[i]) for i in index]
        assert list(draw(images, labels, 3, seed=4)) == got
        assert list(draw(images, labels, 3, seed=5)) != got
    named = list(rf.families(images, labels, 2, seed=0, names=["b"]))
    assert [name for name, _, _ in named] == ["b", "b"]


def _raw(digit: np.ndarray, rng) -> bytes:
    return digit.tobytes()


def test_clean_yields_per_images_of_every_rendering(digits):
    got = list(rf.clean(*digits, per=2, seed=1))
    assert [name for name, _, _ in got] == [n for n in rf.CLEAN for _ in range(2)]


@pytest.fixture(scope="module")
def sk_renderings():
    return list(rf.sklearn_renderings(seed=0, per=10))


def test_sklearn_renderings_are_seeded_balanced_and_labelled(sk_renderings):
    from sklearn.datasets import load_digits

    names = [name for name, _, _ in sk_renderings]
    assert names == [n for n in rf.SKLEARN for _ in range(10)]
    labels = [label for _, _, label in sk_renderings]
    assert np.bincount(labels, minlength=10).tolist() == [4] * 10
    assert list(rf.sklearn_renderings(seed=0, per=10)) == sk_renderings
    assert list(rf.sklearn_renderings(seed=1, per=10)) != sk_renderings
    # Each label is that of an 8x8 digit whose rendering it is.
    digits = load_digits()
    name, data, label = sk_renderings[0]
    small = np.asarray(decode(data).resize((8, 8), Image.Resampling.BOX), np.float32)
    nearest = np.argmin(((digits.images * 255 / 16 - small) ** 2).sum(axis=(1, 2)))
    assert digits.target[nearest] == label


def test_sklearn_renderings_without_per_are_the_whole_set_in_every_rendering():
    import itertools

    from sklearn.datasets import load_digits

    digits = load_digits()
    whole = rf.sklearn_renderings(per=None)
    first = list(itertools.islice(whole, len(digits.target) + 1))
    assert [name for name, _, _ in first] == ["sk_tight_28"] * len(digits.target) + [
        "sk_tight_64_dark_on_light"
    ]
    assert [label for _, _, label in first[:-1]] == digits.target.tolist()
    assert first[5][1] == rf.SKLEARN["sk_tight_28"](digits.images[5] / 16.0)


def test_sklearn_renderings_touch_the_edges_they_say_they_do(sk_renderings):
    sizes = {"sk_tight_28": 28, "sk_tight_64_dark_on_light": 64, "sk_margin_200": 200}
    sizes["sk_tight_200"] = 200
    for name, data, _ in sk_renderings:
        img = decode(data)
        assert (img.mode, img.size) == ("L", (sizes[name],) * 2)
        arr = np.asarray(img).astype(np.int16)
        border = np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])
        if name == "sk_tight_28":  # white on black
            ink = arr > 64
            assert int(np.median(border)) < 32
        else:  # dark on light
            ink = arr < int(np.median(border)) - 64
            assert int(np.median(border)) >= 200
        if name == "sk_margin_200":
            assert not ink[:30].any() and not ink[-30:].any()
            assert not ink[:, :30].any() and not ink[:, -30:].any()
            assert ink[40:160, 40:160].any()
        else:  # the 8x8 digits have ink in their first and last rows
            assert ink[0].any() and ink[-1].any(), name
