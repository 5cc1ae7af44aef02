"""Goal 7: the DAG in containers against the same DAG as subprocesses, step by step.

Runs `mnist-pipeline run --local` twice on the same arguments (real MNIST from a local folder,
a fresh folder store, the demo settings), once with `--runner subprocess` and once with
`--runner docker`, and prints each step's time in both and the container overhead. Needs the
images (`make images-local`) and an engine: docker, or podman through DOCKER_HOST.

    python benchmarks/bench_containers.py [--source ../shared/datasets/mnist]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine  # noqa: E402
from components.common import spec  # noqa: E402

CLI = str(Path(sys.executable).parent / "mnist-pipeline")
DEMO = ["--epochs", "2", "--learning-rate", "0.02"]
# run --local's own line when a step ends (pipeline/console.py):
# "[3/5] train done in 38.6 s: test accuracy 0.9928"
DONE = re.compile(r"^\[\d+/\d+\] ([\w-]+) done in ([\d.]+) s", re.M)


def step_seconds(output: str) -> dict[str, float]:
    """Each step's time, from its start to its end as run --local saw them."""
    return {step: float(seconds) for step, seconds in DONE.findall(output)}


def run(runner: str, source: str, folder: Path) -> tuple[dict[str, float], float]:
    summary = folder / f"{runner}.json"
    done = subprocess.run(
        [CLI, "run", "--local", "--runner", runner, "--source", source, *DEMO]
        + ["--store", str(folder / f"store-{runner}"), "--workdir", str(folder / "runs")]
        + ["--summary-json", str(summary)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{runner} run failed: {done.stderr.strip().splitlines()[-1]}")
    return step_seconds(done.stdout), json.loads(summary.read_text())["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
    parser.add_argument("--source", default=str(default))
    args = parser.parse_args()
    from pipeline.containers import ContainerError, check_engine_and_images

    try:
        check_engine_and_images()
    except ContainerError as e:
        print(f"bench_containers: skipped: {e}")
        return
    print(f"bench_containers on {machine()}, demo settings {' '.join(DEMO)}")
    with tempfile.TemporaryDirectory() as tmp:
        local, local_wall = run("subprocess", args.source, Path(tmp))
        boxed, boxed_wall = run("docker", args.source, Path(tmp))
    print(f"{'step':<18} {'subprocess':>10} {'container':>10} {'overhead':>9}")
    for step in spec.STEPS:
        print(
            f"{step:<18} {local[step]:>9.1f}s {boxed[step]:>9.1f}s "
            f"{boxed[step] - local[step]:>+8.1f}s"
        )
    print(
        f"goal 7: whole run in containers {boxed_wall:.1f} s vs subprocesses {local_wall:.1f} s "
        f"in the same run -> ratio {boxed_wall / local_wall:.2f}"
    )


if __name__ == "__main__":
    main()
