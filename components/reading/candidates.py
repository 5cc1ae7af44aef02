"""Which ink is the digit (paper.py, step 6): connected components of the ink mask, with the
page's structure (frames, printed boxes, lines touching the border) dropped and the heaviest
central component kept with its near neighbours. Printed type (a worksheet's instructions, a
form's label) is told from handwriting by its stroke: far finer than the pen's (`printed`)."""

from __future__ import annotations

import numpy as np

from components.reading import masks

LABEL_SIDE = 128  # longest side connected components are labelled at
GROWTH = 0.3  # a stroke's faint stretches extend its box by at most this share of it
MIN_DIGIT = 0.06  # a digit spans at least this share of the image's shorter side
FRAMED = 0.1  # what a frame holds is at least this share of the frame's own pixels
PRINTED_BREADTH = 0.5  # printed type is at most this share of the digit's height across ...
PRINTED_STROKE = 0.3  # ... and its strokes at most this share of the pen's width
RIVALS = 3  # the heaviest central components compared for the finer strokes of type


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components: labels 1..n in the order of each one's first pixel (row by row),
    0 for background. Each row's runs of ink are joined to the runs they touch in the row
    above, diagonals included, and the joins resolved over runs rather than pixels (a few
    hundred where a mask has thousands of pixels): every run points at the lowest run it is
    joined to, pointer jumping until nothing moves."""
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    run = np.cumsum(starts.ravel()).reshape(h, w) - 1  # each ink pixel's run, in raster order
    below, above = [], []
    for shift in (-1, 0, 1):  # the pixel above-left, above, above-right of each ink pixel
        lo, hi = max(0, -shift), w - max(0, shift)
        touch = mask[1:, lo:hi] & mask[:-1, lo + shift : hi + shift]
        below.append(run[1:, lo:hi][touch])
        above.append(run[:-1, lo + shift : hi + shift][touch])
    parent = _joined(np.arange(int(starts.sum())), np.concatenate(below), np.concatenate(above))
    roots, dense = np.unique(parent, return_inverse=True)
    out = np.zeros((h, w), np.int64)
    out[mask] = dense[run[mask]] + 1
    return out, len(roots)


def _joined(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`parent` (each run its own) with every pair of runs (a, b) joined: each run pointing at
    the lowest run of its component, whose start is the component's first pixel. Each round,
    the higher root of every pair still apart is pointed at the lower one."""
    while True:
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            return parent
        root_a, root_b = root_a[apart], root_b[apart]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def remove_frames(mask: np.ndarray):
    """Drop hollow outlines (a printed box around the digit): components whose pixels nearly
    all lie along the edges of their own bounding box. Returns the mask and its components
    (labels at LABEL_SIDE, frames removed), which the digit's choice reuses."""
    small = masks.shrink(mask, LABEL_SIDE)
    labels, n = label(small)
    if n == 0:
        return mask, (labels, n)
    boxes = bounding_boxes(labels, n)
    ys, xs = np.indices(small.shape)
    own = boxes[labels]  # each pixel's component box
    edge_distance = np.minimum.reduce(
        [ys - own[..., 0], own[..., 2] - ys, xs - own[..., 1], own[..., 3] - xs]
    )
    tall, wide = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    band = np.maximum(2, 0.08 * np.minimum(tall, wide))
    on_edge = np.bincount(labels.ravel(), (edge_distance <= band[labels]).ravel(), n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    big = (tall >= 0.1 * small.shape[0]) & (wide >= 0.1 * small.shape[1])
    hollow = on_edge >= 0.9 * np.maximum(sizes, 1)
    # a rectangle reaches all four corners of its box; a ring (a 0) reaches none
    near_y = np.minimum(ys - own[..., 0], own[..., 2] - ys) <= 1
    near_x = np.minimum(xs - own[..., 1], own[..., 3] - xs) <= 1
    corner = 2 * (ys - own[..., 0] > own[..., 2] - ys) + (xs - own[..., 1] > own[..., 3] - xs)
    at_corner = (near_y & near_x).ravel()
    corners = np.zeros((n + 1, 4), bool)
    corners[labels.ravel()[at_corner], corner.ravel()[at_corner]] = True
    square = corners.all(axis=1)
    frames = [
        k
        for k in np.flatnonzero(big & hollow & square & (tall >= 8) & (wide >= 8))
        if k > 0 and encloses(boxes[k], boxes)
    ]
    if not frames:
        return mask, (labels, n)
    framed = np.isin(labels, frames)
    return mask & ~grow(framed, mask.shape), (np.where(framed, 0, labels), n)


def digit_components(mask: np.ndarray, parts=None) -> np.ndarray:
    """The mask of the digit's components, at `mask`'s resolution (`parts`: the labels of
    `mask` at LABEL_SIDE when already known)."""
    labels, n = parts if parts is not None else label(masks.shrink(mask, LABEL_SIDE))
    if n == 0:
        return np.zeros_like(mask)
    boxes = bounding_boxes(labels, n)
    h, w = labels.shape
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    present = [k for k in range(1, n + 1) if sizes[k]]  # frames' labels were emptied
    candidates = [
        k
        for k in present
        if not _touches_border(boxes[k], h, w) and not _is_frame(boxes[k], sizes[k], boxes, sizes)
    ]
    if not candidates:  # a digit cropped tightly touches the border: keep what is not a line
        candidates = [k for k in present if not _is_line(boxes[k], h, w)]
    if not candidates:
        return np.zeros_like(mask)
    ranked = sorted(candidates, key=lambda k: -sizes[k] * _centrality(boxes[k], h, w))
    main, pens = _main(mask, labels, boxes, ranked)
    extent = max(boxes[main][2] - boxes[main][0], boxes[main][3] - boxes[main][1]) + 1
    if extent < MIN_DIGIT * min(h, w):  # what is left is a speck, such as where lines crossed
        return np.zeros_like(mask)
    stroke = masks.stroke_width(labels == main)
    near = [
        k
        for k in candidates
        if k != main
        and _near(boxes[k], boxes[main], sizes[k], sizes[main])
        and not _printed_line(boxes[k], sizes[k], stroke)
    ]
    main_mask = grow(labels == main, mask.shape) & mask
    if near:
        pen = pens[main] if main in pens else masks.stroke_width(main_mask)
        near = [k for k in near if not printed(mask, labels == k, boxes[main], pen)]
    if not near:
        return main_mask
    return main_mask | (grow(np.isin(labels, near), mask.shape) & mask)


def _main(
    mask: np.ndarray, labels: np.ndarray, boxes: np.ndarray, ranked: list[int]
) -> tuple[int, dict[int, float]]:
    """The digit's main component: the first of `ranked` (by weight and centrality) that is
    not type beside another of the first RIVALS (a heading set heavier than a small digit).
    Also the rivals' stroke widths in `mask`, measured for that (none when there is one)."""
    rivals = ranked[:RIVALS]
    if len(rivals) == 1:
        return rivals[0], {}
    pens = {k: masks.stroke_width(grow(labels == k, mask.shape) & mask) for k in rivals}
    for k in rivals:
        part = labels == k
        if not any(printed(mask, part, boxes[r], pens[r], width=pens[k]) for r in rivals if r != k):
            return k, pens
    return rivals[0], pens


def printed(mask: np.ndarray, part: np.ndarray, main, pen: float, width=None) -> bool:
    """Printed matter beside the digit (a line of text, a label): far shorter than the digit
    and drawn with a far finer stroke than its pen, measured at `mask`'s resolution (at
    LABEL_SIDE a line of small type merges into one bar as thick as a pen stroke). A digit's
    own separate part (a 5's bar, a stroke that light pressure or glare thinned where it broke
    off) is the same pen. On tests/reading_families.py, type measured 0.05 to 0.25 of the pen's
    width; the parts the breadth test let through from every other family 0.35 and more (a 5's
    faint tail on a sticky note: 0.349).
    `part` is at LABEL_SIDE, `main` the digit's box there, `pen` its stroke width in `mask`,
    `width` the part's own when already measured."""
    if _breadth(part) > PRINTED_BREADTH * (main[2] - main[0] + 1):
        return False
    if width is None:
        width = masks.stroke_width(grow(part, mask.shape) & mask)
    return width < PRINTED_STROKE * pen


def _breadth(part: np.ndarray) -> float:
    """How wide a component is across its long axis, whatever its angle (a line of type on a
    page held crooked has a tall box but is as narrow as its letters): the extent of a uniform
    band with the same least variance, sqrt(12 * the smaller eigenvalue of its pixels'
    covariance)."""
    ys, xs = np.nonzero(part)
    if ys.size < 2:
        return float(ys.size)
    least = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))[0]
    return float(np.sqrt(12 * max(least, 0.0)))


