"""TensorFlow without its C++ log lines on the terminal.

Importing TensorFlow writes, from C++ and straight to file descriptor 2, lines such as
`WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`,
`I0000 ... cudart_stub.cc] Could not find cuda drivers` and, on first use of a device on a
machine without a GPU, `E0000 ... failed call to cuInit: ... CUDA error`, which reads as a
failure. TF_CPP_MIN_LOG_LEVEL=3 silences the later ones but not those written before absl's
logging starts, during the import.

`install()` (called when the `components` package is imported, so before any step, command
or test can import TensorFlow) sets TF_CPP_MIN_LOG_LEVEL=3 and GRPC_VERBOSITY=ERROR unless
they are set already, and points fd 2 at a temporary file while the first `import tensorflow`
runs, wherever it happens (keras and tensorflow_serving import it too). If that import fails,
what it wrote is shown, then the error. MNIST_TF_LOGS=1 (`run -vv`) keeps everything.
While TensorFlow is being imported (a few seconds, once a process), writes to fd 2 from
other threads are hidden too: every entry point here imports it before it starts threads.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile

SHOW_ENV = "MNIST_TF_LOGS"  # "1": TensorFlow's own log lines reach the terminal
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}
_set_here: list[str] = []  # the variables of QUIET that install() set (not the user)


def install() -> None:
    """Quiet TensorFlow in this process and the steps it starts (they inherit the variables),
    unless MNIST_TF_LOGS=1. Once: a second call changes nothing."""
    if os.environ.get(SHOW_ENV) == "1" or "tensorflow" in sys.modules:
        return
    for name, value in QUIET.items():
        if name not in os.environ:
            os.environ[name] = value
            _set_here.append(name)
    if not any(isinstance(finder, _FirstImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FirstImport())


def show() -> None:
    """Let TensorFlow's log lines through from now on, here and in the processes started
    from here (`run -vv`): undo install(), keeping what the user set."""
    os.environ[SHOW_ENV] = "1"
    while _set_here:
        os.environ.pop(_set_here.pop(), None)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _FirstImport)]


@contextlib.contextmanager
def native_stderr_hidden():
    """File descriptor 2 into a temporary file for the block; replayed if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as hidden:
        os.dup2(hidden.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            hidden.seek(0)
            os.write(2, hidden.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _FirstImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: asked for `tensorflow`, it has the usual finders find it and
    gives back their spec with its code run with fd 2 hidden, once. (A find_spec alone, as
    `require_tensorflow` makes, imports nothing and leaves the finder in place.)"""

    def __init__(self):
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or self._finding:
            return None
        self._finding = True  # importlib.util.find_spec asks every finder again, this one too
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                with native_stderr_hidden():
                    run(module)

            spec.loader.exec_module = exec_module
        return spec
