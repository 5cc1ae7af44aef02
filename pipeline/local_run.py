"""Run the whole DAG on this machine through kfp.local (no cluster) and summarise the result.

Each step runs as a subprocess of this interpreter (`SubprocessRunner(use_venv=False)`), so the
project must be installed in the current environment, exactly as it is in the images. Store
credentials, if any, come from this process's environment and are inherited by the steps.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from components.common import spec
from components.common.errors import StepError
from components.common.failure import ERROR_FILE_ENV, one_line
from components.common.units import human_bytes
from components.download import transport
from components.store import join, open_store
from pipeline.console import StepConsole, short_path

SAMPLES = Path(__file__).parent / "samples"


class LocalRunError(StepError, RuntimeError):
    """The local run failed; the message names the step."""


@dataclass
class Summary:
    test_accuracy: float | None
    model_uri: str | None
    model_version: int | None
    predictions_uri: str | None
    predicted: int
    failed: int
    run_dir: str
    logs_dir: str  # every line of every step (pipeline/console.py)
    reports: list[str]  # the steps' HTML reports, copied into <run>/reports/ as .html files
    gated: bool  # True when the accuracy gate stopped export and batch-predict

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def seed_sample_images(images_uri: str, s3_endpoint: str = "") -> int:
    """Copy the bundled sample digits under `images_uri` when it holds no object yet."""
    store = open_store(images_uri, s3_endpoint)
    if next(iter(store.list("")), None) is not None:
        return 0
    samples = sorted(SAMPLES.iterdir())
    for path in samples:
        store.put_file(path.name, path)
    return len(samples)


RUNNERS = ("subprocess", "docker")


def run_local(
    arguments: dict,
    workdir: Path,
    runner: str = "subprocess",
    verbose: bool = True,
    stream=None,
    shards: int = 1,
) -> Summary:
    """Run the pipeline with `arguments` (pipeline parameter values); returns its summary.

    `runner` is "subprocess" (each step a process of this environment) or "docker" (each step
    in its image: pipeline/containers.py). kfp.local's output goes through a StepConsole
    (pipeline/console.py): every line into `<run>/logs/`, and to the terminal either all of it
    (`verbose`) or a few lines per step, on `stream` (default stdout). Each run gets its own
    pipeline root, claimed with an atomic mkdir, so two runs started in the same folder at once
    never mistake each other's outputs for their own.
    """
    import kfp.local

    from pipeline import containers
    from pipeline.cluster import ClusterOptions
    from pipeline.dag import build_pipeline
    from pipeline.kfp.local_conditions import named_outputs_in_conditions

    if runner not in RUNNERS:
        raise LocalRunError(f"runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if runner == "docker":  # the caller has checked the engine and images (check_engine...)
        arguments = containers.with_absolute_paths(arguments)
    root = _claim_run_root(workdir / "runs")
    errors = root / "errors.txt"  # inside the pipeline root, which containers see at this path
    if runner == "docker":
        steps_run_by = containers.docker_runner(arguments, str(errors))
        exit_status = containers.exit_status_kept()
    else:
        steps_run_by = kfp.local.SubprocessRunner(use_venv=False)
        exit_status = contextlib.nullcontext()
    kfp.local.init(runner=steps_run_by, pipeline_root=str(root), raise_on_error=True)
    os.environ[ERROR_FILE_ENV] = str(errors)  # the steps inherit it: see failure.py
    console = StepConsole(
        stream or sys.stdout,
        root / "logs",
        verbose,
        headline=lambda step: headline(root, step),
        hide=_shown_in_the_summary,
    )
    gate = named_outputs_in_conditions()  # the accuracy gate compares train's `test_accuracy`
    with warnings.catch_warnings(), exit_status, gate, contextlib.redirect_stdout(console):
        # kfp.local says once per task that GPU, Secret and resource settings do not apply here.
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
        warnings.filterwarnings("ignore", message=".*non-Python base image")
        try:
            build_pipeline(ClusterOptions(pod_retries=False, shards=shards))(**arguments)
        except RuntimeError as e:
            raise LocalRunError(f"{_failure(errors, e)} (step logs: {root / 'logs'})") from None
        finally:
            os.environ.pop(ERROR_FILE_ENV, None)
            console.close()
    run_dirs = [p for p in root.iterdir() if p.is_dir() and p.name != "logs"]
    if len(run_dirs) != 1:
        raise LocalRunError(f"expected one run folder in {root}, found {len(run_dirs)}")
    (root / "logs").rename(run_dirs[0] / "logs")  # beside the steps' outputs and the reports
    return summarise(run_dirs[0], arguments["min_accuracy"])


def _shown_in_the_summary(step: str, message: str) -> bool:
    """Lines the terminal leaves to the step logs: batch-predict's per-image lines (the summary
    prints the predictions once, at the end) and the checkpoints' bookkeeping."""
    if step in (spec.BATCH_PREDICT, spec.PREDICT_SHARD):
        return ": The result: [" in message or ": error: " in message
    return message.startswith(("checkpoint of epoch", "removed the run's"))


