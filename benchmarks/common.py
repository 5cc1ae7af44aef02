"""Shared by the benchmark scripts: where MNIST is, and how to print a result line."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("MNIST_DIR", REPO.parent / "shared" / "datasets" / "mnist"))


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def report(goal: str, figure: float, reference: float, unit: str, target: str) -> None:
    """One line: the figure, the reference measured in the same run, their ratio, the target."""
    ratio = figure / reference if reference else float("inf")
    print(
        f"{goal}: {figure:.3g} {unit} vs reference {reference:.3g} {unit} "
        f"-> ratio {ratio:.3g} (target {target}) [{machine()}]",
        flush=True,
    )
