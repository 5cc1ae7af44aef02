"""Stopping what a command started: Ctrl-C or SIGTERM must not leave a training process behind.

kfp.local starts each step as a child process, and steps start their own (decoders, the export
check). Ctrl-C in a terminal reaches the whole foreground process group, but a SIGTERM sent to
the CLI alone (a scheduler, a CI timeout, `kill`) reaches only the CLI. So the CLI turns SIGTERM
into KeyboardInterrupt and, on either, stops every process it started, children first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time


def terminate_on_sigterm() -> None:
    """Make SIGTERM behave like Ctrl-C in this process (KeyboardInterrupt)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def descendants(pid: int | None = None) -> list[int]:
    """Every living process below `pid` (default: this one), read from /proc; [] elsewhere."""
    pid = pid or os.getpid()
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def stop_descendants(grace: float = 5.0) -> int:
    """SIGTERM every process this one started, then SIGKILL what is left after `grace` s."""
    pids = descendants()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline:
            _reap()
            if not any(_alive(pid) for pid in pids):
                return len(pids)
            time.sleep(0.1)
    _reap()
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie is gone
    except OSError:
        return False


def _reap() -> None:
    """Collect exited children, so they do not linger as zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
