"""Held-back families of digit images, to evaluate the reading preprocessing on what it never saw.

Each family imitates a way people photograph, scan or draw one handwritten digit; every image is
a real MNIST test digit (handwriting) drawn into it, so a family's accuracy says how well
`components.reading.images.to_mnist` recovers the digit from that kind of picture:

- tight_crop: the digit cut out to its ink (it touches all four edges), 40-120 px, dark on white,
  as a user crops a scan before uploading it;
- dark_on_light_small: a 64 px thumbnail, dark ink on light grey, the digit filling the frame;
- paper_on_table: a phone photo of a sheet of paper lying on a wooden table, seen at an angle
  (a perspective quadrilateral), with the table showing on two to four sides;
- printed_form: a cell of a printed form: a typed label ("Qty:", "No.") and an underline or a
  table cell that the handwritten digit often touches;
- felt_tip: a digit written with a thick marker (stroke 12-20% of its height) on a large photo;
- whiteboard: marker on a whiteboard, a glare of the room's light over part of the digit and the
  grey ghost of an erased stroke elsewhere;
- faint_ballpoint: a thin light ballpoint or grey ink line (40-70 levels of contrast) on grainy
  paper;
- low_light: a photo in a dim room: dark, low contrast, heavy sensor noise and strong JPEG;
- graph_paper: engineering paper with a fine and a bold grid in light green or blue;
- carbon_copy: the blurred, smudged purple-blue copy of a carbon or NCR form, with the faint
  double of a shifted sheet;
- pencil_smudge: a pencil digit with a soft graphite smudge rubbed partly under it;
- coffee_ring: a broken brown ring left by a cup, beside the digit or across its edge;
- screenshot: a digit drawn with a round brush in a drawing app, captured with the app's grey
  frame and its toolbar of colour swatches;
- worksheet: a school worksheet photographed crooked (up to 12 degrees): a paragraph of printed
  instructions above the answer, often a footer and a printed question number ("3)") beside it.

CLEAN holds MNIST-style renderings that any preprocessing must keep reading (28x28 JPEGs of
three qualities, PNG, negatives, RGBA, 16-bit, 280 px RGB, off-centre on a larger canvas), and
`sklearn_renderings` renders scikit-learn's 8x8 digits (a different handwriting set, the ink
touching the top and bottom edges) at four sizes, and `font_renderings` the ten digits of each
handwriting-style font a Debian package ships (FONTS; ten shapes per font, so a family's score
moves in steps of a tenth of its images).

Everything is seeded (numpy's default_rng) and offline: Pillow and numpy draw, scikit-learn only
supplies its bundled 8x8 digits. The helpers of tests/photos.py draw the strokes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tests.photos import _centred, _ink_on, _stroke_mask, jpeg, png

Maker = Callable[[np.ndarray, np.random.Generator], bytes]


# --- drawing helpers ------------------------------------------------------------------------


def _digit_height(digit: np.ndarray, width: float, height: float) -> int:
    """The stroke mask's height that fits the digit inside width x height."""
    box = Image.fromarray(digit).getbbox() or (0, 0, 28, 28)
    bw, bh = box[2] - box[0], box[3] - box[1]
    return max(4, int(min(height, width * bh / bw)))


def _paste(page: Image.Image, mask: Image.Image, at, ink) -> Image.Image:
    """Paint colour `ink` through the L `mask` onto `page`, the mask's top-left at `at`."""
    page.paste(Image.new(page.mode, mask.size, ink), at, mask)
    return page


def _encode(img: Image.Image, rng, quality: tuple[int, int], png_share: float = 0.0) -> bytes:
    if rng.random() < png_share:
        return png(img)
    return jpeg(img, int(rng.integers(quality[0], quality[1] + 1)))


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask: area / (perimeter / 2), as for a thin stroke."""
    area = int(mask.sum())
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    edge = max(1, area - int(inner[1:-1, 1:-1].sum()))
    return 2.0 * area / edge


def _skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a binary mask: the one-pixel centre line of each stroke."""
    img = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = np.pad(img, 1)
            n = [  # P2..P9, clockwise from north
                p[:-2, 1:-1],
                p[:-2, 2:],
                p[1:-1, 2:],
                p[2:, 2:],
                p[2:, 1:-1],
                p[2:, :-2],
                p[1:-1, :-2],
                p[:-2, :-2],
            ]
            count = sum(x.astype(np.uint8) for x in n)
            turns = sum((~n[i] & n[(i + 1) % 8]).astype(np.uint8) for i in range(8))
            if step == 0:
                side = ~(n[0] & n[2] & n[4]) & ~(n[2] & n[4] & n[6])
            else:
                side = ~(n[0] & n[2] & n[6]) & ~(n[0] & n[4] & n[6])
            drop = img & (count >= 2) & (count <= 6) & (turns == 1) & side
            if drop.any():
                img = img & ~drop
                changed = True
        if not changed:
            return img[1:-1, 1:-1]


