"""`-o/--output text|json|yaml`: what a command prints, for people or for scripts.

JSON and YAML carry the same keys, listed in the README ("Machine-readable output") and checked
by tests; text is for people and may change. Nothing but the document goes to stdout in json or
yaml mode: progress and notes go to stderr. A file a person names to write to (compile's
--output, run's --summary-json) that cannot be written is one line naming it (`writing`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from components.common.errors import StepError
from components.common.redact import printable

FORMATS = ("text", "json", "yaml")


def output_option(fn):
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(FORMATS, case_sensitive=False),
        default="text",
        show_default=True,
        help="text for people; json or yaml for scripts (keys listed in the README).",
    )(fn)


def _plain(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _one_line(value):
    """Every string in `value` on one line: for people, a newline in a run, pipeline or file
    name must not forge a row (pipeline/console.SafeOutput escapes the other controls)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {k: _one_line(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_line(v) for v in value]
    return value


def emit(data, output: str, text: Callable[[object], None]) -> None:
    """Print `data` as JSON or YAML, or call `text(data)` to print it for people, with every
    string in it on one line."""
    data = _plain(data)
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=True, default_flow_style=False).rstrip())
    else:
        text(_one_line(data))


def note(message: str, output: str) -> None:
    """A line for people: stdout in text mode, stderr when stdout is a document."""
    click.echo(message, err=output != "text")


class UnwritableFile(StepError, OSError):
    """A file or folder named on the command line cannot be written (a file where its folder
    should be, no permission, a full disk): one line naming the flag, the path and why."""


@contextlib.contextmanager
def writing(path: str, flag: str) -> Iterator[None]:
    """Turn a failure to write under `path`, the value of `flag`, into an UnwritableFile; any
    other OSError is left alone (it is not about what the person named)."""
    try:
        yield
    except OSError as e:
        if isinstance(e, StepError) or not _on_the_way_to(e.filename, path):
            raise
        folder = isinstance(e, (FileExistsError, NotADirectoryError))
        reason = "a file is where a folder should be" if folder else e.strerror or "failed"
        raise UnwritableFile(f"{flag} {path}: cannot write {e.filename}: {reason}") from None


def _on_the_way_to(filename, path: str) -> bool:
    """Whether `filename` is `path`, a folder above it, or something under it."""
    if not isinstance(filename, (str, Path)):
        return False
    mine, theirs = Path(path).absolute(), Path(filename).absolute()
    return mine == theirs or theirs in mine.parents or mine in theirs.parents