def _printed_line(box, size: int, stroke: float) -> bool:
    """A straight fragment much thinner than the pen's strokes: a piece of a printed line."""
    length = max(box[2] - box[0], box[3] - box[1]) + 1
    thickness = size / length
    return length >= 6 * thickness and thickness <= 0.5 * stroke


def bounding_boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """[n + 1, 4] of (top, left, bottom, right) per label."""
    ys, xs = np.indices(labels.shape)
    flat = labels.ravel()
    boxes = np.zeros((n + 1, 4), np.int64)
    boxes[:, 0] = boxes[:, 1] = np.iinfo(np.int64).max
    np.minimum.at(boxes[:, 0], flat, ys.ravel())
    np.minimum.at(boxes[:, 1], flat, xs.ravel())
    np.maximum.at(boxes[:, 2], flat, ys.ravel())
    np.maximum.at(boxes[:, 3], flat, xs.ravel())
    return boxes


def _touches_border(box, h: int, w: int) -> bool:
    return box[0] == 0 or box[1] == 0 or box[2] == h - 1 or box[3] == w - 1


def _is_line(box, h: int, w: int) -> bool:
    tall, wide = box[2] - box[0] + 1, box[3] - box[1] + 1
    return (wide > 0.8 * w and tall < 0.1 * h) or (tall > 0.8 * h and wide < 0.1 * w)


