"""A failed step ends with one line that says why, in the pod log and at the end of a local run.

Every component body runs inside `reported(step)`. An error the step knows how to name (a bad
source, a store that is down, a dataset that fails validation...) is a StepError (errors.py): it is
logged as one line and the process exits with its exit_code, without a traceback. Anything else
is a programming error and keeps its traceback. Either
way the line is also appended to the file named by $MNIST_ERROR_FILE when set, which is how
`run --local` prints the failing step's own reason instead of kfp's "task failed".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from components.common.errors import StepError
from components.common.log import get_logger
from components.common.redact import shown

ERROR_FILE_ENV = "MNIST_ERROR_FILE"


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, credentials masked, control characters
    escaped."""
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return shown(text.splitlines()[0] if text else type(exc).__name__)


@contextlib.contextmanager
def reported(step: str, arguments: dict | None = None) -> Iterator[None]:
    """Run a step body; turn an expected failure into one logged line and its exit status.

    `arguments` (the component's `locals()` on entry): those named in the parameter table are
    checked first, so a bad value fails the step in its first second with the CLI's message.
    """
    try:
        if arguments:
            from components.common.parameters import check_received

            check_received(arguments)
        yield
    except StepError as e:
        line = f"{step}: {one_line(e)}"
        get_logger(step).error(line)
        _record(line)
        raise SystemExit(e.exit_code) from None
    except Exception as e:
        _record(f"{step}: unexpected {type(e).__name__}: {one_line(e)}")
        raise


def _record(line: str) -> None:
    path = os.environ.get(ERROR_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