def _pen(digit: np.ndarray, height: int, width: float) -> Image.Image:
    """The digit's centre line drawn with a round pen `width` px wide, as an L mask."""
    mask = np.asarray(_stroke_mask(digit, height)) > 100
    pad = int(width) + 4
    line = np.pad(_skeleton(mask), pad).astype(np.float32)
    sigma = max(0.5, width / 3.1)  # a blurred line is width wide at 30% of its peak
    blurred = _blur(line, sigma)
    peak = 1.0 / (np.sqrt(2 * np.pi) * sigma)
    level = 0.3 * peak
    alpha = np.clip((blurred - level) / (0.35 * level) + 0.5, 0, 1)
    return _crop(Image.fromarray((alpha * 255).astype(np.uint8)))


def _blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float image (separable, in numpy: Pillow does not blur mode F)."""
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = np.apply_along_axis(np.convolve, 0, arr, kernel, mode="same")
    return np.apply_along_axis(np.convolve, 1, out, kernel, mode="same")


def _crop(mask: Image.Image, level: int = 0) -> Image.Image:
    box = mask.point(lambda v: 255 if v > level else 0).getbbox()
    return mask.crop(box) if box else mask


def _thick(digit: np.ndarray, height: int, fraction: float) -> Image.Image:
    """The digit dilated until its stroke is `fraction` of its height, `height` px tall."""
    work = 100
    mask = np.pad(np.asarray(_stroke_mask(digit, work)) > 100, work // 4)
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    for _ in range(12):
        arr = np.asarray(img) > 127
        rows = np.flatnonzero(arr.any(axis=1))
        if _stroke_width(arr) >= fraction * (rows[-1] - rows[0] + 1):
            break
        img = img.filter(ImageFilter.MaxFilter(3))
    img = _crop(img.filter(ImageFilter.GaussianBlur(1.5)).point(lambda v: 255 if v > 110 else 0))
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.BoxBlur(1))


def _noise_field(rng, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth noise in 0..1 at `size` (w, h): random cells enlarged bicubically."""
    small = rng.random((cells[1], cells[0])).astype(np.float32)
    field = Image.fromarray(small, "F").resize(size, Image.Resampling.BICUBIC)
    return np.clip(np.asarray(field), 0, 1)