def headline(root: Path, step: str) -> str:
    """What a finished step produced, in a few words, from its executor_output.json."""
    if step == spec.PREDICT_SHARD:  # one of several (a ParallelFor's): the merge sums them
        return ""
    (path,) = root.glob(f"*/{step}/executor_output.json")
    output = json.loads(path.read_text())
    values = output.get("parameterValues", {})
    if step == spec.CHECK_PARAMETERS:
        return "every parameter within its bounds"
    if step == spec.DOWNLOAD:
        meta = _artifact_metadata(output, spec.DATASET_OUTPUT)
        checked = "checksums verified" if meta.get("checksums_verified") else "not verified"
        return f"{len(meta['files'])} files, {human_bytes(meta['bytes'])}, {checked}"
    if step == spec.UNPACK_UPLOAD:
        return f"dataset at {short_path(values[spec.DATASET_URI_OUTPUT])}"
    if step == spec.TRAIN:
        metrics = _artifact_metadata(output, "metrics") if "metrics" in output["artifacts"] else {}
        trained = metrics.get("train_seconds")  # the one measure: the epoch line's, the report's
        after = f" after {trained:.1f} s of training" if trained is not None else ""
        return f"test accuracy {values[spec.ACCURACY_OUTPUT]:.4f}{after}"
    if step == spec.EXPORT:
        meta = _artifact_metadata(output, spec.EXPORTED_OUTPUT)
        return f"model version {int(meta['version'])} at {short_path(meta['published_uri'])}"
    if step == spec.PLAN_SHARDS:
        return f"{len(values['Output'])} shard(s)"
    if step in (spec.BATCH_PREDICT, spec.MERGE_SHARDS):
        meta = _artifact_metadata(output, spec.PREDICTIONS_OUTPUT)
        return f"{int(meta['predicted'])} classified, {int(meta['failed'])} failed"
    return ""


def _claim_run_root(parent: Path) -> Path:
    """A new folder under `parent`, named by time and process, created exclusively."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count():
        root = parent / f"{stamp}-{os.getpid()}-{n}"
        try:
            root.mkdir()
            return root
        except FileExistsError:
            continue


def _failure(errors: Path, exc: Exception) -> str:
    """The failing step's own one-line reason, or kfp's message when the step left none; for
    a download that could not reach its source, what to try instead."""
    lines = errors.read_text().splitlines() if errors.is_file() else []
    line = lines[-1] if lines else f"local run failed: {one_line(exc)}"
    if line.startswith(f"{spec.DOWNLOAD}:") and any(fault in line for fault in transport.OFFLINE):
        line += (
            "; offline? --source takes a local copy: a folder holding the four MNIST .gz "
            "files (or an http(s) mirror)"
        )
    return line


def _executor_output(run_dir: Path, step: str) -> dict | None:
    path = run_dir / step / "executor_output.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _artifact_metadata(output: dict, name: str) -> dict:
    return output["artifacts"][name]["artifacts"][0].get("metadata", {})


def summarise(run_dir: Path, min_accuracy: float) -> Summary:
    """Read what each step wrote (executor_output.json) in a kfp.local run folder.

    The gate's decision is taken from the same comparison the DAG makes (accuracy against
    `min_accuracy`), not from which folders exist, so a renamed task cannot pass for a gate.
    """
    trained = _executor_output(run_dir, spec.TRAIN)
    exported = _executor_output(run_dir, spec.EXPORT)
    predicted = _executor_output(run_dir, spec.BATCH_PREDICT) or _executor_output(
        run_dir, spec.MERGE_SHARDS
    )  # one task, or the merge of the shards (--shards)
    if trained is None:
        raise LocalRunError(f"the {spec.TRAIN} step left no output in {run_dir}")
    accuracy = trained["parameterValues"][spec.ACCURACY_OUTPUT]
    gated = accuracy < min_accuracy
    if not gated and (exported is None or predicted is None):
        raise LocalRunError(
            f"test accuracy {accuracy:.4f} passed the gate, but {spec.EXPORT} or "
            f"{spec.BATCH_PREDICT} left no output in {run_dir}"
        )
    model = _artifact_metadata(exported, spec.EXPORTED_OUTPUT) if exported else {}
    table = _artifact_metadata(predicted, spec.PREDICTIONS_OUTPUT) if predicted else {}
    return Summary(
        test_accuracy=accuracy,
        model_uri=model.get("published_uri"),
        model_version=int(model["version"]) if "version" in model else None,
        predictions_uri=table.get("predictions_uri"),
        predicted=int(table.get("predicted", 0)),
        failed=int(table.get("failed", 0)),
        run_dir=str(run_dir),
        logs_dir=str(run_dir / "logs"),
        reports=_copy_reports(run_dir, {spec.TRAIN: trained, spec.BATCH_PREDICT: predicted}),
        gated=gated,
    )


def _copy_reports(run_dir: Path, outputs: dict[str, dict | None]) -> list[str]:
    """The HTML artifacts as `<run>/reports/<step>.html`, so a browser opens them as pages."""
    copied = []
    for step, output in outputs.items():
        if not output or spec.REPORT_OUTPUT not in output.get("artifacts", {}):
            continue
        source = Path(output["artifacts"][spec.REPORT_OUTPUT]["artifacts"][0]["uri"])
        if source.is_file():
            target = run_dir / "reports" / f"{step}.html"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(str(target))
    return copied


def default_images_uri(store_uri: str) -> str:
    return join(store_uri, spec.IMAGES_PREFIX)
