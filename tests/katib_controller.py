"""Katib as it behaves, for the tests: what its admission webhook refuses in an Experiment, how
its controller turns the trial template and a suggestion's assignments into the trial's Job,
how the StdOut metrics collector's webhook rewrites the trial's command, and which of a trial's
reported values counts. Written from kubeflow/katib at 33c8ff4e (the commit the vendored CRDs
come from):

- pkg/webhook/v1beta1/experiment/validator/validator.go (ValidateExperiment)
- pkg/apis/controller/experiments/v1beta1/experiment_defaults.go (SetDefault)
- pkg/controller.v1beta1/experiment/manifest/generator.go (applyParameters)
- pkg/controller.v1beta1/consts/const.go (the `${trialParameters.<name>}` format and regexes)
- pkg/webhook/v1beta1/pod/utils.go (wrapWorkerContainer)
- pkg/controller.v1beta1/experiment/util/status_util.go (getObjectiveMetricValue)

Only what an Experiment of this project can meet is mirrored; the messages are Katib's,
shortened.
"""

from __future__ import annotations

import copy
import json
import re

PLACEHOLDER = "${{trialParameters.{}}}"  # TrialTemplateParamReplaceFormat
PLACEHOLDERS = re.compile(r"\$\{trialParameters\..+?\}")  # ...ParamReplaceFormatRegex
META = re.compile(r"\$\{trialSpec\.(.+?)\}")  # TrialTemplateMetaReplaceFormatRegex
NAMING = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Go's MatchString: anchored at the start
TYPES = ("int", "double", "categorical", "discrete")
METRICS_FILE = "/var/log/katib/metrics.log"  # the StdOut collector's file


class Refused(Exception):
    """What Katib's webhook or controller would answer instead of making the trial."""


def template_string(experiment: dict) -> str:
    """The trial template as the controller substitutes into it: its JSON text."""
    return json.dumps(experiment["spec"]["trialTemplate"]["trialSpec"], sort_keys=True)


def webhook_errors(experiment: dict) -> list[str]:
    """What Katib's validating webhook says of `experiment` (empty: it is admitted)."""
    spec, name = experiment["spec"], experiment["metadata"]["name"]
    errors = []
    if not NAMING.match(name) or len(name) > 40:
        errors.append(f"metadata.name: {name!r} may not be longer than 40 characters ...")
    maximum, parallel = spec.get("maxTrialCount"), spec.get("parallelTrialCount")
    failed = spec.get("maxFailedTrialCount")
    if maximum is not None and maximum <= 0:
        errors.append("spec.maxTrialCount: must be greater than 0")
    if maximum is not None and failed is not None and failed > maximum:
        errors.append("spec.maxFailedTrialCount: should be less than or equal to maxTrialCount")
    if maximum is not None and parallel is not None and parallel > maximum:
        errors.append("spec.parallelTrialCount: should be less than or equal to maxTrialCount")
    objective = spec.get("objective") or {}
    if objective.get("type") not in ("minimize", "maximize"):
        errors.append("spec.objective.type: must be minimize or maximize")
    if not objective.get("objectiveMetricName"):
        errors.append("spec.objective.objectiveMetricName: must be specified")
    if objective.get("objectiveMetricName") in (objective.get("additionalMetricNames") or []):
        errors.append("spec.objective.additionalMetricNames: should not contain the objective")
    if not (spec.get("algorithm") or {}).get("algorithmName"):
        errors.append("spec.algorithm.algorithmName: must be specified")
    return errors + _parameter_errors(spec.get("parameters") or []) + _template_errors(spec)


def _parameter_errors(parameters: list[dict]) -> list[str]:
    errors = []
    for i, p in enumerate(parameters):
        where, kind, space = f"spec.parameters[{i}]", p.get("parameterType"), p.get("feasibleSpace")
        if kind not in TYPES:
            errors.append(f"{where}.parameterType: {kind} is not supported")
        if not space:
            errors.append(f"{where}.feasibleSpace: feasibleSpace must be specified")
        elif kind in ("int", "double"):
            if space.get("list"):
                errors.append(f"{where}.feasibleSpace.list: not supported for {kind}")
            if not space.get("min") or not space.get("max"):
                errors.append(f"{where}.feasibleSpace.max: max or min must be specified")
        elif any(space.get(k) for k in ("min", "max", "step")):
            errors.append(f"{where}.feasibleSpace: .max, .min and .step not supported for {kind}")
    return errors


