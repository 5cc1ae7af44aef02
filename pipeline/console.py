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
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path

from components.common import spec

ANSI = re.compile(r"\x1b\[[0-9;]*m")
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

    def _show(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _line(self, raw: str) -> None:
        plain = ANSI.sub("", raw)
        start, end = START.search(plain), END.search(plain)
        if start:
            self.step, self.started = start[1], time.monotonic()
        self._log(self.step).write(plain + "\n")
        if self.verbose:
            self._show(raw if self.colour else plain)
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
