"""docs/ARCHITECTURE.md, checked: the import-linter contracts and the figures of tests/code_shape.

A change that imports upward, makes a cycle, reaches kfp's private API outside the adapter,
grows a module past 300 lines or adds an error outside the StepError family fails here, with
the place named.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import code_shape
from tests.conftest import REPO

# Modules allowed over code_shape.MAX_MODULE_LINES, each with the reason (docs/ARCHITECTURE.md).
OVERSIZE: dict[str, str] = {}


@pytest.fixture(scope="module")
def shape() -> code_shape.Shape:
    return code_shape.load()


def test_the_import_linter_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the test extra: pip install -e '.[test]'"
    result = subprocess.run(
        [lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_cycles(shape):
    assert shape.cycles() == []


def test_nothing_imports_a_layer_above_it(shape):
    assert shape.upward() == []


def test_kfp_private_names_only_in_the_adapter(shape):
    assert shape.private_kfp() == []


def test_no_module_over_300_lines_without_a_reason(shape):
    over = {path: lines for path, lines in shape.big_modules() if path not in OVERSIZE}
    assert over == {}


def test_common_holds_at_most_a_fifth_of_the_components(shape):
    assert shape.common_share() <= 0.20


def test_every_error_we_raise_is_a_step_error(shape):
    _, outside = shape.error_classes()
    assert outside == []


def test_the_figures_print(shape):
    text = code_shape.report(shape)
    assert "import cycles: " in text and "function" in text