def _template_errors(spec: dict) -> list[str]:
    """validateTrialTemplate, for a trialSpec (not a ConfigMap) template."""
    template = spec.get("trialTemplate") or {}
    errors = []
    if not template.get("primaryContainerName"):
        errors.append("spec.trialTemplate.primaryContainerName: must be specified")
    if template.get("trialParameters") is None:
        return [*errors, "spec.trialTemplate.trialParameters: must be specified"]
    text = template_string({"spec": spec})
    searched = {p["name"] for p in spec.get("parameters") or []}
    names, refs = set(), set()
    for i, p in enumerate(template["trialParameters"]):
        where = f"spec.trialTemplate.trialParameters[{i}]"
        name, ref = p.get("name", ""), p.get("reference", "")
        if not name or not ref or "{" in name or "}" in name:
            errors.append(f"{where}: name and reference must be specified ...")
            continue
        if name in names or ref in refs:
            errors.append(f"{where}: parameter {name}/{ref} can't be duplicated")
            continue
        names.add(name)
        refs.add(ref)
        if searched and not ref.startswith("${trialSpec.") and ref not in searched:
            errors.append(f"{where}.reference: parameter reference {ref} does not exist")
        if PLACEHOLDER.format(name) not in text:
            return [*errors, f"{where}.name: parameter name: {name} not found in the template"]
        text = text.replace(PLACEHOLDER.format(name), "test-value")
    left = PLACEHOLDERS.findall(text)
    if left:
        errors.append(f"spec.trialTemplate: parameters: {left} not found in trialParameters")
    job = json.loads(text)
    if (job.get("metadata") or {}).get("name") or (job.get("metadata") or {}).get("namespace"):
        errors.append("spec.trialTemplate: metadata.name and metadata.namespace must be omitted")
    if not job.get("apiVersion") or not job.get("kind"):
        errors.append("spec.trialTemplate: APIVersion and Kind must be specified")
    return errors


def defaulted(experiment: dict) -> dict:
    """The Experiment as the mutating webhook stores it (SetDefault): each metric without a
    strategy gets the objective type's (max for maximize, min for minimize)."""
    done = copy.deepcopy(experiment)
    objective = done["spec"]["objective"]
    strategies = objective.setdefault("metricStrategies", [])
    default = {"maximize": "max", "minimize": "min"}.get(objective["type"], "latest")
    named = {s["name"] for s in strategies}
    for metric in [objective["objectiveMetricName"], *objective.get("additionalMetricNames", [])]:
        if metric not in named:
            strategies.append({"name": metric, "value": default})
    return done


def run_spec(experiment: dict, trial: str, namespace: str, assignments: dict[str, str]) -> dict:
    """The trial's Job, as the controller makes it from the template and the suggestion's
    `assignments` (applyParameters, then name and namespace set)."""
    template = experiment["spec"]["trialTemplate"]
    text = template_string(experiment)
    values = {}
    from_assignments = 0
    for p in template["trialParameters"]:
        meta = META.fullmatch(p["reference"])
        if meta is None:
            if p["reference"] not in assignments:
                raise Refused(
                    "unable to find non-meta parameter from TrialParameters in "
                    f"ParameterAssignment: parameter: {p['reference']}, assignment: {assignments}"
                )
            values[p["name"]] = assignments[p["reference"]]
            from_assignments += 1
        else:
            values[p["name"]] = {"Name": trial, "Namespace": namespace}[meta.group(1)]
    if len(assignments) != from_assignments:
        raise Refused(
            "unable to find parameter from ParameterAssignment in TrialParameters: "
            f"{assignments}, non-meta trial parameter count: {from_assignments}"
        )
    for name, value in values.items():
        text = text.replace(PLACEHOLDER.format(name), value)
    job = json.loads(text)
    job.setdefault("metadata", {}).update(name=trial, namespace=namespace)
    return job


def collector_command(container: dict, metrics_file: str = METRICS_FILE) -> list[str]:
    """The primary container's command once the StdOut collector's webhook wrapped it: its
    words joined with spaces (unquoted) into `sh -c`, output redirected to the metrics file
    and a completion mark appended. A command that is already `sh -c` keeps its script."""
    args = [*container.get("command", []), *container.get("args", [])]
    command = ["sh", "-c"]
    if args[0] in ("sh", "bash") and args[1] == "-c":
        command, args = args[:2], args[2:]
    folder = metrics_file.rsplit("/", 1)[0]
    args = [*args, f"1>{metrics_file} 2>&1", "&&", f"echo completed > {folder}/$$$$.pid"]
    return [*command, " ".join(args)]


