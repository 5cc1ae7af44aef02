"""What a batch-prediction run reports: counts, the first failures, the UI's Markdown table and
its HTML page (each shown image beside the 28x28 the model saw).

Only a bounded number of rows and pictures is kept (the CSV has every row), so the report's size
does not grow with the number of images.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from components.common import spec

TABLE_ROWS = 100  # rows shown in the UI's Markdown table; the CSV has them all
SHOWN_ERRORS = 5  # failures quoted in the step's error message
SHOWN_SKIPPED = 20  # skipped files named in the table (the log names them too)
GALLERY = 60  # images pictured in the HTML report: failures, then low confidence, then the rest

Row = tuple[str, str, str, str, str]  # image, prediction, confidence, error, low_confidence


@dataclass
class Tally:
    """What the run has seen so far: counts, a few failures, and the table's first rows."""

    predicted: int = 0
    failed: int = 0
    low_confidence: int = 0
    errors: list[str] = field(default_factory=list)
    table: list[Row] = field(default_factory=list)
    # (row, the 28x28 the model saw or None), GALLERY at most of each kind
    failures: list = field(default_factory=list)
    unsure: list = field(default_factory=list)
    sure: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.predicted + self.failed

    def add(self, row: Row, pixels=None) -> None:
        kind = self.failures if row[3] else self.unsure if row[4] else self.sure
        if len(kind) < GALLERY:
            kind.append((row, pixels))
        if row[3]:
            self.failed += 1
            if len(self.errors) < SHOWN_ERRORS:
                self.errors.append(f"{row[0]}: {row[3]}")
        else:
            self.predicted += 1
            self.low_confidence += bool(row[4])
        if len(self.table) < TABLE_ROWS:
            self.table.append(row)


def tally_record(tally: Tally) -> dict:
    """What the reports need of a shard's tally: counts and its first rows of each kind."""
    return {
        "predicted": tally.predicted,
        "failed": tally.failed,
        "low_confidence": tally.low_confidence,
        "errors": tally.errors,
        "table": tally.table,
        "failures": [row for row, _ in tally.failures],
        "unsure": [row for row, _ in tally.unsure],
        "sure": [row for row, _ in tally.sure],
    }


def merged_tally(records: list[dict]) -> Tally:
    """The tally one task would have kept over the shards' images, in order: the sums, and
    of each bounded list its first entries."""
    tally = Tally()
    for done in records:
        tally.predicted += done["predicted"]
        tally.failed += done["failed"]
        tally.low_confidence += done["low_confidence"]
        tally.errors += done["errors"][: SHOWN_ERRORS - len(tally.errors)]
        tally.table += [tuple(row) for row in done["table"][: TABLE_ROWS - len(tally.table)]]
        for kind in ("failures", "unsure", "sure"):
            kept = getattr(tally, kind)
            kept += [(tuple(row), None) for row in done[kind][: GALLERY - len(kept)]]
    return tally


def summary(
    tally: Tally,
    predictions_uri: str,
    skipped: Sequence,
    thumbnails: dict,
    model: str,
    lineage: dict | None,
    skipped_count: int | None = None,
) -> dict:
    """What a batch-predict run (one task, or the merge of its shards) returns: the counts,
    the UI's Markdown table and the HTML report. `skipped_count`: when more files were
    skipped than `skipped` names."""
    return {
        "predictions_uri": predictions_uri,
        "predicted": tally.predicted,
        "failed": tally.failed,
        "low_confidence": tally.low_confidence,
        "total": tally.total,
        "skipped": len(skipped) if skipped_count is None else skipped_count,
        "markdown": markdown_table(tally, predictions_uri, skipped),
        "html": html_report(
            tally, predictions_uri, skipped, thumbnails, model or "(not named)", lineage
        ),
    }


