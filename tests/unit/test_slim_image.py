"""The slim image (check-parameters, download, unpack-and-upload, tune, the serving model sync)
holds only what they import: no TensorFlow and no numpy (73 MB of the image). Checked here
without building it, in a subprocess where importing numpy fails: every module the slim steps'
functions import loads, and unpack-and-upload validates and uploads a small IDX set.
tests/containers runs the real image.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap

import pytest

from components.check_parameters.component import check_parameters
from components.download.component import download
from components.images import SLIM_IMAGE
from components.tune.component import tune
from components.unpack_upload.component import unpack_and_upload
from tests.conftest import REPO
from tests.unit.test_dockerfiles import locked

SLIM_STEPS = [check_parameters, download, unpack_and_upload, tune]

# Run first in the subprocess: any import of numpy (or TensorFlow) raises.
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("numpy", "tensorflow"):
            raise ImportError(f"the slim image has no {name}")
sys.meta_path.insert(0, Block())
"""


def imported_modules(step) -> set[str]:
    """The modules of this project that the step's function imports."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(step.python_func)))
    return {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components")
    }


def run_without_numpy(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_these_are_the_slim_images_steps():
    assert all(
        step.component_spec.implementation.container.image == SLIM_IMAGE for step in SLIM_STEPS
    )


def test_the_slim_lock_has_neither_tensorflow_nor_numpy():
    pins = locked(REPO / "docker" / "requirements-slim.txt")
    assert "numpy" not in pins and "tensorflow" not in pins, sorted(pins)


@pytest.mark.parametrize("step", SLIM_STEPS, ids=lambda s: s.name)
def test_what_a_slim_step_imports_loads_without_numpy(step, tmp_path):
    modules = sorted(imported_modules(step))
    assert modules, "the step's function imports nothing of the project?"
    result = run_without_numpy(
        f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\nprint('ok')", tmp_path
    )
    assert result.stdout.strip() == "ok", result.stderr[-3000:]


def test_the_serving_model_sync_loads_without_numpy(tmp_path):
    """manifests/base/serving runs `python -m components.serving_sync` in the slim image."""
    result = run_without_numpy("import components.serving_sync.__main__\nprint('ok')", tmp_path)
    assert result.stdout.strip() == "ok", result.stderr[-3000:]


def test_unpack_and_upload_validates_and_uploads_without_numpy(tmp_path):
    """IDX files written here byte by byte; a label of 10 is refused; a good set is uploaded."""
    result = run_without_numpy(
        """
        import struct
        from pathlib import Path
        from components.dataset import mnist
        from components.store import open_store
        from components.unpack_upload.unpack import unpack_and_upload

        def write(folder, labels):
            folder.mkdir()
            for split, n in (("train", 3), ("test", 2)):
                images, label_file = mnist.SPLITS[split]
                header = struct.pack(">IIII", mnist.IMAGE_MAGIC, n, 28, 28)
                (folder / images.name).write_bytes(header + bytes(n * 28 * 28))
                header = struct.pack(">II", mnist.LABEL_MAGIC, n)
                (folder / label_file.name).write_bytes(header + bytes(labels[:n]))

        def unpack(folder):
            store = open_store("store")
            unpack_and_upload(folder, store, "d", canonical=False, workdir=Path("w", folder))

        write(Path("bad"), [1, 2, 10])
        try:
            unpack(Path("bad"))
        except mnist.IdxError as e:
            print("refused:", e)
        write(Path("good"), [1, 2, 9])
        unpack(Path("good"))
        print("uploaded:", sorted(p.name for p in Path("store/d").iterdir()))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()  # the step's own log lines too
    (refused,) = [line for line in lines if line.startswith("refused:")]
    (uploaded,) = [line for line in lines if line.startswith("uploaded:")]
    assert refused == "refused: train-labels-idx1-ubyte: label 10 is outside 0-9"
    assert "train-images-idx3-ubyte" in uploaded and "t10k-labels-idx1-ubyte" in uploaded
