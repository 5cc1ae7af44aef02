"""Synthetic digit images and a template-matching classifier for the batch-predict tests.

Digits are drawn with Pillow's bundled font, so each test can make any size, background, format
or mode it needs. The classifier compares the blurred 28x28 input with templates (each digit's
glyph, preprocessed, at a few render sizes): deterministic, no training, and the same weights
are saved as a SavedModel with the exported model's signature for the end-to-end tests.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from components.common import spec
from components.reading.images import to_mnist


def render(
    digit: int,
    size: tuple[int, int] = (120, 120),
    light: bool = True,
    height: float = 0.6,
    offset: tuple[int, int] = (0, 0),
) -> Image.Image:
    """A grayscale `digit`, dark on light paper or light on dark, `height` of the frame tall."""
    paper, ink = (235, 20) if light else (10, 240)
    img = Image.new("L", size, paper)
    font = ImageFont.load_default(size=max(4, int(min(size) * height)))
    centre = (size[0] // 2 + offset[0], size[1] // 2 + offset[1])
    ImageDraw.Draw(img).text(centre, str(digit), fill=ink, font=font, anchor="mm")
    return img


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


KERNEL = np.array([1, 4, 6, 4, 1], np.float32) / 16  # binomial blur: tolerates 1-2 px shifts
TEMPLATE_SIZES = ((28, 28), (60, 60), (200, 200))  # small renders differ in shape from large


def _blur_matrix(passes: int = 2) -> np.ndarray:
    """B such that B @ x @ B.T blurs a 28x28 image `passes` times with KERNEL."""
    single = np.stack(
        [np.convolve(row, KERNEL, mode="same") for row in np.eye(28, dtype=np.float32)]
    )
    return np.linalg.matrix_power(single.T, passes).astype(np.float32)


BLUR = _blur_matrix()


def features(images: np.ndarray) -> np.ndarray:
    """[N, 784]: blurred, centred, scaled to unit length (a shift-tolerant cosine)."""
    x = (BLUR @ (images.astype(np.float32) / 255.0) @ BLUR.T).reshape(len(images), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds a few bytes: a decompression bomb."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr) - 4)
        + ihdr
        + struct.pack(">I", zlib.crc32(ihdr))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def sample_files() -> tuple[dict[str, bytes], dict[str, int | str]]:
    """Files for a batch, and what each must give: a digit, or a substring of its error.

    Every awkward input of issue 4 is here, next to plain digits with upper-case extensions, in
    a subfolder, and on light and dark backgrounds. Files without an image extension are not
    listed in the expectations: the batch must skip them.
    """
    tall = render(7, (60, 60))
    cmyk = Image.merge("RGB", (tall, tall, Image.eval(tall, lambda v: v // 2))).convert("CMYK")
    alpha = Image.merge("LA", (Image.new("L", (60, 60), 0), render(9, (60, 60), light=False)))
    frames = [render(3, (50, 50)), render(8, (50, 50))]
    truncated = encode(render(4), "PNG")
    truncated_jpeg = encode(render(4), "JPEG")
    expected: dict[str, int | str] = {
        "0.png": 0,
        "1-dark.JPG": 1,
        "sub/2.Png": 2,
        "3.bmp": 3,
        "4.GIF": 4,
        "5-dark.jpeg": 5,
        "6-palette.png": 6,
        "7.jpg": 7,
        "7-cmyk.jpg": 7,
        "8-16bit.png": 8,
        "9-alpha.png": 9,
        "animated-3.gif": 3,
        "large-2.jpg": 2,
        "empty.jpg": "empty file",
        "truncated.png": "corrupt or truncated",
        "truncated.jpg": "corrupt or truncated",
        "text.jpg": "not a JPEG, PNG, BMP, GIF, TIFF, WebP or HEIF image",
        "bomb.png": "image too large",
        "tiny-1x1.png": "blank image",
        "scan.tiff": 1,
    }
    files = {
        "0.png": encode(render(0), "PNG"),
        "1-dark.JPG": encode(render(1, light=False), "JPEG"),
        "sub/2.Png": encode(render(2, (40, 70)), "PNG"),
        "3.bmp": encode(render(3), "BMP"),
        "4.GIF": encode(render(4, light=False), "GIF"),
        "5-dark.jpeg": encode(render(5, (300, 200), light=False), "JPEG"),
        "6-palette.png": encode(render(6).quantize(16), "PNG"),
        "7.jpg": encode(tall, "JPEG"),
        "7-cmyk.jpg": encode(cmyk, "JPEG"),
        "8-16bit.png": encode(Image.fromarray(np.asarray(render(8), np.uint16) * 257), "PNG"),
        "9-alpha.png": encode(alpha, "PNG"),
        "animated-3.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "large-2.jpg": encode(render(2, (3000, 2000)), "JPEG"),
        "empty.jpg": b"",
        "truncated.png": truncated[: len(truncated) // 2],
        "truncated.jpg": truncated_jpeg[: len(truncated_jpeg) // 2],
        "text.jpg": b"this is a text file with an image extension\n",
        "bomb.png": png_header_only(100_000, 100_000),
        "tiny-1x1.png": encode(Image.new("L", (1, 1), 255), "PNG"),
        "README.txt": b"not an image, not listed",
        "labels.csv": b"image,label\n",
        "scan.tiff": encode(render(1), "TIFF"),
    }
    return files, expected


@functools.cache
def weights() -> np.ndarray:
    """[784, 10 * k]: k template glyphs per digit (column d * k + i), as features."""
    glyphs = [
        to_mnist(encode(render(d, size), "PNG")) for d in range(10) for size in TEMPLATE_SIZES
    ]
    return features(np.stack(glyphs)).T


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classify(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numpy classifier: (probabilities [N, 10], classes [N]); best template per digit."""
    scores = (features(images) @ weights()).reshape(len(images), 10, len(TEMPLATE_SIZES))
    probabilities = _softmax(20.0 * scores.max(axis=2)).astype(np.float32)
    return probabilities, probabilities.argmax(axis=1).astype(np.int64)


def save_model(path: Path) -> Path:
    """The same classifier as a SavedModel with the exported model's `serving_default`."""
    import tensorflow as tf

    class Templates(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(weights(), trainable=False)
            self.blur = tf.constant(BLUR)

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8)])
        def serve(self, images):
            x = self.blur @ (tf.cast(images, tf.float32) / 255.0) @ tf.transpose(self.blur)
            x = tf.reshape(x, [-1, 784])
            x = x - tf.reduce_mean(x, axis=1, keepdims=True)
            x = x / (tf.norm(x, axis=1, keepdims=True) + 1e-6)
            scores = tf.reshape(x @ self.w, [-1, 10, len(TEMPLATE_SIZES)])
            probabilities = tf.nn.softmax(20.0 * tf.reduce_max(scores, axis=2))
            return {
                spec.OUTPUT_PROBABILITIES: probabilities,
                spec.OUTPUT_CLASSES: tf.argmax(probabilities, axis=1),
            }

    module = Templates()
    serve = module.serve.get_concrete_function()
    tf.saved_model.save(module, str(path), signatures={spec.SIGNATURE: serve})
    return path
