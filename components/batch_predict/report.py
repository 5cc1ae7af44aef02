"""What a batch-prediction run reports: counts, the first failures, and the UI's Markdown table.

Only a bounded number of rows is kept (the CSV has them all), so the report's size does not grow
with the number of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from components.common import spec

TABLE_ROWS = 100  # rows shown in the UI's Markdown table; the CSV has them all
SHOWN_ERRORS = 5  # failures quoted in the step's error message
SHOWN_SKIPPED = 20  # skipped files named in the table (the log names them too)

Row = tuple[str, str, str, str, str]  # image, prediction, confidence, error, low_confidence


@dataclass
class Tally:
    """What the run has seen so far: counts, a few failures, and the table's first rows."""

    predicted: int = 0
    failed: int = 0
    low_confidence: int = 0
    errors: list[str] = field(default_factory=list)
    table: list[Row] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.predicted + self.failed

    def add(self, row: Row) -> None:
        if row[3]:
            self.failed += 1
            if len(self.errors) < SHOWN_ERRORS:
                self.errors.append(f"{row[0]}: {row[3]}")
        else:
            self.predicted += 1
            self.low_confidence += bool(row[4])
        if len(self.table) < TABLE_ROWS:
            self.table.append(row)


def markdown_table(tally: Tally, predictions_uri: str, skipped: Sequence = ()) -> str:
    """A Markdown summary and the first rows, for the KFP UI (the CSV has every row).

    `skipped` holds (key, reason) for files under the prefix that were not read as images.
    """
    lines = [
        f"**{tally.predicted}** of {tally.total} images classified, **{tally.failed}** failed, "
        f"**{tally.low_confidence}** with low confidence.",
        f"All rows: `{predictions_uri}`",
        "",
    ]
    if skipped:
        shown = "; ".join(f"`{_cell(k)}` ({_cell(why)})" for k, why in skipped[:SHOWN_SKIPPED])
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
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
