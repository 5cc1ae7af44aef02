"""Goal 5: `mnist-pipeline --help` and `mnist-pipeline compile` start-up, and no TensorFlow.

Each command runs several times in a fresh interpreter; the median is compared with the bare
interpreter start-up (`python -c pass`) measured in the same run, and with the 1.5 s target.

    python benchmarks/bench_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine  # noqa: E402

# Runs the CLI in-process, then reports whether TensorFlow was imported along the way.
PROBE = (
    "import sys; from pipeline.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('TF_IMPORTED' if 'tensorflow' in sys.modules else 'TF_NOT_IMPORTED', file=sys.stderr)"
)


def median_seconds(argv: list[str], repeat: int) -> tuple[float, str]:
    times, stderr = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        stderr = done.stderr
    return statistics.median(times), stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"bench_startup on {machine()}, median of {args.repeat}")
    bare, _ = median_seconds([sys.executable, "-c", "pass"], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        for label, cli_args in (
            ("--help", ["--help"]),
            ("compile", ["compile", f"{tmp}/p.yaml"]),
        ):
            seconds, stderr = median_seconds([sys.executable, "-c", PROBE, *cli_args], args.repeat)
            tf = "imports TensorFlow" if "TF_IMPORTED" in stderr.split() else "no TensorFlow"
            print(
                f"goal 5: mnist-pipeline {label}: {seconds:.3f} s vs bare interpreter "
                f"{bare:.3f} s -> ratio {seconds / bare:.1f}; target <= 1.5 s: "
                f"{'met' if seconds <= 1.5 else 'NOT met'}; {tf}"
            )


if __name__ == "__main__":
    main()
