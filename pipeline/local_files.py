"""Small files a person names on the command line (a parameters file, a token file): read with
bounds, because a name can point anywhere: a FIFO or a device would block or never end
(`/dev/zero` fills memory in a second), a folder is not a file, and nothing we take this way is
larger than a few kB. A link is followed: the person named it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from components.common.errors import StepError


class LocalFileError(StepError, ValueError):
    """The file cannot be taken; the message names it and says why, in one line."""


def read_small_text(path: str | Path, limit: int, what: str) -> str:
    """The UTF-8 text of the regular file `path`, at most `limit` bytes; `what` it should be
    ("a YAML or JSON file") goes into the message when it is something else."""
    try:  # O_NONBLOCK: a FIFO opens at once, even with no writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise LocalFileError(f"{path}: cannot be read: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise LocalFileError(f"{path}: {kind}; give {what}")
        data = os.read(fd, limit + 1)
    except OSError as e:
        raise LocalFileError(f"{path}: cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        size = f"{limit // 1024} KB" if limit >= 1024 else f"{limit} bytes"
        raise LocalFileError(f"{path}: larger than {size}; it should be {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LocalFileError(f"{path}: not a text file (not UTF-8); give {what}") from None
