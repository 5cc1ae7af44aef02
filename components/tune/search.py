"""The search: what Katib searches (learning_rate, batch_size, epochs) and how each of its
algorithms is set up over it, refused in one line when it cannot work.

Katib checks an algorithm's settings in its suggestion service, once the Experiment exists, and
a refusal fails the Experiment with a message in the Suggestion's status, minutes into the run.
The same rules are checked here, when the Experiment is built (and by `mnist-pipeline tune`
before a run). Each mirrors the service that serves the algorithm in Katib's default
katib-config (kubeflow/katib pkg/suggestion/v1beta1, webhook/v1beta1/experiment/validator):

| algorithm            | service   | algorithmSettings written here         | refused when       |
|----------------------|-----------|----------------------------------------|--------------------|
| random, tpe          | hyperopt  | random_state                           |                    |
| multivariate-tpe     | optuna    | random_state, n_startup_trials         |                    |
| grid                 | optuna    | random_state                           | max_trials > grid  |
| cmaes                | goptuna   | random_state                           | < 2 double/int     |
| sobol                | goptuna   | (its sampler takes none)               |                    |
| bayesianoptimization | skopt     | random_state, n_initial_points         |                    |
| hyperband            | hyperband | resource_name=epochs, r_l=max_epochs,  | parallel_trials <  |
|                      |           | eta=3                                  | eta ** s_max       |

Grid cannot step through a double without a `step`, so there the learning rate is a list of
log-spaced values over the same range. Every algorithm: parallel_trials <= max_trials (Katib's
webhook). random_state is the pipeline's seed, so a search can be repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.common.errors import InputError
from components.common.parameters import ALGORITHMS, DEFAULTS

# The searched names (the pipeline's parameters) and the trialParameters that carry them into
# the trial's command (`${trialParameters.learningRate}`).
REFERENCES = {"learning_rate": "learningRate", "batch_size": "batchSize", "epochs": "epochs"}
LEARNING_RATES = {"min": "0.001", "max": "0.05"}
GRID_LEARNING_RATES = ("0.001", "0.002", "0.005", "0.01", "0.02", "0.05")  # log-spaced
BATCH_SIZES = ("64", "128", "256")
HYPERBAND_RESOURCE = "epochs"  # what hyperband hands out in brackets: a trial's budget
HYPERBAND_ETA = 3  # Katib's default


@dataclass(frozen=True)
class Search:
    """One search: an algorithm and the pipeline values it depends on."""

    algorithm: str = DEFAULTS["algorithm"]
    max_epochs: int = DEFAULTS["max_epochs"]
    max_trials: int = DEFAULTS["max_trials"]
    parallel_trials: int = DEFAULTS["parallel_trials"]
    seed: int = DEFAULTS["seed"]

    def parameters(self) -> list[dict]:
        """Katib's `spec.parameters`: the searched space."""
        rate = (
            {"parameterType": "discrete", "feasibleSpace": {"list": list(GRID_LEARNING_RATES)}}
            if self.algorithm == "grid"
            else {"parameterType": "double", "feasibleSpace": dict(LEARNING_RATES)}
        )
        epochs = {"min": "1", "max": str(self.max_epochs)}
        return [
            {"name": "learning_rate", **rate},
            {"name": "batch_size", "parameterType": "discrete",
             "feasibleSpace": {"list": list(BATCH_SIZES)}},
            {"name": "epochs", "parameterType": "int", "feasibleSpace": epochs},
        ]  # fmt: skip

    def settings(self) -> list[dict]:
        """Katib's `spec.algorithm.algorithmSettings` (values are strings there)."""
        startup = max(self.parallel_trials, self.max_trials // 3)  # random trials first
        chosen = {
            "random": {"random_state": self.seed},
            "tpe": {"random_state": self.seed},
            "multivariate-tpe": {"random_state": self.seed, "n_startup_trials": startup},
            "grid": {"random_state": self.seed},
            "cmaes": {"random_state": self.seed},
            "sobol": {},
            "bayesianoptimization": {"random_state": self.seed, "n_initial_points": startup},
            "hyperband": {
                "resource_name": HYPERBAND_RESOURCE,
                "r_l": self.max_epochs,
                "eta": HYPERBAND_ETA,
            },
        }[self.algorithm]
        return [{"name": name, "value": str(value)} for name, value in chosen.items()]

    def problem(self) -> str | None:
        """Why Katib would refuse this search, in one line; None when it would not."""
        if self.algorithm not in ALGORITHMS:
            return f"algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        if self.parallel_trials > self.max_trials:
            return (
                f"parallel_trials={self.parallel_trials} is more than "
                f"max_trials={self.max_trials}: Katib refuses more trials at once than in all"
            )
        return unusable(self.algorithm, self.parameters()) or self._value_problem()

    def check(self) -> Search:
        """Raise InputError with `problem()`; returns the search when there is none."""
        problem = self.problem()
        if problem:
            raise InputError(problem)
        return self

    def _value_problem(self) -> str | None:
        if self.algorithm == "grid":
            points = grid_points(self.parameters())
            if self.max_trials > points:
                return (
                    f"algorithm grid: max_trials={self.max_trials} is more than the {points} "
                    f"points of its grid ({len(GRID_LEARNING_RATES)} learning rates x "
                    f"{len(BATCH_SIZES)} batch sizes x {self.max_epochs} epochs); lower "
                    "max_trials or raise max_epochs"
                )
        if self.algorithm == "hyperband":
            needed = hyperband_parallel(self.max_epochs, HYPERBAND_ETA)
            if self.parallel_trials < needed:
                return (
                    f"algorithm hyperband: parallel_trials={self.parallel_trials} is below the "
                    f"{needed} trials its first bracket runs at once (eta={HYPERBAND_ETA}, "
                    f"r_l=max_epochs={self.max_epochs}); set parallel_trials to {needed} or more"
                )
        return None


def unusable(algorithm: str, parameters: list[dict]) -> str | None:
    """Why `algorithm` cannot search `parameters` whatever the pipeline's values, or None."""
    if algorithm == "grid":
        for p in parameters:
            if p["parameterType"] == "double" and not p["feasibleSpace"].get("step"):
                return (
                    f"algorithm grid: {p['name']} is a double with no step, and Katib's grid "
                    "needs a step for every double parameter"
                )
    if algorithm == "cmaes":
        continuous = [p for p in parameters if p["parameterType"] in ("double", "int")]
        if len(continuous) < 2:
            return (
                "algorithm cmaes: Katib's CMA-ES needs two or more double or int parameters, "
                f"the search space has {len(continuous)}"
            )
    if algorithm == "hyperband" and HYPERBAND_RESOURCE not in {p["name"] for p in parameters}:
        return f"algorithm hyperband: its resource_name {HYPERBAND_RESOURCE} is not searched"
    return None


def unusable_algorithms() -> list[str]:
    """The line of each algorithm in ALGORITHMS that cannot search this space (empty when all
    can): pipeline/dag.py refuses to build the tuning pipeline on any."""
    lines = (unusable(a, Search(algorithm=a).parameters()) for a in ALGORITHMS)
    return [line for line in lines if line]


def grid_points(parameters: list[dict]) -> int:
    """How many points Katib's grid has over `parameters`, listed as its service lists them
    (pkg/suggestion/v1beta1/internal/search_space.py convert_to_combinations): an int's range
    by its step (1 by default), a double's numpy.arange(min, max + step, step) less a last
    value past max, a list's values."""
    points = 1
    for p in parameters:
        space = p["feasibleSpace"]
        if p["parameterType"] == "int":
            step = int(space.get("step") or 1)
            points *= len(range(int(space["min"]), int(space["max"]) + 1, step))
        elif p["parameterType"] == "double":
            points *= _arange_length(*(float(space[k]) for k in ("min", "max", "step")))
        else:
            points *= len(space["list"])
    return points


def _arange_length(low: float, high: float, step: float) -> int:
    """len(numpy.arange(low, high + step, step)) less its last value when that is past high:
    numpy makes ceil((stop - start) / step) values, start + i * (its second less its first)."""
    count = math.ceil((high + step - low) / step)
    delta = (low + step) - low
    return count - 1 if low + (count - 1) * delta > high else count


def hyperband_parallel(r_l: float, eta: int) -> int:
    """The trials Katib's hyperband starts at once, which parallelTrialCount must allow:
    ceil(eta ** s_max), s_max = int(log(r_l) / log(eta)), as its service computes them."""
    s_max = int(math.log(float(r_l)) / math.log(eta))
    return int(math.ceil(eta**s_max))
