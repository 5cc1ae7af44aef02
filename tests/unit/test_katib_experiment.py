"""The tune step's wait on its Katib Experiment (components/tune/katib.py tune, best_parameters,
write_report) as the operator and the next step see it: the best trial's values typed for the
train step, the line logged about it, one line when the Experiment ended without a best trial,
and the trials report written (in UTF-8 whatever the pod's locale, the listed trials of this
Experiment only, and when they cannot be listed a warning saying the same as the page's note).
Against a Kubernetes API stand-in (tests/kube_server.py). And the Experiment's own values:
the pipeline's defaults when none are given, the search seeded as the trials are, a quarter of
the trials allowed to fail, a failed trial run once, a trial pod scheduled as given and no more."""

from __future__ import annotations

import copy
import locale
import logging

import pytest

from components.common.kube import Kube, KubeError
from components.common.parameters import DEFAULTS
from components.train.config import TrainConfig
from components.tune import katib
from tests import katib_controller as controller
from tests.kube_server import Clock, client_for, kube_api
from tests.unit.test_katib_report import Page, seen, trial
from tests.unit.test_katib_tune import SUCCEEDED, body

NAME = "mnist-tune-run-1"


def run(status: dict, *trials: dict, forbid: str = "", report: str | None = None) -> dict:
    """tune() over an Experiment that ends with `status`, its namespace holding `trials`."""
    with kube_api() as (api, url):
        api.script_status("experiments", NAME, {"conditions": []}, status)
        for obj in trials:
            api.put("trials", obj)
        if forbid:
            api.forbid(forbid)
        return katib.tune(body(), 30, Kube(client_for(url)), 0.05, report_path=report)


def labelled(obj: dict, experiment: str = NAME) -> dict:
    obj["metadata"]["labels"] = {"katib.kubeflow.org/experiment": experiment}
    return obj


def test_the_best_trials_values_are_typed_for_the_train_step_and_logged_in_one_line(caplog):
    status = copy.deepcopy(SUCCEEDED)
    status["currentOptimalTrial"]["parameterAssignments"] = [
        {"name": "epochs", "value": "5"},  # Katib's order is not the pipeline's
        {"name": "learning_rate", "value": "1e-3"},
        {"name": "batch_size", "value": "128"},
    ]
    with caplog.at_level(logging.INFO, logger="mnist.tune"):
        best = run(status)
    assert best == {"learning_rate": 0.001, "batch_size": 128, "epochs": 5}
    assert [type(best[k]) for k in ("learning_rate", "batch_size", "epochs")] == [float, int, int]
    (line,) = [r for r in caplog.records if r.getMessage().startswith("best trial")]
    assert line.levelno == logging.INFO
    assert line.getMessage() == (
        "best trial mnist-tune-run-1-abc: {'learning_rate': 0.001, 'batch_size': 128, "
        "'epochs': 5} (validation_accuracy=0.9925, validation_loss=0.033)"
    )


@pytest.mark.parametrize(
    "optimal",
    [
        {"observation": {}},  # Katib's status when no trial reported the objective
        {"bestTrialName": "t", "parameterAssignments": [{"name": "learning_rate", "value": "0.01"},
                                                        {"name": "batch_size", "value": "64"}]},
        {"bestTrialName": "t", "parameterAssignments": [{"name": "learning_rate", "value": "0.01"},
                                                        {"name": "batch_size", "value": "big"},
                                                        {"name": "epochs", "value": "2"}]},
    ],
)  # fmt: skip
def test_an_experiment_that_ended_without_a_best_trial_says_so_in_one_line(optimal):
    status = {**SUCCEEDED, "currentOptimalTrial": optimal}
    with pytest.raises(KubeError) as e:
        run(status)
    assert str(e.value) == f"Experiment {NAME} ended without a best trial: {optimal}"
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_the_report_lists_this_experiments_trials_with_no_note(tmp_path):
    report = tmp_path / "report.html"
    ours = [
        labelled(trial("mnist-tune-run-1-abc", ("0.0213", "128", "5"), seen("0.9925"))),
        labelled(trial("mnist-tune-run-1-aaa", ("0.001", "256", "2"), seen("0.9710"))),
    ]
    other = labelled(trial("mnist-tune-run-2-xyz", ("0.01", "64", "1"), seen("0.999")), "other")
    run(SUCCEEDED, *ours, other, report=str(report))
    page = Page(report.read_text(encoding="utf-8"))
    assert page.notes == []
    assert [(cls, cells[1]) for cls, cells in page.trials] == [
        ("best", "mnist-tune-run-1-abc"),
        (None, "mnist-tune-run-1-aaa"),
    ]


def test_trials_that_cannot_be_listed_are_a_warning_saying_what_the_page_says(caplog, tmp_path):
    report = tmp_path / "report.html"
    with caplog.at_level(logging.INFO, logger="mnist.tune"):
        best = run(SUCCEEDED, forbid="list", report=str(report))
    assert best["epochs"] == 5  # the search succeeded: its result stands
    (note,) = Page(report.read_text(encoding="utf-8")).notes
    problem = note.removeprefix("The trials could not be listed: ")
    assert problem.startswith("cannot list Trial team-a/") and "\n" not in problem
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == f"trials report without the trials: {problem}"


