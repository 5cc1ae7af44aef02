"""The pipeline's parameters, defined once: name, type, default, check and help.

Everything else derives from this table: the DAG's signature and the descriptions the Kubeflow
UI shows (pipeline/dag.py), `run --local`'s options, `--param name=value` parsing, and every
range check (the CLI's before a run, TrainConfig's and batch-predict's inside the steps). Each
value has one check, and its message states the bound. No kfp, numpy or TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.common import checks, spec
from components.common.checks import Check
from components.common.errors import StepError

SEED_LIMIT = 2**32  # numpy's and TensorFlow's seeds are unsigned 32-bit
AUGMENTATIONS = ("none", "shift", "robust")  # the train step's `augment` (train/model.py)


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # str, bool, int or float
    default: object
    help: str
    check: Check | None = None

    @property
    def description(self) -> str:
        """The help, with the allowed range when there is one: what the Kubeflow UI shows."""
        bounds = getattr(self.check, "bounds", "")
        return f"{self.help} Allowed: {bounds}." if bounds else self.help


class ParameterError(StepError, ValueError):
    """A pipeline parameter value is malformed or out of range."""


PARAMETERS: tuple[Param, ...] = (
    Param(
        "source",
        str,
        spec.DEFAULT_SOURCE,
        "Where MNIST comes from: an http(s) base URL holding the four .gz IDX files, an "
        "archive (.zip, .tar.gz), s3://bucket/key, or a local path.",
        checks.source,
    ),
    Param(
        "verify_checksums",
        bool,
        True,
        "Require the files to match the original MNIST release (sha256 and record counts).",
    ),
    Param(
        "store_uri",
        str,
        spec.DEFAULT_STORE,
        "Object store root, s3://bucket/prefix; datasets, models and predictions go under it.",
        checks.uri(required=True),
    ),
    Param(
        "s3_endpoint",
        str,
        spec.IN_CLUSTER_S3_ENDPOINT,
        "S3 endpoint of the store, host:port or http(s)://host:port (default: KFP's "
        "in-cluster MinIO).",
        checks.s3_endpoint,
    ),
    Param("epochs", int, 10, "Training epochs.", checks.within(1, 1000)),
    Param("batch_size", int, 128, "Training batch size.", checks.within(1, 65536)),
    Param(
        "learning_rate",
        float,
        0.01,
        "Peak learning rate of the one-cycle schedule.",
        checks.within(0, 1, low_open=True),
    ),
    Param(
        "seed", int, 42, "Random seed for reproducible training.", checks.within(0, SEED_LIMIT - 1)
    ),
    Param(
        "train_limit",
        int,
        spec.MNIST_TRAIN_SIZE,
        "Train on the first N of MNIST's 60000 training examples (fewer for quick runs).",
        checks.within(0, 2**31 - 1),
    ),
    Param(
        "validation_split",
        float,
        0.05,
        "Hold out this share of the training set (its last examples, after train_limit) to "
        "measure validation accuracy and calibrate the model's probabilities (temperature "
        "scaling); Katib's trials optimise it; the test set is then touched only to report and "
        "by the accuracy gate.",
        checks.within(0, 0.5),
    ),
    Param(
        "augment",
        str,
        "robust",
        "Training-time augmentation: none; shift (each batch moved up to 2 pixels); robust "
        "(half of each batch also scaled, moved to the edges, thinned or thickened, blurred, "
        "dimmed and noised, as photos and scans reach the model).",
        checks.one_of(*AUGMENTATIONS),
    ),
    Param(
        "train_workers",
        int,
        1,
        "Replicas that train together: 1 trains in the step; 2 or more run a TFJob (Kubeflow "
        "Training Operator) of a chief and workers with MultiWorkerMirroredStrategy.",
        checks.within(1, 64),
    ),
    Param(
        "min_accuracy",
        float,
        0.98,
        "Export and predict only when the test accuracy reaches this.",
        checks.within(0, 1),
    ),
    Param(
        "images_uri",
        str,
        spec.IMAGES_PREFIX,
        "Images to classify: a path under store_uri, or s3://bucket/prefix.",
        checks.uri(required=False),
    ),
    Param(
        "results_uri",
        str,
        spec.PREDICTIONS_PREFIX,
        "Where <model version>/predictions.csv goes: a path under store_uri, or "
        "s3://bucket/prefix.",
        checks.uri(required=False),
    ),
    Param(
        "min_confidence",
        float,
        0.9,
        "Mark predictions below this confidence (a calibrated probability) as low-confidence "
        "(predictions.csv, the UI table, predict).",
        checks.within(0, 1),
    ),
    Param(
        "max_failed_fraction",
        float,
        0.5,
        "Fail batch-predict when more than this share of images cannot be read.",
        checks.within(0, 1),
    ),
    Param(
        "deploy",
        bool,
        False,
        "After export, serve the model with a KServe InferenceService in the run's namespace "
        "(needs KServe and manifests/overlays/kserve).",
    ),
    Param(
        "serving_endpoint",
        str,
        spec.IN_STEP,
        f"Where batch-predict classifies: {spec.IN_STEP} (load the exported model in the step) "
        "or TF Serving's gRPC host:port, e.g. mnist-serving:8500.",
        checks.serving_endpoint,
    ),
)


# Katib's search algorithms (the tune step's `algorithm`); components/tune/katib.py uses these.
ALGORITHMS = (
    "random", "grid", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes", "sobol",
    "hyperband",
)  # fmt: skip


# The tuning pipeline's own parameters (mnist-tune: pipeline/dag.py build_tune_pipeline).
TUNE_PARAMETERS: tuple[Param, ...] = (
    Param("algorithm", str, "tpe", "Katib's search algorithm.", checks.one_of(*ALGORITHMS)),
    Param(
        "goal",
        float,
        0.995,
        "Stop the search when a trial's last epoch reaches this validation accuracy.",
        checks.within(0, 1),
    ),  # fmt: skip
    Param("max_trials", int, 12, "Trials in all.", checks.within(1, 200)),
    Param("parallel_trials", int, 2, "Trials at once.", checks.within(1, 50)),
    Param("max_epochs", int, 8, "The most epochs a trial trains.", checks.within(1, 100)),
)
# The tuning pipeline's own defaults for parameters it shares with the main one: its trials are
# scored on a validation split, never on the test set, so it holds out a share by default.
TUNE_DEFAULTS = {"validation_split": 0.1}
BY_NAME = {p.name: p for p in PARAMETERS}  # the parameters of the main pipeline
_ALL = {p.name: p for p in PARAMETERS + TUNE_PARAMETERS}  # and the tuning pipeline's
DEFAULTS = {p.name: p.default for p in PARAMETERS + TUNE_PARAMETERS}


def check(name: str, value) -> None:
    """Raise ParameterError `name=value ...: must be ...` when `value` is refused."""
    param = _ALL[name]
    numeric = param.type in (int, float)
    if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ParameterError(f"{name}={shown_value(value)} is not a valid {param.type.__name__}")
    reason = param.check(value) if param.check else None
    if reason:
        refused = "is out of range:" if numeric else "is refused:"
        raise ParameterError(f"{name}={shown_value(value)} {refused} {reason}")


def unknown(name: str) -> ParameterError:
    """The error for a name that is not a parameter, with the nearest one when it is a typo."""
    import difflib

    near = difflib.get_close_matches(name[:64], BY_NAME, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(BY_NAME))}"
    return ParameterError(f"unknown parameter {shown_value(name)}{hint}")


def check_received(arguments: dict) -> None:
    """Check each of a step's arguments that is a pipeline parameter (by name), at the step's
    start: a run started from the Kubeflow UI, which no CLI checked, fails with the CLI's line."""
    for name, value in arguments.items():
        if name in _ALL:
            check(name, value)


def check_all(values: dict) -> dict:
    """Check every value in `values` (unknown names refused); returns `values` unchanged."""
    for name, value in values.items():
        if name not in _ALL:
            raise unknown(name)
        check(name, value)
    return values


def shown_value(value) -> str:
    """A value as a message may quote it: bounded in length and depth whatever its size or
    nesting (a 50 MB string, a YAML alias bomb), credentials masked, control characters
    escaped."""
    import reprlib

    from components.common.redact import shown

    bounded = reprlib.Repr()  # its attributes, not keywords: Python 3.10 and 3.11
    bounded.maxlevel, bounded.maxstring, bounded.maxother, bounded.maxlong = 2, 60, 60, 40
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = 4
    try:
        text = shown(bounded.repr(value))
    except ValueError:  # an int past Python's 4300-digit limit for str()
        text = f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 200 else text[:199] + "…"
