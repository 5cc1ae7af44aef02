"""A newcomer's first prediction: a fresh clone, empty package caches, `make demo`, timed.

Prints the seconds from `git clone` to the demo's first `The result:` line (goal <= 180 s on
this 2-core machine) and the size of the venv `make demo` made (goal <= 1.5 GB), each with its
goal, and the whole demo's time. The clone is of this checkout's HEAD, into a temporary folder;
uv's and pip's caches there start empty, so every wheel is downloaded. With --reference, the
old install (pip, `.[tensorflow,ui,test]`, no lock) is timed in the same run beside it.

    python benchmarks/bench_first_prediction.py [--reference] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS, GOAL_GB = 180, 1.5


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path`, each hard-linked file once (as du counts)."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(root, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def first_prediction(work: Path, env: dict) -> tuple[float, float, int]:
    """(seconds to the first `The result:` line, seconds for the whole demo, venv bytes)."""
    start = time.monotonic()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(work)], check=True)
    shared = REPO.parent / "shared"  # the offline MNIST copy the Makefile looks for beside it
    if shared.is_dir() and not (work.parent / "shared").exists():
        (work.parent / "shared").symlink_to(shared)
    demo = subprocess.Popen(
        ["make", "demo"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    first = None
    for line in demo.stdout:
        if first is None and "The result:" in line:
            first = time.monotonic() - start
            print(f"  first line: {line.strip()}", flush=True)
    if demo.wait() != 0 or first is None:
        sys.exit(f"make demo failed (exit {demo.returncode}) or printed no `The result:` line")
    return first, time.monotonic() - start, folder_bytes(work / ".venv")


def pip_reference(work: Path, env: dict) -> float:
    """Seconds for the old set-up: a venv and pip install -e '.[tensorflow,ui,test]'."""
    start = time.monotonic()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(work)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(work / ".venv")], check=True)
    pip = [str(work / ".venv/bin/python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    subprocess.run([*pip, "-e", ".[tensorflow,ui,test]"], cwd=work, env=env, check=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true", help="also time the old pip set-up")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args()
    top = Path(tempfile.mkdtemp(prefix="first-prediction-"))
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(top / "uv-cache"),  # empty: every wheel downloaded
        "PIP_NO_CACHE_DIR": "1",
        "XDG_CACHE_HOME": str(top / "cache"),
    }
    env.pop("VIRTUAL_ENV", None)
    try:
        first, whole, venv = first_prediction(top / "clone" / "mnist-kfp", env)
        cores = os.cpu_count()
        print(
            f"first prediction from a fresh clone, empty caches: {first:.0f} s "
            f"(goal <= {GOAL_SECONDS} s; whole demo {whole:.0f} s) [{cores} cores]"
        )
        print(f"demo venv: {venv / 1e9:.2f} GB (goal <= {GOAL_GB} GB)")
        if args.reference:
            seconds = pip_reference(top / "reference" / "mnist-kfp", env)
            print(
                f"reference, pip install -e '.[tensorflow,ui,test]' alone: {seconds:.0f} s, "
                f"venv {folder_bytes(top / 'reference/mnist-kfp/.venv') / 1e9:.2f} GB"
            )
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