def _blend(arr: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    """arr (h, w, 3) float with colour laid over it at opacity alpha (h, w)."""
    return arr * (1 - alpha[..., None]) + np.asarray(colour, np.float32) * alpha[..., None]


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _perspective(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]):
    """Pillow's PERSPECTIVE coefficients mapping output points `dst` to input points `src`."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))


def _paper(rng, size: tuple[int, int], tint=(0, 0, 0), grain: float = 3.0) -> np.ndarray:
    """Off-white paper (h, w, 3) float with a little grain."""
    level = rng.uniform(236, 250)
    arr = np.empty((size[1], size[0], 3), np.float32)
    arr[...] = np.array([level + t for t in tint], np.float32)
    return arr + rng.normal(0, grain, (size[1], size[0], 1)).astype(np.float32)


# --- the families ---------------------------------------------------------------------------


def tight_crop(digit: np.ndarray, rng) -> bytes:
    height = int(rng.integers(40, 121))
    mask = _crop(_stroke_mask(digit, round(1.1 * height)), 160)  # strong ink on every edge
    width = max(1, round(mask.width * height / mask.height))
    mask = mask.resize((width, height), Image.Resampling.BICUBIC)
    paper, ink = int(rng.integers(235, 256)), int(rng.integers(0, 51))
    if rng.random() < 0.5:
        page = Image.new("RGB", mask.size, (paper,) * 3)
        colour = (ink, ink, ink + int(rng.integers(0, 40)))
    else:
        page, colour = Image.new("L", mask.size, paper), ink
    page = _paste(page, mask, (0, 0), colour)
    return _encode(page, rng, (75, 95), png_share=0.5)


def dark_on_light_small(digit: np.ndarray, rng) -> bytes:
    side = 64
    page = Image.new("L", (side, side), int(rng.integers(185, 226)))
    fill = rng.uniform(0.7, 0.88)
    height = _digit_height(digit, side * fill, side * fill)
    size = _stroke_mask(digit, height).size
    ink = int(rng.integers(15, 71))
    page = _ink_on(page, digit, height, _centred(page, size, rng, jitter=0.04), ink)
    return _encode(page, rng, (80, 95), png_share=0.5)


def _table(rng, size: tuple[int, int]) -> np.ndarray:
    """Wood: brown, with grain streaks along x and fine noise (h, w, 3) float."""
    w, h = size
    base = rng.uniform(60, 120)
    ys = np.arange(h, dtype=np.float32)[:, None]
    wobble = _noise_field(rng, size, (6, 40)) * 6
    period = rng.uniform(9, 25)
    streaks = np.sin(2 * np.pi * ys / period + wobble) * rng.uniform(6, 14)
    value = base + streaks + (_noise_field(rng, size, (4, 60)) - 0.5) * 30
    value = value + rng.normal(0, 3, (h, w)).astype(np.float32)
    warmth = np.array([1.3, 0.9, 0.6], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    return value[..., None] * warmth


def paper_on_table(digit: np.ndarray, rng) -> bytes:
    w, h = 800, 600
    table = _table(rng, (w, h))
    sides = int(rng.integers(2, 5))
    visible = set(rng.choice(4, sides, replace=False).tolist())  # left, top, right, bottom

    def edge(side: int, length: int) -> float:
        margin = rng.uniform(0.1, 0.2) if side in visible else -rng.uniform(0.1, 0.15)
        return margin * length

    left, top = edge(0, w), edge(1, h)
    right, bottom = w - edge(2, w), h - edge(3, h)
    quad = [(left, top), (right, top), (right, bottom), (left, bottom)]

    def perturbed(x: float, y: float) -> tuple[float, float]:  # 5-8% out or in: perspective
        dx, dy = (rng.choice([-1, 1]) * rng.uniform(0.05, 0.08) for _ in range(2))
        return x + dx * w, y + dy * h

    quad = [perturbed(x, y) for x, y in quad]
    sw, sh = int(right - left), int(bottom - top)
    sheet = _to_image(_paper(rng, (sw, sh), tint=(0, -2, -6)))
    height = _digit_height(digit, 0.6 * sw, sh * rng.uniform(0.3, 0.45))
    size = _stroke_mask(digit, height).size
    ink = [(25, 40, 140), (25, 25, 30), (35, 35, 90)][int(rng.integers(3))]
    sheet = _ink_on(sheet, digit, height, _centred(sheet, size, rng, 0.1), ink)
    corners = [(0, 0), (sw, 0), (sw, sh), (0, sh)]
    coeffs = _perspective(quad, corners)
    warped = sheet.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    cover = Image.new("L", sheet.size, 255).transform(
        (w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    alpha = np.asarray(cover, np.float32)[..., None] / 255
    arr = np.asarray(warped, np.float32) * alpha + table * (1 - alpha)
    light = 0.8 + 0.25 * _noise_field(rng, (w, h), (3, 3))  # uneven room light
    arr = arr * light[..., None] + rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)
    return jpeg(_to_image(arr), int(rng.integers(80, 92)))


LABELS = ("Qty:", "No.", "Amount:", "Item", "Box", "Nr.", "Count:", "Grade:")


def printed_form(digit: np.ndarray, rng) -> bytes:
    w, h = int(rng.integers(500, 801)), int(rng.integers(220, 321))
    page = Image.new("RGB", (w, h), (int(rng.integers(244, 256)),) * 3)
    draw = ImageDraw.Draw(page)
    printed = (int(rng.integers(0, 40)),) * 3
    font = ImageFont.load_default(size=int(rng.integers(22, 40)))
    label = LABELS[int(rng.integers(len(LABELS)))]
    touch = rng.random() < 0.6  # the digit runs into the line or the cell's border
    line = int(rng.integers(2, 4))
    ink = [(20, 40, 150), (25, 25, 30)][int(rng.integers(2))]
    if rng.random() < 0.5:  # label, then a long underline to write on
        base = int(h * rng.uniform(0.72, 0.85))
        lx = int(rng.integers(15, 40))
        draw.text((lx, base - 4), label, fill=printed, font=font, anchor="ls")
        start = int(draw.textbbox((lx, base), label, font=font, anchor="ls")[2]) + 8
        draw.line([(start, base), (w - int(rng.integers(15, 40)), base)], printed, line)
        height = _digit_height(digit, 0.5 * (w - start), base * rng.uniform(0.55, 0.8))
        size = _stroke_mask(digit, height).size
        x = start + int(rng.uniform(0.1, 0.6) * max(1, w - start - size[0]))
        y = base - size[1] + (int(rng.integers(2, 7)) if touch else -int(rng.integers(6, 20)))
    else:  # a row of a table: the label's cell, the digit's cell, one more
        top, bottom = int(h * rng.uniform(0.1, 0.2)), int(h * rng.uniform(0.8, 0.92))
        x0 = int(draw.textbbox((0, 0), label, font=font)[2]) + int(rng.integers(30, 60))
        x1 = x0 + int((w - x0) * rng.uniform(0.45, 0.7))
        for y_line in (top, bottom):
            draw.line([(8, y_line), (w - 8, y_line)], printed, line)
        for x_line in (8, x0, x1, w - 8):
            draw.line([(x_line, top), (x_line, bottom)], printed, line)
        draw.text((18, (top + bottom) // 2), label, fill=printed, font=font, anchor="lm")
        cell_w, cell_h = x1 - x0, bottom - top
        height = _digit_height(digit, 0.8 * cell_w, cell_h * rng.uniform(0.6, 0.85))
        size = _stroke_mask(digit, height).size
        x = x0 + (cell_w - size[0]) // 2 + int(rng.integers(-10, 11))
        y = top + (cell_h - size[1]) // 2 + int(rng.integers(-6, 7))
        if touch:  # one stroke crosses the bottom, top or left border by a few px
            where = int(rng.integers(3))
            if where == 0:
                y = bottom - size[1] + int(rng.integers(1, 6))
            elif where == 1:
                y = top - int(rng.integers(1, 6))
            else:
                x = x0 - int(rng.integers(1, 6))
    page = _ink_on(page, digit, height, (x, y), ink)
    return _encode(page, rng, (80, 92), png_share=0.3)


def felt_tip(digit: np.ndarray, rng) -> bytes:
    w, h = int(rng.integers(1200, 1601)), int(rng.integers(900, 1201))
    page = _to_image(_paper(rng, (w, h), grain=2.0))
    height = _digit_height(digit, 0.6 * w, h * rng.uniform(0.35, 0.6))
    mask = _thick(digit, height, rng.uniform(0.12, 0.2))
    ink = [(20, 20, 25), (20, 45, 160), (170, 25, 30), (20, 110, 50)][int(rng.integers(4))]
    page = _paste(page, mask, _centred(page, mask.size, rng), ink)
    page = page.rotate(float(rng.uniform(-3, 3)), Image.Resampling.BICUBIC, fillcolor=(240,) * 3)
    return jpeg(page, int(rng.integers(82, 93)))


def whiteboard(digit: np.ndarray, rng) -> bytes:
    w, h = 1024, 768
    level = rng.uniform(215, 235)
    board = np.empty((h, w, 3), np.float32)
    board[...] = (level - 4, level, level + 5)
    board += ((_noise_field(rng, (w, h), (5, 4)) - 0.5) * 14)[..., None]  # uneven board
    height = _digit_height(digit, 0.45 * w, h * rng.uniform(0.35, 0.5))
    mask = _thick(digit, height, rng.uniform(0.08, 0.12))
    at = _centred(Image.new("L", (w, h)), mask.size, rng, 0.06)
    alpha = np.zeros((h, w), np.float32)
    alpha[at[1] : at[1] + mask.height, at[0] : at[0] + mask.width] = np.asarray(mask) / 255
    alpha *= 0.75 + 0.25 * _noise_field(rng, (w, h), (200, 8))  # dry-marker streaks
    # The ghost of an erased stroke, on the side of the digit with the most room.
    x0, x1 = at[0], at[0] + mask.width
    room_left, room_right = x0, w - x1
    lo, hi = (20, x0 - 40) if room_left > room_right else (x1 + 40, w - 20)
    smear = Image.new("L", (w, h), 0)
    points = [
        (float(rng.uniform(lo, lo + 0.4 * (hi - lo))), float(rng.uniform(60, h - 60))),
        (float(rng.uniform(lo + 0.5 * (hi - lo), hi)), float(rng.uniform(60, h - 60))),
    ]
    ImageDraw.Draw(smear).line(points, fill=255, width=int(rng.integers(18, 36)))
    smear = np.asarray(smear.filter(ImageFilter.GaussianBlur(6)), np.float32) / 255
    arr = _blend(board, (level - rng.uniform(18, 32),) * 3, smear * 0.8)
    marker = [(30, 60, 170), (30, 32, 38)][int(rng.integers(2))]
    arr = _blend(arr, marker, alpha)
    # Glare: a bright ellipse centred near the digit's edge, partly over it.
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = at[0] + mask.width * rng.choice([rng.uniform(-0.2, 0.2), rng.uniform(0.8, 1.2)])
    cy = at[1] + mask.height * rng.uniform(0.0, 1.0)
    rx, ry = w * rng.uniform(0.12, 0.25), h * rng.uniform(0.12, 0.25)
    glare = np.exp(-2 * (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)) * rng.uniform(0.45, 0.8)
    arr = arr + glare[..., None] * (255 - arr)
    arr += rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)
    return jpeg(_to_image(arr), int(rng.integers(80, 91)))


def faint_ballpoint(digit: np.ndarray, rng) -> bytes:
    w = int(rng.integers(600, 1001))
    h = int(w * rng.uniform(0.7, 1.0))
    paper = _paper(rng, (w, h), grain=rng.uniform(3, 6))
    height = _digit_height(digit, 0.6 * w, h * rng.uniform(0.3, 0.5))
    mask = _pen(digit, height, rng.uniform(1.8, 3.2))
    at = _centred(Image.new("L", (w, h)), mask.size, rng, 0.1)
    alpha = np.zeros((h, w), np.float32)
    alpha[at[1] : at[1] + mask.height, at[0] : at[0] + mask.width] = np.asarray(mask) / 255
    alpha *= 0.7 + 0.3 * _noise_field(rng, (w, h), (12, 12))  # the pen's pressure
    level = float(np.mean(paper[..., 1]))
    target = level - rng.uniform(40, 70)
    ink = (
        (target - 25, target - 5, min(255.0, target + 45)) if rng.random() < 0.6 else (target,) * 3
    )
    return jpeg(_to_image(_blend(paper, ink, alpha)), int(rng.integers(85, 93)))


def low_light(digit: np.ndarray, rng) -> bytes:
    w, h = [(640, 480), (800, 600), (1024, 768)][int(rng.integers(3))]
    paper = rng.uniform(55, 95)
    arr = np.empty((h, w, 3), np.float32)
    arr[...] = (paper * 1.08, paper, paper * 0.85)  # warm indoor light
    arr *= (0.75 + 0.35 * _noise_field(rng, (w, h), (3, 3)))[..., None]
    height = _digit_height(digit, 0.6 * w, h * rng.uniform(0.35, 0.55))
    mask = _stroke_mask(digit, height)
    at = _centred(Image.new("L", (w, h)), mask.size, rng)
    alpha = np.zeros((h, w), np.float32)
    alpha[at[1] : at[1] + mask.height, at[0] : at[0] + mask.width] = np.asarray(mask) / 255
    ink = paper - rng.uniform(35, 55)
    arr = _blend(arr, (ink, ink, ink * 0.95), alpha)
    arr += rng.normal(0, rng.uniform(12, 20), (h, w, 3)).astype(np.float32)
    img = _to_image(arr).filter(ImageFilter.GaussianBlur(0.6))  # the camera's denoising
    return jpeg(img, int(rng.integers(50, 71)))


def graph_paper(digit: np.ndarray, rng) -> bytes:
    w, h = 1000, 800
    paper = (int(rng.integers(240, 252)),) * 3
    page = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(page)
    green = rng.random() < 0.5
    fine = (185, 225, 195) if green else (185, 210, 240)
    bold = (120, 190, 140) if green else (120, 165, 225)
    step, every = int(rng.integers(10, 17)), int(rng.choice([5, 10]))
    ox, oy = int(rng.integers(0, step * every)), int(rng.integers(0, step * every))
    for x in range(ox % step, w, step):
        bold_line = (x - ox) % (step * every) == 0
        draw.line([(x, 0), (x, h)], bold if bold_line else fine, 2 if bold_line else 1)
    for y in range(oy % step, h, step):
        bold_line = (y - oy) % (step * every) == 0
        draw.line([(0, y), (w, y)], bold if bold_line else fine, 2 if bold_line else 1)
    height = _digit_height(digit, 0.6 * w, h * rng.uniform(0.3, 0.45))
    size = _stroke_mask(digit, height).size
    ink = [(25, 40, 140), (25, 25, 30), (95, 95, 100)][int(rng.integers(3))]
    page = _ink_on(page, digit, height, _centred(page, size, rng), ink)
    page = page.rotate(float(rng.uniform(-3, 3)), Image.Resampling.BICUBIC, fillcolor=paper)
    return jpeg(page, int(rng.integers(82, 93)))


def carbon_copy(digit: np.ndarray, rng) -> bytes:
    w, h = 800, 600
    tint = [(0, 0, 0), (4, 2, -12), (6, -4, -2)][int(rng.integers(3))]  # white, yellow, pink
    arr = _paper(rng, (w, h), tint=tint, grain=3)
    smudge = _noise_field(rng, (w, h), (10, 8)) ** 3 * rng.uniform(0.05, 0.12)
    ink = (float(rng.uniform(70, 100)), float(rng.uniform(55, 80)), float(rng.uniform(150, 185)))
    arr = _blend(arr, ink, smudge)  # carbon rubbed off onto the sheet
    height = _digit_height(digit, 0.6 * w, h * rng.uniform(0.35, 0.5))
    mask = _stroke_mask(digit, height).filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.5)))
    at = _centred(Image.new("L", (w, h)), mask.size, rng)
    stroke = np.asarray(mask, np.float32) / 255
    dx, dy = int(rng.integers(-12, 13)), int(rng.integers(4, 13))
    for (ox, oy), opacity in (((at[0] + dx, at[1] + dy), rng.uniform(0.2, 0.35)), (at, 1.0)):
        alpha = np.zeros((h, w), np.float32)
        y0, x0 = max(0, oy), max(0, ox)
        y1, x1 = min(h, oy + mask.height), min(w, ox + mask.width)
        alpha[y0:y1, x0:x1] = stroke[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        alpha *= opacity * (0.6 + 0.4 * _noise_field(rng, (w, h), (30, 30)))
        arr = _blend(arr, ink, np.clip(alpha * 1.3, 0, 1))
    return jpeg(_to_image(arr), int(rng.integers(75, 91)))


def pencil_smudge(digit: np.ndarray, rng) -> bytes:
    w, h = 1000, 800
    paper = rng.uniform(235, 248)
    arr = np.full((h, w), paper, np.float32) + rng.normal(0, 3, (h, w)).astype(np.float32)
    height = _digit_height(digit, 0.6 * w, h * rng.uniform(0.3, 0.45))
    mask = _stroke_mask(digit, height)
    at = _centred(Image.new("L", (w, h)), mask.size, rng)
    # The smudge: a soft grey blob centred near the digit's edge, partly under it.
    blob = Image.new("L", (w, h), 0)
    cx = at[0] + mask.width * rng.uniform(-0.1, 1.1)
    cy = at[1] + mask.height * rng.choice([rng.uniform(-0.1, 0.25), rng.uniform(0.75, 1.1)])
    rx, ry = w * rng.uniform(0.08, 0.16), h * rng.uniform(0.06, 0.12)
    ImageDraw.Draw(blob).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    blob = blob.filter(ImageFilter.GaussianBlur(rng.uniform(25, 45)))
    arr -= np.asarray(blob, np.float32) / 255 * rng.uniform(25, 50)
    alpha = np.zeros((h, w), np.float32)
    alpha[at[1] : at[1] + mask.height, at[0] : at[0] + mask.width] = np.asarray(mask) / 255
    alpha *= rng.uniform(0.55, 1.0, (h, w)).astype(np.float32)  # graphite grain
    lead = rng.uniform(90, 140)
    arr = arr * (1 - alpha) + lead * alpha
    angle = float(rng.uniform(-3, 3))
    img = _to_image(arr).rotate(angle, Image.Resampling.BICUBIC, fillcolor=int(paper))
    return jpeg(img, int(rng.integers(82, 93)))


def coffee_ring(digit: np.ndarray, rng) -> bytes:
    w, h = 1000, 800
    arr = _paper(rng, (w, h), grain=3)
    height = _digit_height(digit, 0.5 * w, h * rng.uniform(0.3, 0.45))
    mask = _stroke_mask(digit, height)
    at = _centred(Image.new("L", (w, h)), mask.size, rng, 0.05)
    ink = [(25, 40, 140), (25, 25, 30)][int(rng.integers(2))]
    # The ring's centre lies out from the digit, so that its rim crosses the digit's edge
    # (reach below 1) or passes beside it (reach above 1).
    radius = h * rng.uniform(0.15, 0.28)
    angle = rng.uniform(0, 2 * np.pi)
    half = np.hypot(mask.width, mask.height) / 2 * rng.uniform(0.6, 1.0)
    reach = rng.uniform(0.75, 1.3)
    dcx, dcy = at[0] + mask.width / 2, at[1] + mask.height / 2
    cx = dcx + np.cos(angle) * (half + reach * radius)
    cy = dcy + np.sin(angle) * (half + reach * radius)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xs - cx, ys - cy)
    theta = np.arctan2(ys - cy, xs - cx)
    width = radius * rng.uniform(0.03, 0.07)
    rim = np.exp(-(((r - radius) / width) ** 2)) + 0.12 * (r < radius)
    gap = rng.uniform(-np.pi, np.pi)
    broken = np.clip(np.abs(np.angle(np.exp(1j * (theta - gap)))) / 0.6 - 0.3, 0, 1)
    wobble = 0.7 + 0.3 * np.cos(theta * rng.integers(2, 5) + rng.uniform(0, 6))
    alpha = rim * broken * wobble * rng.uniform(0.35, 0.6)
    coffee = (float(rng.uniform(140, 170)), float(rng.uniform(90, 115)), float(rng.uniform(45, 70)))
    arr = _blend(arr, coffee, alpha.astype(np.float32))
    page = _ink_on(_to_image(arr), digit, height, at, ink)
    return jpeg(page, int(rng.integers(82, 93)))


SWATCHES = (  # a drawing app's palette
    (0, 0, 0),
    (230, 40, 40),
    (40, 170, 60),
    (40, 80, 220),
    (250, 200, 30),
    (150, 60, 200),
    (255, 140, 0),
    (255, 255, 255),
)


def screenshot(digit: np.ndarray, rng) -> bytes:
    w, h = [(800, 600), (1024, 768), (1280, 800)][int(rng.integers(3))]
    frame = int(rng.integers(200, 232))
    page = Image.new("RGB", (w, h), (frame, frame, frame + 4))
    draw = ImageDraw.Draw(page)
    bar = int(rng.integers(40, 61))
    draw.rectangle([0, 0, w, bar], fill=(frame - 25,) * 3)
    side = bar - 16
    for i in range(int(rng.integers(4, len(SWATCHES) + 1))):
        x = 12 + i * (side + 8)
        draw.rectangle([x, 8, x + side, 8 + side], fill=SWATCHES[i], outline=(90, 90, 90))
    panel = int(rng.integers(0, 2)) * int(rng.integers(50, 90))  # a side panel, or none
    if panel:
        draw.rectangle([0, bar, panel, h], fill=(frame - 12,) * 3)
    pad = int(rng.integers(8, 24))
    canvas = (panel + pad, bar + pad, w - pad, h - pad)
    draw.rectangle(canvas, fill=(255, 255, 255), outline=(150, 150, 150))
    cw, ch = canvas[2] - canvas[0], canvas[3] - canvas[1]
    height = _digit_height(digit, 0.8 * cw, ch * rng.uniform(0.4, 0.7))
    mask = _pen(digit, height, rng.uniform(6, 18))
    room = (max(1, cw - mask.width), max(1, ch - mask.height))
    at = (
        canvas[0] + int(rng.uniform(0.2, 0.8) * room[0]),
        canvas[1] + int(rng.uniform(0.2, 0.8) * room[1]),
    )
    return png(_paste(page, mask, at, (0, 0, 0)))


INSTRUCTIONS = (
    "Write the digit in the space below.",
    "Exercise 4: how many cats are in the picture?",
    "Please print clearly, one digit only",
    "Count the stars and write the number",
    "Name: ______________   Class: ____",
    "Answer the question in the box",
    "Page 2 of 5",
    "Part B. Arithmetic",
)


def worksheet(digit: np.ndarray, rng) -> bytes:
    w, h = int(rng.integers(500, 801)), int(rng.integers(400, 601))
    page = _to_image(_paper(rng, (w, h), grain=1.5))
    draw = ImageDraw.Draw(page)
    printed = (int(rng.integers(0, 60)),) * 3
    size = int(rng.integers(16, 33))
    font = ImageFont.load_default(size=size)
    bold = int(rng.random() < 0.3)  # a heading set in bold: a thicker printed stroke
    left = int(rng.integers(15, 60))
    top = int(h * rng.uniform(0.04, 0.12))
    for _ in range(int(rng.integers(1, 4))):  # a short paragraph of instructions above
        text = INSTRUCTIONS[int(rng.integers(len(INSTRUCTIONS)))]
        draw.text((left, top), text, fill=printed, font=font, stroke_width=bold,
                  stroke_fill=printed)  # fmt: skip
        top += int(size * rng.uniform(1.3, 1.8))
    if rng.random() < 0.5:  # a footer line
        text = INSTRUCTIONS[int(rng.integers(len(INSTRUCTIONS)))]
        draw.text((left, int(h * rng.uniform(0.86, 0.93))), text, fill=printed, font=font)
    room = int(h * 0.84) - top  # between the paragraph and the footer
    height = _digit_height(digit, 0.45 * w, room * rng.uniform(0.55, 0.85))
    shape = _stroke_mask(digit, height).size
    x = int(rng.uniform(0.2, 0.85) * (w - shape[0]))
    y = top + int(rng.uniform(0.1, 0.9) * max(1, room - shape[1]))
    if rng.random() < 0.4:  # the question's number printed left of the answer: "3)"
        number = f"{int(rng.integers(1, 20))})"
        draw.text((max(5, x - 3 * size), y + shape[1] // 2), number, fill=printed, font=font,
                  anchor="rm")  # fmt: skip
    ink = [(20, 40, 150), (25, 25, 30), (60, 60, 70)][int(rng.integers(3))]
    page = _ink_on(page, digit, height, (x, y), ink)
    turn = float(rng.uniform(-12, 12))  # a phone held crooked: beyond a scan's few degrees
    page = page.rotate(turn, Image.Resampling.BICUBIC, fillcolor=(int(rng.integers(225, 245)),) * 3)
    return _encode(page, rng, (78, 92), png_share=0.3)


FAMILIES: dict[str, Maker] = {
    "tight_crop": tight_crop,
    "dark_on_light_small": dark_on_light_small,
    "paper_on_table": paper_on_table,
    "printed_form": printed_form,
    "felt_tip": felt_tip,
    "whiteboard": whiteboard,
    "faint_ballpoint": faint_ballpoint,
    "low_light": low_light,
    "graph_paper": graph_paper,
    "carbon_copy": carbon_copy,
    "pencil_smudge": pencil_smudge,
    "coffee_ring": coffee_ring,
    "screenshot": screenshot,
    "worksheet": worksheet,
}


# --- clean MNIST-style renderings -----------------------------------------------------------


def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _offcentre_canvas(digit: np.ndarray, rng) -> bytes:
    side = int(rng.integers(56, 85))
    canvas = Image.new("L", (side, side), 0)
    corner = [int(rng.integers(0, side // 2 - 27)) for _ in range(2)]  # top-left quarter...
    flip = rng.integers(0, 2, 2)  # ...or mirrored to another
    at = tuple(side - 28 - c if f else c for c, f in zip(corner, flip, strict=True))
    canvas.paste(Image.fromarray(digit), at)
    return png(canvas)


def _alpha(digit: np.ndarray, rng) -> bytes:
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = digit
    return png(Image.fromarray(rgba, "RGBA"))


def _sixteen_bit(digit: np.ndarray, rng) -> bytes:
    deep = Image.fromarray(digit.astype(np.uint16) * 257)
    if deep.mode != "I;16":
        deep = deep.convert("I;16")
    return png(deep)


def _rgb_280(digit: np.ndarray, rng) -> bytes:
    big = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BICUBIC)
    return png(big.convert("RGB"))


CLEAN: dict[str, Maker] = {
    "jpg_q20": lambda d, rng: jpeg(Image.fromarray(d), 20),
    "jpg_q50": lambda d, rng: jpeg(Image.fromarray(d), 50),
    "jpg_q95": lambda d, rng: jpeg(Image.fromarray(d), 95),
    "png": lambda d, rng: png(Image.fromarray(d)),
    "rgb_280": _rgb_280,
    "white_background": lambda d, rng: png(Image.fromarray(255 - d).convert("RGB")),
    "inverted_png": lambda d, rng: png(Image.fromarray(255 - d)),
    "alpha": _alpha,
    "offcentre_canvas": _offcentre_canvas,
    "sixteen_bit": _sixteen_bit,
}


# --- scikit-learn's 8x8 digits --------------------------------------------------------------


def _sk_tight_28(v: np.ndarray) -> bytes:
    small = Image.fromarray((v * 255).astype(np.uint8))
    return png(small.resize((28, 28), Image.Resampling.BILINEAR))


def _sk_tight_64_dark_on_light(v: np.ndarray) -> bytes:
    small = Image.fromarray((225 - v * 200).astype(np.uint8))
    return png(small.resize((64, 64), Image.Resampling.BICUBIC))


def _sk_margin_200(v: np.ndarray) -> bytes:
    page = Image.new("L", (200, 200), 255)
    small = Image.fromarray((255 - v * 235).astype(np.uint8))
    page.paste(small.resize((120, 120), Image.Resampling.BICUBIC), (40, 40))
    return png(page)


def _sk_tight_200(v: np.ndarray) -> bytes:
    small = Image.fromarray((255 - v * 235).astype(np.uint8))
    return png(small.resize((200, 200), Image.Resampling.BICUBIC))


SKLEARN: dict[str, Callable[[np.ndarray], bytes]] = {
    "sk_tight_28": _sk_tight_28,  # white on black, the ink on the top and bottom edges
    "sk_tight_64_dark_on_light": _sk_tight_64_dark_on_light,  # dark on light grey (225)
    "sk_margin_200": _sk_margin_200,  # dark on white, 40 px (20%) of white on each side
    "sk_tight_200": _sk_tight_200,  # dark on white, the ink on the top and bottom edges
}


def sklearn_renderings(seed: int = 0, per: int | None = 50) -> Iterator[tuple[str, bytes, int]]:
    """(rendering, encoded image, label): `per` of scikit-learn's 8x8 digits per rendering.

    The digits are taken label by label in turn (0, 1, ..., 9, 0, ...), each a different one
    for as long as the 1797 last, in an order fixed by `seed`. `per` None: every one of the
    1797 in each rendering, in the dataset's order.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    if per is None:
        for name, render in SKLEARN.items():
            for image, label in zip(digits.images, digits.target, strict=True):
                yield name, render(image / 16.0), int(label)
        return
    rng = np.random.default_rng(seed)
    queues = {d: list(rng.permutation(np.flatnonzero(digits.target == d))) for d in range(10)}
    turn = 0
    for name, render in SKLEARN.items():
        for _ in range(per):
            label = turn % 10
            turn += 1
            queue = queues[label]
            index = queue.pop(0)
            queue.append(index)  # once every one is used, go round again
            yield name, render(digits.images[index] / 16.0), label


