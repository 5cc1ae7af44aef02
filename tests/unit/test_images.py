"""`to_mnist`: any image of a digit becomes a centred 28x28 white-on-black array, or an error."""

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageDraw

from components.reading import images
from components.reading.images import ImageError, to_mnist
from tests.unit.digit_images import classify, encode, png_header_only, render


def digit_of(data: bytes) -> int:
    return int(classify(to_mnist(data)[None])[1][0])


def centre_of_mass(arr: np.ndarray) -> tuple[float, float]:
    w = arr.astype(np.float64)
    ys = np.arange(28)
    return float(w.sum(1) @ ys / w.sum()), float(w.sum(0) @ ys / w.sum())


def ink_box(arr: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero((arr > 32).any(1)), np.flatnonzero((arr > 32).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_light_and_dark_backgrounds_give_the_same_centred_digit():
    light = render(4, (160, 120), light=True, offset=(-30, 10))
    dark = Image.eval(light, lambda v: 255 - v)
    a, b = to_mnist(encode(light, "PNG")), to_mnist(encode(dark, "PNG"))
    np.testing.assert_array_equal(a, b)
    other = to_mnist(encode(render(4, (300, 500), light=False, height=0.3), "PNG"))
    assert np.abs(a.astype(int) - other).mean() < 12  # same glyph, other size and place
    for arr in (a, other):
        assert arr.dtype == np.uint8 and arr.shape == (28, 28)
        assert max(ink_box(arr)) in (19, 20, 21)
        cy, cx = centre_of_mass(arr)
        assert abs(cy - 14) <= 0.6 and abs(cx - 14) <= 0.6
        assert arr[0].max() == arr[-1].max() == arr[:, 0].max() == arr[:, -1].max() == 0
        assert arr.max() == 255


def test_an_mnist_like_image_and_its_negative_pass_unchanged():
    mnist_like = to_mnist(encode(render(2, (200, 200)), "PNG"))
    assert images._mnist_like(mnist_like) is not None  # the cheap path is taken
    np.testing.assert_array_equal(to_mnist(encode(Image.fromarray(mnist_like), "PNG")), mnist_like)
    negative = Image.fromarray(255 - mnist_like)
    np.testing.assert_array_equal(to_mnist(encode(negative, "BMP")), mnist_like)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
@pytest.mark.parametrize("size", [(28, 28), (45, 80), (640, 480)])
def test_every_format_and_size_is_classified(fmt, size):
    for digit in (0, 3, 7):
        for light in (True, False):
            assert digit_of(encode(render(digit, size, light), fmt)) == digit


def colour(img: Image.Image, paper: tuple, ink: tuple) -> Image.Image:
    """Recolour a light-paper grayscale render: paper and ink in any RGB colours."""
    mask = Image.eval(img, lambda v: 255 - v)  # ink strength
    return Image.composite(Image.new("RGB", img.size, ink), Image.new("RGB", img.size, paper), mask)


def test_colour_cmyk_and_palette_images():
    base = render(5, (90, 90))
    rgb = colour(base, (250, 240, 120), (20, 40, 160))  # blue ink on yellow paper
    assert digit_of(encode(rgb, "JPEG", quality=85)) == 5
    assert digit_of(encode(rgb.convert("CMYK"), "JPEG")) == 5
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert digit_of(encode(palette, "PNG")) == 5
    assert digit_of(encode(palette, "BMP")) == 5
    bilevel = base.convert("1", dither=Image.Dither.NONE)  # a thresholded scan
    assert digit_of(encode(bilevel, "PNG")) == 5
    assert digit_of(encode(bilevel, "BMP")) == 5


def test_16_bit_grayscale_is_scaled_not_clipped():
    base = np.asarray(render(8, (70, 70)), dtype=np.uint16) * 257  # full 16-bit range
    img = Image.fromarray(base)
    assert img.mode == "I;16"
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert digit_of(data) == 8


def test_alpha_is_composited_over_the_images_own_background():
    shape = render(6, (80, 80), light=False)  # white glyph: use it as the alpha channel
    for ink in (0, 255):  # a black or white digit painted on a transparent sheet
        la = Image.merge("LA", (Image.new("L", shape.size, ink), shape))
        assert digit_of(encode(la, "PNG")) == 6
        assert digit_of(encode(la.convert("RGBA"), "PNG")) == 6
    paper = render(6, (80, 80)).convert("RGBA")  # opaque paper, transparent corners
    alpha = Image.new("L", paper.size, 255)
    ImageDraw.Draw(alpha).rectangle((0, 0, 12, 12), fill=0)
    paper.putalpha(alpha)
    assert digit_of(encode(paper, "PNG")) == 6
    faded = render(6, (80, 80)).convert("RGBA")
    faded.putalpha(200)  # translucent everywhere
    assert digit_of(encode(faded, "PNG")) == 6
    palette = render(6, (80, 80)).quantize(8, dither=Image.Dither.NONE)
    paper_index = int(np.bincount(np.asarray(palette).ravel()).argmax())
    palette.info["transparency"] = paper_index  # anti-aliased ink on a transparent sheet
    assert digit_of(encode(palette, "PNG")) == 6
    assert digit_of(encode(palette, "GIF")) == 6


def test_animated_gif_uses_the_first_frame():
    frames = [render(3, (60, 60)), render(8, (60, 60)), render(1, (60, 60))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert digit_of(data) == 3


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation():
    upright = render(7, (90, 120))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the sensor's view, on its side
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    data = encode(stored, "JPEG", exif=exif.tobytes())
    assert digit_of(data) == 7
    assert digit_of(encode(stored, "JPEG")) != 7  # without the tag it is read on its side


def test_very_large_images_are_reduced_and_classified():
    big = render(9, (4000, 3000), height=0.5)
    assert digit_of(encode(big, "JPEG", quality=80)) == 9  # decoded at reduced scale
    assert digit_of(encode(big, "PNG", compress_level=1)) == 9


def test_a_fine_pen_stroke_on_a_large_page_gets_mnist_thickness():
    page = Image.new("L", (1600, 1200), 255)
    ImageDraw.Draw(page).line([(600, 300), (1000, 300), (750, 900)], fill=0, width=4)  # a "7"
    arr = to_mnist(encode(page, "PNG"))
    assert (arr > 127).sum() >= 40  # MNIST digits: 52 to 167 such pixels (5th-95th percentile)
    assert max(ink_box(arr)) in (19, 20, 21)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, this is not a picture\n", "not a JPEG, PNG, BMP, GIF, TIFF, WebP or HEIF image"),
        (b"%PDF-1.4 a pdf named digit.png", "not a JPEG, PNG, BMP, GIF, TIFF, WebP or HEIF image"),
        (png_header_only(100_000, 100_000), "image too large"),
        (png_header_only(7_000, 7_000), "image too large: 7000x7000"),  # below Pillow's limit
        (png_header_only(0, 5), "corrupt PNG header"),
        (b"\xff\xd8\xff\xe0 and then nothing", "corrupt"),
    ],
)
def test_bad_bytes_give_a_short_reason(data, reason):
    with pytest.raises(ImageError, match=reason) as e:
        to_mnist(data)
    assert len(str(e.value)) < 160 and "\n" not in str(e.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_truncated_files_are_errors(fmt):
    data = encode(render(1, (200, 200)), fmt)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        to_mnist(data[: len(data) // 2])


def test_gif_bomb_is_refused_before_decoding():
    gif = encode(render(1, (10, 10)), "GIF")
    bomb = gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:]  # logical screen size
    with pytest.raises(ImageError, match="too large"):
        to_mnist(bomb)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (50, 50)])
def test_blank_and_tiny_images_say_no_digit(size):
    for value in (0, 255):
        with pytest.raises(ImageError, match="blank image"):
            to_mnist(encode(Image.new("L", size, value), "PNG"))
    transparent = Image.new("RGBA", size, (0, 0, 0, 0))
    with pytest.raises(ImageError, match="blank image"):
        to_mnist(encode(transparent, "PNG"))


def test_a_tiny_digit_is_scaled_up():
    img = Image.new("L", (7, 9), 0)
    ImageDraw.Draw(img).line([(3, 1), (3, 7)], fill=255, width=1)  # a "1", one pixel wide
    arr = to_mnist(encode(img, "PNG"))
    assert ink_box(arr)[0] in (19, 20, 21)
