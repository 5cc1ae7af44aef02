"""What `run --local` shows: a few lines per step in the terminal, every line in the run folder.

kfp.local prints everything to this process's stdout: its own framing (task start and end,
executor-input JSON dumps, output listings) and, line by line, each step's output, TensorFlow's
C++ start-up banners included. `StepConsole` takes that stream (it stands in for sys.stdout
during a run) and:

- writes every line, colour codes removed, to `<run folder>/logs/<step>.log` (kfp.local's own
  lines outside a step go to `logs/run.log`);
- by default prints only, for each step, `[3/5] train …` when it starts, the step's own log lines
  (the `mnist.*` loggers: components/common/log.py), and `[3/5] train done in 38.6 s: <headline>`
  when it ends, where the headline comes from what the step wrote (see `headline`);
- with `verbose`, prints every line as it comes.

Colour codes reach the terminal only when it is one; our own lines carry one timestamp style.

`SafeOutput` stands in for the CLI's stdout and stderr (pipeline/cli.py): whatever a command
prints, from any source (a file, run or pipeline name, a server's error, kfp's own prints), reaches
the terminal with secrets redacted and control characters escaped, whether or not it is a terminal.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from components.common import spec
from components.common.redact import printable, shown

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SGR = re.compile(r"(\x1b\[[0-9;]*m)")
START = re.compile(r"Executing task '([\w-]+)'")
END = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
# components/common/log.py: "2026-11-28 13:42:36,280 INFO mnist.download: message"
OURS = re.compile(
    r"^\s*\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d),\d{3} (INFO|WARNING|ERROR) mnist\.\w+: (.*)$"
)


class StepConsole(io.TextIOBase):
    def __init__(
        self,
        out,
        log_dir: Path,
        verbose: bool = False,
        headline: Callable[[str], str] = lambda step: "",
        hide: Callable[[str, str], bool] = lambda step, message: False,
    ):
        self.out, self.log_dir, self.verbose = out, log_dir, verbose
        self.headline, self.hide = headline, hide
        self.colour = bool(getattr(out, "isatty", lambda: False)())
        self.step = "run"
        self.started = time.monotonic()
        self._pending = ""
        self._logs: dict[str, io.TextIOBase] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        for log in self._logs.values():
            log.flush()
        self.out.flush()

    def close(self) -> None:
        if self._pending:
            self._line(self._pending)
            self._pending = ""
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        super().close()

    def _log(self, step: str):
        if step not in self._logs:
            self._logs[step] = open(self.log_dir / f"{step}.log", "a", encoding="utf-8")  # noqa: SIM115
        return self._logs[step]

    def _show(self, line: str, colour: bool = False) -> None:
        """Print one line; with `colour`, kfp's colour codes pass (nothing else that controls
        the terminal does), past SafeOutput's escaping."""
        if colour:
            out = getattr(self.out, "unfiltered", self.out)
            line = "".join(
                part if ANSI.fullmatch(part) else printable(part) for part in _SGR.split(line)
            )
        else:
            out = self.out
        out.write(line + "\n")
        out.flush()

    def _line(self, raw: str) -> None:
        plain = ANSI.sub("", raw)
        start, end = START.search(plain), END.search(plain)
        if start:
            self.step, self.started = start[1], time.monotonic()
        self._log(self.step).write(plain + "\n")
        if self.verbose:
            self._show(raw, colour=True) if self.colour else self._show(plain)
        elif start:
            self._show(f"{self._position(start[1])} {start[1]} …")
        elif end:
            self._show(self._finished(end[1], end[2]))
        elif (ours := OURS.match(plain)) and not self.hide(self.step, ours[3]):
            level = "" if ours[2] == "INFO" else f"{ours[2]}: "
            self._show(f"      {ours[1]}  {level}{ours[3]}")
        if end:
            self.step = "run"

    def _position(self, step: str) -> str:
        if step in (spec.PLAN_SHARDS, spec.PREDICT_SHARD, spec.MERGE_SHARDS):
            step = spec.BATCH_PREDICT  # batch-predict in shards (--shards)
        if step in spec.STEPS:
            return f"[{spec.STEPS.index(step) + 1}/{len(spec.STEPS)}]"
        return "[-]"

    def _finished(self, step: str, status: str) -> str:
        seconds = time.monotonic() - self.started
        if status != "SUCCESS":
            word = "failed" if status == "FAILURE" else status.lower()
            return f"{self._position(step)} {step} {word} after {seconds:.1f} s"
        try:
            headline = self.headline(step)
        except (OSError, ValueError, KeyError):
            headline = ""
        return f"{self._position(step)} {step} done in {seconds:.1f} s" + (
            f": {headline}" if headline else ""
        )


class SafeOutput(io.TextIOBase):
    """A text stream that redacts secrets and escapes control characters in what it is given,
    line by line (a secret split across two writes of one line is still found)."""

    def __init__(self, out):
        self.unfiltered = out
        self._pending = ""

    @property
    def encoding(self) -> str:
        return getattr(self.unfiltered, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self.unfiltered, "errors", None) or "strict"

    def isatty(self) -> bool:
        return bool(getattr(self.unfiltered, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.unfiltered.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._pending += text
        head, newline, self._pending = self._pending.rpartition("\n")
        if newline:
            self.unfiltered.write(shown(head + newline, newlines=True))
        return len(text)

    def flush(self) -> None:
        if self._pending:  # a prompt, or a line still being written: shown as it stands
            self.unfiltered.write(shown(self._pending, newlines=True))
            self._pending = ""
        self.unfiltered.flush()


@contextlib.contextmanager
def safe_output() -> Iterator[None]:
    """sys.stdout and sys.stderr through SafeOutput for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeOutput(sys.stdout), SafeOutput(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def short_path(uri: str) -> str:
    """A local path under the working folder as a relative one (what a person typed, and the
    same on every machine); anything else (s3://, elsewhere) as it is."""
    if "://" in uri or not uri.startswith("/"):
        return uri
    try:
        return str(Path(uri).relative_to(Path.cwd()))
    except ValueError:
        return uri