def markdown_table(tally: Tally, predictions_uri: str, skipped: Sequence = ()) -> str:
    """A Markdown summary and the first rows, for the KFP UI (the CSV has every row).

    `skipped` holds (key, reason) for files under the prefix that were not read as images.
    """
    lines = [
        f"**{tally.predicted}** of {tally.total} images classified, **{tally.failed}** failed, "
        f"**{tally.low_confidence}** with low confidence.",
        f"All rows: {_cell(predictions_uri)}",
        "",
    ]
    if skipped:
        shown = "; ".join(f"{_cell(k)} ({_cell(why)})" for k, why in skipped[:SHOWN_SKIPPED])
        more = f"; and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
        lines += [f"Skipped {len(skipped)} file(s) not read as images: {shown}{more}", ""]
    lines += [
        "| " + " | ".join(spec.PREDICTIONS_HEADER) + " |",
        "|" + "---|" * len(spec.PREDICTIONS_HEADER),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in tally.table]
    if tally.total > len(tally.table):
        more = tally.total - len(tally.table)
        lines.append(f"\n... and {more} more rows in {spec.PREDICTIONS_CSV}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text from outside (a file name, an error) as literal Markdown text: the KFP UI renders
    Markdown with inline HTML, so `<img onerror=...>` in a name must arrive as text. Secrets are
    masked, HTML characters become entities, Markdown's own punctuation is backslash-escaped,
    and control characters and newlines are shown as escapes (a cell is one line)."""
    import html

    from components.common.redact import shown

    text = html.escape(shown(str(text)), quote=True)
    text = _MARKDOWN.sub(r"\\\g<0>", text)
    return _AUTOLINK.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], text)  # no link is made of a name


_MARKDOWN = re.compile(r"[\\`*_{}\[\]()#+!|~]")
_AUTOLINK = re.compile(r"(?i)\bwww\.|:(?=//)")  # GFM makes links of www. and scheme://


def gallery(tally: Tally) -> list:
    """The (row, pixels) pairs the HTML report pictures: failures and low confidence first."""
    return (tally.failures + tally.unsure + tally.sure)[:GALLERY]


def html_report(
    tally: Tally,
    predictions_uri: str,
    skipped: Sequence,
    thumbnails: dict,
    model: str,
    lineage: dict | None = None,
) -> str:
    """A self-contained page: for each pictured image its thumbnail (`thumbnails`: key -> PIL
    image), the 28x28 the model saw, the prediction and the confidence; then the counts and the
    skipped or failed files."""
    from components.common import report

    cells = []
    for row, pixels in gallery(tally):
        key, digit, confidence, error, low = row
        kind = "error" if error else "unsure" if low else ""
        thumb = thumbnails.get(key)
        pair = (report.img(thumb, 56, f"{key} as uploaded") if thumb is not None else "") + (
            report.img(pixels, 56, f"{key} as the model saw it") if pixels is not None else ""
        )
        verdict = (
            f'<span class="bad">{report.esc(error)}</span>'
            if error
            else f'<span class="digit">{report.esc(digit)}</span> {float(confidence):.3f}'
            + (" (low)" if low else "")
        )
        cells.append(
            f'<div class="cell {kind}"><div class="pair">{pair}</div>'
            f'<div title="{report.esc(key)}">{report.esc(_short(key))}</div>{verdict}</div>'
        )
    problems = [(k, why) for k, why in skipped] + [(row[0], row[3]) for row, _ in tally.failures]
    sections = [
        f"<h2>Images ({len(cells)} of {tally.total} pictured: failures and low confidence first;"
        " left as uploaded, right the 28x28 the model saw)</h2>"
        f'<div class="grid" id="images">{"".join(cells)}</div>',
        '<h2>Counts</h2><div id="counts">'
        + report.table(
            ["classified", "failed", "low confidence", "skipped"],
            [(tally.predicted, tally.failed, tally.low_confidence, len(skipped))],
        )
        + f'<p class="uri">every row: {report.esc(predictions_uri)}</p></div>',
    ]
    if problems:
        sections.append(
            '<h2>Skipped or failed files</h2><div id="problems">'
            + report.table(["file", "why"], problems[: 2 * SHOWN_SKIPPED])
            + "</div>"
        )
    if lineage:
        shown = {k: v for k, v in lineage.items() if not isinstance(v, dict)}
        sections.append(
            '<h2>Provenance</h2><div id="provenance">'
            + report.table(None, sorted(shown.items()))
            + "</div>"
        )
    return report.page(
        f"Batch prediction: {tally.predicted} of {tally.total} images classified",
        f"model {model}; {tally.failed} failed, {tally.low_confidence} with low confidence",
        sections,
    )


def _short(key: str, width: int = 16) -> str:
    name = key.rsplit("/", 1)[-1]
    return name if len(name) <= width else name[: width - 1] + "…"
