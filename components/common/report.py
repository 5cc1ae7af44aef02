"""Self-contained HTML reports: the pictures the KFP UI shows for train and batch-predict.

The KFP UI shows an HTML artifact in a sandboxed iframe, so a report carries everything inline:
its styles, its charts as SVG written here, and its digit pictures as PNG data URIs. No script,
font or stylesheet is fetched from anywhere. Charts are drawn by hand rather than with
matplotlib: they are a few lines and bars, and matplotlib would add tens of MB to the images and
most of a second of import to the steps (README, "What you see").
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Pillow is imported where a picture is drawn: the slim image has none
    from PIL import Image

STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px;
       color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: #59636e; margin-bottom: 12px; } .uri { color: #59636e; overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { color: #59636e; font-size: 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
.cell { width: 112px; border: 1px solid #d1d9e0; border-radius: 6px; padding: 4px;
        text-align: center; font-size: 12px; }
.cell img { image-rendering: pixelated; display: block; margin: 2px auto; }
.cell.error { border-color: #cf222e; } .cell.unsure { border-color: #bf8700; }
.pair { display: flex; gap: 4px; justify-content: center; align-items: center; }
.digit { font-size: 20px; font-weight: 600; }
table { border-collapse: collapse; } td, th { border: 1px solid #d1d9e0; padding: 2px 8px; }
td + td { overflow-wrap: anywhere; }  /* a value (a digest, a URI) wraps; a name never breaks */
.table { max-width: 100%; overflow-x: auto; }  /* what cannot wrap scrolls, not the page */
svg { max-width: 100%; height: auto; }
th { background: #f6f8fa; text-align: left; }
.bad { color: #cf222e; }
"""


def esc(value: object) -> str:
    """Any text a report shows (names, errors, URIs from outside) as HTML text: credentials
    masked, control characters shown as escapes, HTML characters as entities."""
    from components.common.redact import shown

    return html.escape(shown(str(value)), quote=True)


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    """A complete HTML document holding `sections` (HTML fragments)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f'<body><h1>{esc(title)}</h1><div class="meta">{esc(subtitle)}</div>'
        + "".join(sections)
        + "</body></html>\n"
    )


def png_data_uri(pixels: np.ndarray | Image.Image) -> str:
    """A PNG of `pixels` (uint8 grey or an image) as a data: URI."""
    from PIL import Image

    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def img(pixels, size: int, alt: str) -> str:
    return f'<img src="{png_data_uri(pixels)}" width="{size}" height="{size}" alt="{esc(alt)}">'


def line_chart(
    title: str,
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    y_label: str,
    width: int = 420,
    height: int = 240,
) -> str:
    """An SVG line chart with one line per series, axes, ticks and a legend."""
    colours = ("#0969da", "#cf222e", "#1a7f37", "#8250df")
    left, right, top, bottom = 52, 12, 28, 36
    values = [v for ys in series.values() for v in ys if np.isfinite(v)]
    ticks = nice_ticks(min(values), max(values)) if values else nice_ticks(0.0, 1.0)
    low, high = ticks[0], ticks[-1]
    x_low, x_high = (min(x), max(x)) if len(x) > 1 else (x[0] - 1, x[0] + 1) if x else (0, 1)

    def px(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * (width - left - right)

    def py(v: float) -> float:
        return top + (high - v) / (high - low) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{esc(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#59636e"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#59636e"/>',
    ]
    for v in ticks:
        parts.append(
            f'<text x="{left - 6}" y="{py(v) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{v:g}</text>"
            f'<line x1="{left}" y1="{py(v):.1f}" x2="{width - right}" y2="{py(v):.1f}" '
            'stroke="#d1d9e0" stroke-dasharray="2,3"/>'
        )
    for v in x:
        parts.append(
            f'<text x="{px(v):.1f}" y="{height - bottom + 14}" font-size="11" '
            f'text-anchor="middle">{v:g}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 4}" font-size="11" '
        'text-anchor="middle">epoch</text>'
        f'<text x="12" y="{(top + height - bottom) / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + height - bottom) / 2})">{esc(y_label)}</text>'
    )
    for n, (name, ys) in enumerate(series.items()):
        colour = colours[n % len(colours)]
        finite = [(a, b) for a, b in zip(x, ys, strict=True) if np.isfinite(b)]
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in finite)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        parts += [
            f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="3" fill="{colour}"/>' for a, b in finite
        ]
        lx = width - right - 150
        ly = top + 4 + 16 * n
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{lx + 18}" y="{ly + 5}" font-size="11">{esc(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) from at or below `low` to
    at or above `high`, at most `most` of them: 0, 0.1, ..., 0.4 rather than 0.0902, 0.184."""
    if high - low < 1e-12:  # one value: a span around it
        low, high = low - 0.5 * max(abs(low), 1e-3), high + 0.5 * max(abs(high), 1e-3)
    power = 10.0 ** np.floor(np.log10((high - low) / (most - 1)))
    for step in (power * m for m in (1, 2, 5, 10, 20, 50)):
        first, last = np.floor(low / step + 1e-9), np.ceil(high / step - 1e-9)
        if last - first + 1 <= most:
            break
    decimals = max(0, -int(np.floor(np.log10(step))))
    return [float(round(k * step, decimals)) for k in np.arange(first, last + 1)]


def heat_map(matrix: Sequence[Sequence[int]], labels: Sequence[str], cell: int = 30) -> str:
    """An SVG confusion matrix: rows are the true class, columns the predicted one; the count
    in each cell, shaded by its share of the row (the diagonal in blue, mistakes in red)."""
    n = len(labels)
    left, top = 46, 40
    size_w, size_h = left + n * cell + 8, top + n * cell + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size_w}" height="{size_h}" '
        f'viewBox="0 0 {size_w} {size_h}" role="img" aria-label="confusion matrix">',
        f'<text x="{left + n * cell / 2}" y="14" font-size="11" text-anchor="middle">'
        "predicted</text>",
        f'<text x="10" y="{top + n * cell / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 10 {top + n * cell / 2})">true</text>',
    ]
    for j, label in enumerate(labels):
        parts.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top - 6}" font-size="11" '
            f'text-anchor="middle">{esc(label)}</text>'
            f'<text x="{left - 8}" y="{top + j * cell + cell / 2 + 4}" font-size="11" '
            f'text-anchor="end">{esc(label)}</text>'
        )
    for i, row in enumerate(matrix):
        total = max(1, sum(row))
        for j, count in enumerate(row):
            share = count / total
            if i == j:
                fill = f"rgba(9,105,218,{0.1 + 0.9 * share:.3f})"
            else:
                fill = f"rgba(207,34,46,{min(1.0, 0.08 + 8 * share):.3f})" if count else "#fff"
            ink = "#fff" if (i == j and share > 0.5) else "#1f2328"
            x, y = left + j * cell, top + i * cell
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                'stroke="#d1d9e0"><title>'
                f"true {esc(labels[i])}, predicted {esc(labels[j])}: {count}</title></rect>"
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" font-size="10" '
                f'text-anchor="middle" fill="{ink}">{count}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def table(header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> str:
    """A table; `header` None for one of names and values (no empty header row)."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table"><table>{head}{body}</table></div>'
