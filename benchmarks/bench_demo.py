"""Goal 4: the README's demo on the full data, from download to predictions.

Runs `mnist-pipeline run --local` with the demo's settings, MNIST served over HTTP on 127.0.0.1
from the offline copy, and reads the kfp.local log to split the wall time into the steps' own
work (each KFP executor, from "Looking for component" to "Wrote executor output file") and
everything else: the CLI, compiling, starting each step's interpreter and kfp's bookkeeping.

    python benchmarks/bench_demo.py [--epochs 2] [--learning-rate 0.02]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MNIST_DIR, machine  # noqa: E402
from components.common.spec import STEPS  # noqa: E402
from tests.servers import serve_directory  # noqa: E402

EXECUTOR = re.compile(r"\[KFP Executor (\S+ \S+) INFO\]: (Looking for component|Wrote executor)")


def step_seconds(log: str) -> list[float]:
    """Executor wall time of every step, in order."""
    stamps = [
        (datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f"), m[2]) for m in EXECUTOR.finditer(log)
    ]
    starts = [t for t, what in stamps if what.startswith("Looking")]
    ends = [t for t, what in stamps if what.startswith("Wrote")]
    return [(end - start).total_seconds() for start, end in zip(starts, ends, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="as `make demo` (DEMO_ARGS)")
    parser.add_argument("--learning-rate", type=float, default=0.02, help="as `make demo`")
    args = parser.parse_args()
    print(f"bench_demo on {machine()}")
    with tempfile.TemporaryDirectory() as tmp, serve_directory(MNIST_DIR) as url:
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "run",
                "--local",
                "--source",
                url,
                "--store",
                f"{tmp}/store",
                "--workdir",
                f"{tmp}/runs",
                "--epochs",
                str(args.epochs),
                "--summary-json",
                f"{tmp}/summary.json",
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"demo failed:\n{(done.stdout + done.stderr)[-3000:]}")
        summary = json.loads(Path(f"{tmp}/summary.json").read_text())
    steps = step_seconds(done.stdout + done.stderr)
    work = sum(steps)
    print(
        "steps' own work: "
        + ", ".join(f"{n} {s:.1f} s" for n, s in zip(STEPS, steps, strict=False))
    )
    print(
        f"goal 4: demo wall time {wall:.1f} s (target <= 180 s), test accuracy "
        f"{summary['test_accuracy']:.4f} (target >= 0.99), {summary['predicted']} images "
        f"classified"
    )
    print(
        f"goal 4: orchestration overhead {wall - work:.1f} s vs steps' own work {work:.1f} s "
        f"-> {100 * (wall - work) / wall:.1f}% of the wall time (target <= 10%)"
    )


if __name__ == "__main__":
    main()