def _is_frame(box, size: int, boxes: np.ndarray, sizes: np.ndarray) -> bool:
    """A sparse outline enclosing another component that is more than a speck (what is left
    of a printed box around a digit; a thin digit's box holds specks of noise, not a digit)."""
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    return size <= 0.2 * area and encloses(box, boxes, sizes >= FRAMED * size)


def encloses(box, boxes: np.ndarray, counted: np.ndarray | None = None) -> bool:
    """Whether some component's box lies strictly inside `box` (of those `counted` marks, a
    bool per label, when given)."""
    inner = boxes[1:]
    present = inner[:, 0] <= inner[:, 2]  # a label with no pixels has no box
    if counted is not None:
        present = present & counted[1:]
    inside_rows = (inner[:, 0] > box[0]) & (inner[:, 2] < box[2])
    inside_cols = (inner[:, 1] > box[1]) & (inner[:, 3] < box[3])
    return bool((present & inside_rows & inside_cols).any())


def _centrality(box, h: int, w: int) -> float:
    cy, cx = (box[0] + box[2]) / 2 / h - 0.5, (box[1] + box[3]) / 2 / w - 0.5
    return 1.0 / (1.0 + 4.0 * (cy * cy + cx * cx))


def _near(box, main, size: int, main_size: int) -> bool:
    """Part of the digit (the separate bar of a 5, a broken stroke): above, below or over the
    main component (their columns overlap, give or take a tenth of its width), within half its
    height, and not a speck far smaller than it. A printed label beside the digit is not."""
    grow_y, slack_x = (main[2] - main[0] + 1) // 2, (main[3] - main[1] + 1) // 10
    overlaps = (
        box[2] >= main[0] - grow_y
        and box[0] <= main[2] + grow_y
        and box[3] >= main[1] - slack_x
        and box[1] <= main[3] + slack_x
    )
    return overlaps and size >= 0.02 * main_size


def connected(weak: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The pixels of `weak` in its components (at LABEL_SIDE) that `keep` touches and that
    reach more than half a stroke beyond it, with what joins them to it: the faint stretches
    of the chosen strokes (glare, light pressure), not the soft edge around them nor other ink."""
    small_keep = masks.shrink(keep, LABEL_SIDE)
    labels, n = label(masks.shrink(weak, LABEL_SIDE))
    touched = np.unique(labels[small_keep])
    joined = np.isin(labels, touched[touched > 0])
    # beyond the soft edge: half a stroke out (an enlarged image's blur is that wide)
    reach = max(1, round(masks.stroke_width(small_keep) / 2))
    near = small_keep
    for _ in range(reach):
        near = masks.dilate(near)
    beyond = joined & ~near
    for _ in range(reach):
        beyond = masks.dilate(beyond)
    added = grow(joined & beyond, weak.shape) & weak
    if not added.any() or _grows(keep, added):
        return np.zeros_like(weak)  # joined to other structure (a light grid): not the stroke's
    return added


def _grows(keep: np.ndarray, added: np.ndarray) -> bool:
    """Whether `added` reaches beyond `keep`'s box by more than GROWTH of its size."""

    def extent(mask):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return rows[0], rows[-1], cols[0], cols[-1]

    top, bottom, left, right = extent(keep)
    a_top, a_bottom, a_left, a_right = extent(added)
    tall, wide = (bottom - top + 1) * GROWTH, (right - left + 1) * GROWTH
    return (top - a_top > tall or a_bottom - bottom > tall
            or left - a_left > wide or a_right - right > wide)  # fmt: skip


def grow(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A `_shrink`-ed mask back at `shape`, widened by one cell so stroke edges are kept."""
    factor = -(-max(shape) // LABEL_SIDE)
    wide = masks.dilate(small)
    if factor > 1:
        wide = wide.repeat(factor, axis=0).repeat(factor, axis=1)
    return wide[: shape[0], : shape[1]]