def objective_value(metric: dict, strategy: str) -> str:
    """A trial's value of a metric for the Experiment (getObjectiveMetricValue)."""
    value = metric.get(strategy, "unavailable")
    if strategy in ("min", "max") and value == "unavailable":
        return metric.get("latest", "unavailable")
    return value


# The suggestion services' ValidateAlgorithmSettings, by the service katib-config assigns.
SERVICES = {
    "random": "hyperopt", "tpe": "hyperopt", "grid": "optuna", "multivariate-tpe": "optuna",
    "cmaes": "goptuna", "sobol": "goptuna", "bayesianoptimization": "skopt",
    "hyperband": "hyperband",
}  # fmt: skip
ACCEPTED = {  # the settings each service's validation lets through (others: "unknown setting")
    ("hyperopt", "random"): {"random_state"},
    ("hyperopt", "tpe"): {"gamma", "prior_weight", "n_EI_candidates", "random_state"},
    ("optuna", "multivariate-tpe"): {"n_startup_trials", "n_ei_candidates", "random_state"},
    ("optuna", "grid"): {"random_state"},
    ("skopt", "bayesianoptimization"): {
        "base_estimator", "n_initial_points", "acq_func", "acq_optimizer", "random_state",
    },
}  # fmt: skip


def suggestion_error(experiment: dict) -> str | None:
    """What the algorithm's suggestion service answers to ValidateAlgorithmSettings (None: the
    settings are valid), for the services and settings an Experiment of this project uses."""
    spec = experiment["spec"]
    algorithm = spec["algorithm"]["algorithmName"]
    settings = {s["name"]: s["value"] for s in spec["algorithm"].get("algorithmSettings", [])}
    service = SERVICES.get(algorithm)
    if service is None:
        return f"unable to get Suggestion config data for algorithm {algorithm}"
    accepted = ACCEPTED.get((service, algorithm))
    if accepted is not None:
        unknown = sorted(set(settings) - accepted)
        if unknown:
            return f"unknown setting {unknown[0]} for algorithm {algorithm}"
        if any(int(settings[k]) < 0 for k in settings if k in _INTEGERS):
            return "settings should be greater or equal than zero"
    parameters = spec["parameters"]
    if algorithm == "grid":
        return _grid_error(parameters, spec["maxTrialCount"])
    if algorithm == "cmaes":
        continuous = [p for p in parameters if p["parameterType"] in ("double", "int")]
        if len(continuous) < 2:
            return "CMA-ES only supports two or more dimensional continuous search space."
    if algorithm == "hyperband":
        return _hyperband_error(settings, parameters, spec["parallelTrialCount"])
    return None


_INTEGERS = {"random_state", "n_startup_trials", "n_ei_candidates", "n_EI_candidates",
             "n_initial_points"}  # fmt: skip


def _grid_error(parameters: list[dict], max_trials: int) -> str | None:
    """optuna's _validate_grid_setting over convert_to_combinations."""
    import numpy as np

    count = 1
    for p in parameters:
        space = p["feasibleSpace"]
        if p["parameterType"] == "int":
            count *= len(range(int(space["min"]), int(space["max"]) + 1, int(space.get("step", 1))))
        elif p["parameterType"] == "double":
            if not space.get("step"):
                return f"Param {p['name']} step is nil; all parameters must include step"
            low, high, step = (float(space[k]) for k in ("min", "max", "step"))
            values = np.arange(low, high + step, step)
            count *= len(values) - (1 if values[-1] > high else 0)
        else:
            count *= len(space["list"])
    if max_trials > count:
        return f"Max Trial Count: {max_trials} > all possible search combinations: {count}"
    return None


def _hyperband_error(settings: dict, parameters: list[dict], parallel: int) -> str | None:
    """hyperband's ValidateAlgorithmSettings."""
    import math

    if "r_l" not in settings or "resource_name" not in settings:
        return "r_l and resource_name must be set."
    r_l = float(settings["r_l"])
    if r_l < 0:
        return "r_l must be a positive float number."
    eta = int(float(settings.get("eta", 3)))
    eta = eta if eta > 0 else 3
    s_max = int(math.log(r_l) / math.log(eta))
    max_parallel = int(math.ceil(eta**s_max))
    if parallel < max_parallel:
        return f"parallelTrialCount must be not less than {max_parallel}."
    if settings["resource_name"] not in {p["name"] for p in parameters}:
        return "value of resource_name setting must be in parameters."
    return None
