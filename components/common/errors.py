"""The one error family: every error this project raises on purpose derives from StepError.

A StepError's message is written for a person: one line that names what was wrong (the file, the
parameter, the server) and, where it helps, what to do. Its `exit_code` is the process's status
when it ends a step or a command. The places that print failures (`failure.reported` in a step,
`pipeline/cli.py` for a command) catch StepError and nothing broader; anything else is a bug and
keeps its traceback.

Subclasses also derive from the builtin that describes them (ValueError for a bad input,
RuntimeError for a bad condition, TimeoutError for a wait that ran out), so code that handles a
category of builtin keeps working; but no reporter relies on that.
"""

from __future__ import annotations


class StepError(Exception):
    """An expected failure with a message for a person and an exit status."""

    exit_code: int = 1

    def __init__(self, message: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class InputError(StepError, ValueError):
    """A value from outside (a parameter, a URI, a flag) is malformed; the message names it."""