# --- handwriting-style fonts that Debian ships ----------------------------------------------

# Debian packages of fonts drawn to look handwritten, and where they put the font file
FONTS = {
    "font_humor_sans": ("fonts-humor-sans", "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"),
    "font_breip": ("fonts-breip", "/usr/share/fonts/truetype/breip/Breip.ttf"),
    "font_comic_neue": (
        "fonts-comic-neue", "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf"
    ),
}  # fmt: skip


def missing_fonts() -> list[str]:
    """The Debian packages of FONTS that are not installed."""
    from pathlib import Path

    return [package for package, path in FONTS.values() if not Path(path).exists()]


def font_renderings(seed: int = 0, per: int = 50) -> Iterator[tuple[str, bytes, int]]:
    """(font family, encoded image, label): `per` digits in each installed font of FONTS, 0 to 9
    in turn, each as a person might photograph a written one: dark ink on paper 120-320 px
    wide, the glyph 45-75% of the height, turned up to 8 degrees, slightly blurred, a JPEG."""
    from pathlib import Path

    rng = np.random.default_rng(seed)
    for name, (_, path) in FONTS.items():
        if not Path(path).exists():
            continue
        for i in range(per):
            label = i % 10
            side = int(rng.integers(120, 321))
            font = ImageFont.truetype(path, int(side * rng.uniform(0.45, 0.75)))
            glyph = Image.new("L", (side * 2, side * 2), 0)
            ImageDraw.Draw(glyph).text((side // 2, side // 2), str(label), fill=255, font=font)
            glyph = _crop(glyph.rotate(float(rng.uniform(-8, 8)), Image.Resampling.BICUBIC))
            arr = _paper(rng, (side, side), grain=rng.uniform(2, 4))
            at = _centred(Image.new("L", (side, side)), glyph.size, rng, 0.08)
            alpha = np.zeros((side, side), np.float32)
            alpha[at[1] : at[1] + glyph.height, at[0] : at[0] + glyph.width] = (
                np.asarray(glyph) / 255
            )
            arr = _blend(arr, (25, 25, 60), _blur(alpha, rng.uniform(0.3, 1.0)))
            yield name, jpeg(_to_image(arr), int(rng.integers(70, 95))), label


# --- drawing them from MNIST ----------------------------------------------------------------


def _draw(makers, images, labels, per, seed, names) -> Iterator[tuple[str, bytes, int]]:
    names = list(makers) if names is None else list(names)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=per * len(names), replace=False)
    for i, index in enumerate(picks):
        name = names[i // per]
        yield name, makers[name](images[index], rng), int(labels[index])


def families(
    images: np.ndarray,
    labels: np.ndarray,
    per_family: int,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    """(family, encoded image, label): `per_family` of each family, from distinct test digits."""
    return _draw(FAMILIES, images, labels, per_family, seed, names)


def clean(
    images: np.ndarray,
    labels: np.ndarray,
    per: int,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    """(rendering, encoded image, label): `per` of each clean rendering, distinct test digits."""
    return _draw(CLEAN, images, labels, per, seed, names)