def test_the_report_is_utf_8_whatever_the_locale(tmp_path):
    """The KFP UI reads the page as the UTF-8 it declares; a pod whose locale is ASCII (or
    Latin-1) still writes the star and the dash of the page as UTF-8."""
    report = tmp_path / "report.html"
    trials = [labelled(trial("mnist-tune-run-1-abc", ("0.0213", "128", "5"), seen("0.9925")))]
    before = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        run(SUCCEEDED, *trials, report=str(report))
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    text = report.read_bytes().decode("utf-8")
    assert '<meta charset="utf-8">' in text
    (row,) = Page(text).trials
    assert row == ("best", ["★ best", "mnist-tune-run-1-abc", "Succeeded", "0.0213", "128", "5",
                            "0.9925", "—"])  # fmt: skip


def test_an_experiment_given_no_search_values_has_the_pipelines():
    spec = body()["spec"]
    assert spec["algorithm"]["algorithmName"] == DEFAULTS["algorithm"]
    assert spec["objective"]["goal"] == DEFAULTS["goal"]
    assert spec["maxTrialCount"] == DEFAULTS["max_trials"]
    assert spec["parallelTrialCount"] == DEFAULTS["parallel_trials"]
    settings = {s["name"]: s["value"] for s in spec["algorithm"]["algorithmSettings"]}
    assert settings["random_state"] == str(DEFAULTS["seed"])


@pytest.mark.parametrize("algorithm", ["random", "tpe", "grid", "bayesianoptimization"])
def test_the_search_is_seeded_with_the_trials_seed(algorithm):
    """A search can be repeated: its random_state is the seed the trials train with."""
    fixed = TrainConfig(seed=7, validation_split=0.1)
    experiment = body(algorithm=algorithm, fixed=fixed)
    settings = experiment["spec"]["algorithm"]["algorithmSettings"]
    assert {s["name"]: s["value"] for s in settings}["random_state"] == "7"


@pytest.mark.parametrize(
    "max_trials, failed", [(1, 1), (2, 1), (3, 1), (4, 1), (7, 1), (8, 2), (12, 3), (13, 3)]
)
def test_a_quarter_of_the_trials_may_fail_and_at_least_one(max_trials, failed):
    experiment = body(max_trials=max_trials, parallel_trials=1)
    assert experiment["spec"]["maxFailedTrialCount"] == failed
    assert controller.webhook_errors(experiment) == []


@pytest.mark.parametrize("interval, sleeps", [(7.0, [7.0, 7.0]), (None, [15.0, 15.0])])
def test_the_experiment_is_polled_at_the_interval_given_else_every_15_s(
    interval, sleeps, monkeypatch
):
    """The tune step passes none: it asks the Kubernetes API about its Experiment every 15 s."""
    from components.common import kube as kube_module

    clock = Clock()
    monkeypatch.setattr(kube_module, "time", clock)
    given = {} if interval is None else {"interval": interval}
    with kube_api() as (api, url):
        api.script_status("experiments", NAME, {"conditions": []}, {"conditions": []}, SUCCEEDED)
        best = katib.tune(body(), 3600, Kube(client_for(url)), **given)
    assert best["epochs"] == 5
    assert clock.sleeps == sleeps


def trial_job(experiment: dict) -> dict:
    """The Job Katib's controller makes of the Experiment's template for one suggestion."""
    assignments = {"learning_rate": "0.01", "batch_size": "64", "epochs": "2"}
    return controller.run_spec(experiment, f"{NAME}-x7k2m9qd", "team-a", assignments)


def test_a_failed_trial_runs_once_and_counts_as_failed():
    """Neither the pod nor the Job runs a failed trial again: Katib counts it failed (against
    maxFailedTrialCount), and a second run would append a second series of metric lines to
    the collector's file."""
    job = trial_job(body())
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


ENV = [{"name": "AWS_REGION", "value": "eu-1"}]
LIMITS = {"limits": {"cpu": "2"}}
TOLERATIONS = [{"key": "k", "operator": "Exists"}]


@pytest.mark.parametrize(
    "pod, in_container, in_pod",
    [
        (None, {}, {}),
        ({"env": ENV}, {"env": ENV}, {}),
        ({"resources": LIMITS}, {"resources": LIMITS}, {}),
        ({"nodeSelector": {"pool": "cpu"}}, {}, {"nodeSelector": {"pool": "cpu"}}),
        ({"tolerations": TOLERATIONS}, {}, {"tolerations": TOLERATIONS}),
        ({"env": [], "resources": {}, "nodeSelector": {}, "tolerations": []}, {}, {}),
    ],
)
def test_a_trial_pod_gets_the_scheduling_given_and_nothing_else(pod, in_container, in_pod):
    spec = trial_job(body(pod=pod))["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert {k: container[k] for k in ("env", "resources") if k in container} == in_container
    assert {k: spec[k] for k in ("nodeSelector", "tolerations") if k in spec} == in_pod
