"""The tune step's trials report (components/tune/report.py) as a person reads it in the KFP UI:
the page parsed, and what it says checked — the title naming the best trial and its objective,
the line under it (the Experiment, its algorithm, its trials counted by state, how a trial's
objective is taken), the table's header and each row's cells, the best trial first and marked,
the others by objective (the better first; with none, last), a failed trial's state, values
shown as Katib reported them, each read by its metric's strategy as Katib reads it, and a note
when the trials could not be listed. Nothing else on the page: no stray text."""

from __future__ import annotations

import copy
from html.parser import HTMLParser

import pytest

from components.tune.report import trials_report
from tests import katib_controller as controller
from tests.unit.test_katib_tune import SUCCEEDED, body

ACCURACY, LOSS = "validation_accuracy", "validation_loss"
PARAMETERS = ["learning_rate", "batch_size", "epochs"]
VOID = {"meta", "br", "img", "hr", "input", "link"}


class Page(HTMLParser):
    """The page as a reader sees it: the window's title, the heading, the line under it, any
    note, the section headings, the trials table (its id; each row's class and its cells'
    text) and any text found anywhere else (there should be none)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.title, self.h1, self.meta = "", "", ""
        self.notes: list[str] = []
        self.headings: list[str] = []
        self.table_ids: list[str | None] = []
        self.rows: list[tuple[str | None, list[str]]] = []
        self.stray: list[str] = []
        self._open: list[tuple[str, dict]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.table_ids.append(attrs.get("id"))
        elif tag == "tr":
            self.rows.append((attrs.get("class"), []))
        elif tag in ("td", "th"):
            self.rows[-1][1].append("")
        if tag not in VOID:
            self._open.append((tag, attrs))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        tag, attrs = self._open[-1] if self._open else ("", {})
        if tag in ("td", "th"):
            self.rows[-1][1][-1] += data
        elif tag == "title":
            self.title += data
        elif tag == "h1":
            self.h1 += data
        elif tag == "div" and attrs.get("class") == "meta":
            self.meta += data
        elif tag == "p" and attrs.get("class") == "bad":
            self.notes.append(data)
        elif tag == "h2":
            self.headings.append(data)
        elif tag != "style" and data.strip():
            self.stray.append(data)

    @property
    def header(self) -> list[str]:
        return self.rows[0][1]

    @property
    def trials(self) -> list[tuple[str | None, list[str]]]:
        return self.rows[1:]


def read(experiment: dict, trials: list[dict], *problem: str) -> Page:
    """The report's page (of `trials_report(experiment, trials, *problem)`), checked for what
    every page holds: one table, the trials one, its section heading, the title as the
    heading, and no text outside its places."""
    page = Page(trials_report(experiment, trials, *problem))
    assert page.table_ids == ["trials"]  # the style marks the best row through #trials
    assert page.headings == ["Trials"]
    assert page.title == page.h1
    assert page.stray == []
    assert page.rows and page.rows[0][0] is None  # the header row
    return page


def ended(objective: dict | None = None, best: str = "mnist-tune-run-1-abc") -> dict:
    """The ended Experiment as Katib stores it (defaulted), with `objective` instead of the
    step's, and `best` its currentOptimalTrial."""
    experiment = controller.defaulted(body())
    if objective is not None:
        experiment["spec"]["objective"] = objective
    experiment["status"] = copy.deepcopy(SUCCEEDED)
    experiment["status"]["currentOptimalTrial"]["bestTrialName"] = best
    return experiment


def seen(latest: str, low: str = "0.5", high: str = "0.999") -> dict:
    """A metric's observation as Katib keeps it: its min, max and latest over the epochs."""
    return {"min": low, "max": high, "latest": latest}


UNSEEN = seen("unavailable", "unavailable", "unavailable")  # a metric never reported


def trial(
    name: str,
    values: tuple[str, str, str],
    accuracy: dict | None = None,
    loss: dict | None = None,
    states: tuple[str, ...] = ("Created", "Succeeded"),
    objective: dict | None = None,
) -> dict:
    """A Trial of the Experiment as Katib keeps it: its assignments, the conditions `states`
    holding, its metrics' observations, and the objective Katib copied into it (the step's,
    defaulted, unless `objective`)."""
    observed = [{"name": m, **o} for m, o in ((ACCURACY, accuracy), (LOSS, loss)) if o]
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "objective": objective or controller.defaulted(body())["spec"]["objective"],
            "parameterAssignments": [
                {"name": n, "value": v} for n, v in zip(PARAMETERS, values, strict=True)
            ],
        },
        "status": {
            "conditions": [{"type": s, "status": "True"} for s in states],
            **({"observation": {"metrics": observed}} if observed else {}),
        },
    }


def test_each_trial_is_a_row_the_best_first_and_marked_the_others_by_their_last_epoch():
    trials = [
        trial("mnist-tune-run-1-aab", ("0.002", "256", "2"), seen("0.9710"), seen("0.09")),
        trial("mnist-tune-run-1-aaa", ("0.001", "256", "2"), seen("0.9710"), seen("0.1")),
        trial("mnist-tune-run-1-zzz", ("0.05", "64", "8"), UNSEEN, states=("Created", "Failed")),
        trial("mnist-tune-run-1-bbb", ("0.0087", "64", "6"), seen("0.9902", high="0.9960"),
              seen("0.041", low="0.02")),
        trial("mnist-tune-run-1-ddd", ("0.03", "128", "3"), states=("Created", "Running")),
        trial("mnist-tune-run-1-abc", ("0.0213", "128", "5"), seen("0.9925", high="0.9931"),
              seen("0.033", low="0.031")),
    ]  # fmt: skip
    page = read(ended(), trials)
    assert page.h1 == "Katib search: best validation_accuracy 0.9925 (mnist-tune-run-1-abc)"
    assert page.meta == (
        "Experiment team-a/mnist-tune-run-1, algorithm tpe; 6 trials (1 failed, 1 running, "
        "4 succeeded); each trial's validation_accuracy is its latest reported value "
        "(its last epoch's)."
    )
    assert page.notes == []
    assert page.header == [
        "", "trial", "status", "learning_rate", "batch_size", "epochs",
        "validation_accuracy (latest)", "validation_loss (latest)",
    ]  # fmt: skip
    assert page.trials == [
        ("best", ["★ best", "mnist-tune-run-1-abc", "Succeeded", "0.0213", "128", "5",
                  "0.9925", "0.033"]),
        (None, ["", "mnist-tune-run-1-bbb", "Succeeded", "0.0087", "64", "6", "0.9902", "0.041"]),
        (None, ["", "mnist-tune-run-1-aaa", "Succeeded", "0.001", "256", "2", "0.9710", "0.1"]),
        (None, ["", "mnist-tune-run-1-aab", "Succeeded", "0.002", "256", "2", "0.9710", "0.09"]),
        (None, ["", "mnist-tune-run-1-ddd", "Running", "0.03", "128", "3", "—", "—"]),
        (None, ["", "mnist-tune-run-1-zzz", "Failed", "0.05", "64", "8", "—", "—"]),
    ]  # fmt: skip


MINIMIZED = {"type": "minimize", "goal": 0.02, "objectiveMetricName": LOSS,
             "additionalMetricNames": [ACCURACY]}  # fmt: skip


def test_a_minimized_objective_lists_the_lowest_first_each_metric_by_its_min():
    """No metricStrategies: each metric is taken by Katib's default for the objective's type,
    min for minimize (a min never reported falls back to the latest, as Katib does)."""
    trials = [
        trial("t-high", ("0.01", "64", "2"), seen("0.97", low="0.96"), seen("0.3", low="0.2"),
              objective=MINIMIZED),
        trial("t-best", ("0.02", "64", "4"), seen("0.99", low="0.9"), seen("0.04", low="0.03"),
              objective=MINIMIZED),
        trial("t-low", ("0.03", "128", "4"), seen("0.98", low="0.95"),
              {"min": "unavailable", "latest": "0.06"}, objective=MINIMIZED),
        trial("t-mid", ("0.04", "256", "4"), seen("0.98", low="0.94"), seen("0.11", low="0.1"),
              objective=MINIMIZED),
    ]  # fmt: skip
    page = read(ended(MINIMIZED, best="t-best"), trials)
    assert page.h1 == "Katib search: best validation_loss 0.03 (t-best)"
    assert page.meta.endswith(
        "; 4 trials (4 succeeded); each trial's validation_loss is its min reported value."
    )
    assert page.header[-2:] == ["validation_loss (min)", "validation_accuracy (min)"]
    assert [(cls, cells[1], cells[-2:]) for cls, cells in page.trials] == [
        ("best", "t-best", ["0.03", "0.9"]),
        (None, "t-low", ["0.06", "0.95"]),
        (None, "t-mid", ["0.1", "0.94"]),
        (None, "t-high", ["0.2", "0.96"]),
    ]


def test_a_diverged_trial_sorts_with_those_that_reported_nothing():
    """A nan (or infinite) loss is no order: such a trial is listed after every trial with a
    value, shown as Katib reported it, and the others keep their order."""
    values = {"t-a": "0.3", "t-b": "nan", "t-c": "0.1", "t-d": "0.2", "t-e": "inf", "t-f": "0.05"}
    trials = [
        trial(name, ("0.01", "64", "2"), seen("0.9"), seen(v, low=v), objective=MINIMIZED)
        for name, v in values.items()
    ]
    page = read(ended(MINIMIZED, best=""), trials)
    assert [(cells[1], cells[-2]) for _, cells in page.trials] == [
        ("t-f", "0.05"), ("t-c", "0.1"), ("t-d", "0.2"), ("t-a", "0.3"), ("t-b", "nan"),
        ("t-e", "inf"),
    ]  # fmt: skip


MAXIMIZED = {"type": "maximize", "goal": 0.99, "objectiveMetricName": ACCURACY,
             "additionalMetricNames": [LOSS]}  # fmt: skip


def test_a_maximized_objective_without_strategies_takes_each_metrics_max():
    trials = [
        trial("t-a", ("0.01", "64", "2"), seen("0.97", high="0.98"), seen("0.3", high="0.5"),
              objective=MAXIMIZED),
        trial("t-b", ("0.02", "64", "4"), {"max": "unavailable", "latest": "0.985"},
              seen("0.2", high="0.4"), objective=MAXIMIZED),
        trial("t-c", ("0.03", "64", "4"), seen("0.96", high="0.99"), {"max": "", "latest": "0.1"},
              objective=MAXIMIZED),
    ]  # fmt: skip
    page = read(ended(MAXIMIZED, best="t-c"), trials)
    assert page.h1 == "Katib search: best validation_accuracy 0.99 (t-c)"
    assert page.meta.endswith("each trial's validation_accuracy is its max reported value.")
    assert page.header[-2:] == ["validation_accuracy (max)", "validation_loss (max)"]
    assert [(cls, cells[1], cells[-2:]) for cls, cells in page.trials] == [
        ("best", "t-c", ["0.99", "—"]),  # a value reported empty is none
        (None, "t-b", ["0.985", "0.4"]),  # no max: its latest
        (None, "t-a", ["0.98", "0.5"]),
    ]


def test_each_metric_is_read_by_its_own_strategy():
    objective = {**MAXIMIZED, "metricStrategies": [{"name": ACCURACY, "value": "latest"},
                                                   {"name": LOSS, "value": "min"}]}  # fmt: skip
    trials = [
        trial("t-a", ("0.01", "64", "2"), seen("0.97", high="0.98"),
              seen("0.3", low="0.25", high="0.5"), objective=objective),
    ]  # fmt: skip
    page = read(ended(objective, best="t-a"), trials)
    assert page.header[-2:] == ["validation_accuracy (latest)", "validation_loss (min)"]
    assert page.trials == [("best", ["★ best", "t-a", "Succeeded", "0.01", "64", "2",
                                     "0.97", "0.25"])]  # fmt: skip
    assert page.meta.endswith(
        "each trial's validation_accuracy is its latest reported value (its last epoch's)."
    )


def test_a_trial_is_read_by_the_objective_it_carries_else_the_experiments():
    """Katib copies the Experiment's objective into each Trial, and reads a Trial by the one
    it holds; a Trial without one (the best trial alone, when none could be listed) is read
    by the Experiment's."""
    latest = {**MAXIMIZED, "metricStrategies": [{"name": ACCURACY, "value": "latest"},
                                                {"name": LOSS, "value": "latest"}]}  # fmt: skip
    carrying = trial("t-own", ("0.01", "64", "2"), seen("0.97", high="0.98"),
                     seen("0.3", high="0.5"), objective=latest)  # fmt: skip
    bare = trial("t-none", ("0.02", "64", "2"), seen("0.95", high="0.96"), seen("0.2", high="0.4"))
    del bare["spec"]["objective"]
    page = read(ended(MAXIMIZED, best="t-own"), [carrying, bare])
    assert [cells[-2:] for _, cells in page.trials] == [["0.97", "0.3"], ["0.96", "0.4"]]


@pytest.mark.parametrize(
    "conditions, state",
    [
        ([], "Pending"),
        ([("Created", "True")], "Created"),
        ([("Created", "True"), ("Running", "True")], "Running"),
        ([("Created", "True"), ("Running", "False"), ("Succeeded", "True")], "Succeeded"),
        ([("Created", "True"), ("Running", "False"), ("Failed", "True")], "Failed"),
        ([("Created", "True"), ("Running", "False"), ("Killed", "True")], "Killed"),
        ([("Created", "True"), ("Running", "False"), ("EarlyStopped", "True")], "EarlyStopped"),
        ([("Created", "True"), ("Running", "False"), ("MetricsUnavailable", "True")],
         "MetricsUnavailable"),
        ([("Created", "True"), ("Running", True)], "Running"),  # a status read as a YAML bool
        ([("Created", "False")], "Pending"),
    ],
)  # fmt: skip
def test_a_trials_state_is_its_last_condition_that_holds(conditions, state):
    obj = trial("t-a", ("0.01", "64", "2"))
    obj["status"]["conditions"] = [{"type": t, "status": s} for t, s in conditions]
    page = read(ended(best=""), [obj])
    assert page.trials[0][1][2] == state
    assert page.meta.endswith(f"; 1 trials (1 {state.lower()}); each trial's "
                              "validation_accuracy is its latest reported value "
                              "(its last epoch's).")  # fmt: skip


def test_values_are_shown_as_katib_reported_them_and_one_not_a_number_sorts_last():
    trials = [
        trial("t-odd", ("0.01", "64", "2"), seen("n/a"), seen("0.30")),
        trial("t-plain", ("1e-3", "64", "2"), seen("0.9500"), seen("0.0400")),
        trial("t-exp", ("0.01", "64", "2"), seen("9.6e-01"), seen("4E-2")),
        trial("t-none", ("0.01", "64", "2")),
    ]
    page = read(ended(best=""), trials)
    assert [(cls, cells[1], cells[3], cells[-2:]) for cls, cells in page.trials] == [
        (None, "t-exp", "0.01", ["9.6e-01", "4E-2"]),
        (None, "t-plain", "1e-3", ["0.9500", "0.0400"]),
        (None, "t-none", "0.01", ["—", "—"]),
        (None, "t-odd", "0.01", ["n/a", "0.30"]),
    ]
    assert page.h1 == "Katib search: no trial reported validation_accuracy"


def test_a_best_trial_without_an_objective_value_is_marked_but_not_titled():
    trials = [
        trial("t-best", ("0.01", "64", "2"), UNSEEN, states=("Created", "MetricsUnavailable")),
        trial("t-other", ("0.02", "64", "2"), seen("0.9")),
    ]
    page = read(ended(best="t-best"), trials)
    assert page.h1 == "Katib search: no trial reported validation_accuracy"
    assert [(cls, cells[:3]) for cls, cells in page.trials] == [
        ("best", ["★ best", "t-best", "MetricsUnavailable"]),
        (None, ["", "t-other", "Succeeded"]),
    ]


def test_trials_that_could_not_be_listed_leave_the_best_alone_and_a_note_saying_why():
    problem = "cannot list Trial team-a/<all>: 403 Forbidden (the Role needs `list`)"
    page = read(ended(), [], problem)
    assert page.notes == [f"The trials could not be listed: {problem}"]
    assert page.h1 == "Katib search: best validation_accuracy 0.9925 (mnist-tune-run-1-abc)"
    assert page.trials == [
        ("best", ["★ best", "mnist-tune-run-1-abc", "Succeeded", "0.0213", "128", "5",
                  "0.9925", "0.033"]),
    ]  # fmt: skip
    assert page.meta.startswith(
        "Experiment team-a/mnist-tune-run-1, algorithm tpe; 1 trials (1 succeeded); "
    )


def test_an_experiment_without_a_best_trial_and_no_trials_has_an_empty_table():
    experiment = ended()
    del experiment["status"]["currentOptimalTrial"]
    page = read(experiment, [], "")  # no problem said
    assert page.trials == [] and page.notes == []
    assert page.h1 == "Katib search: no trial reported validation_accuracy"
    assert page.meta == (
        "Experiment team-a/mnist-tune-run-1, algorithm tpe; 0 trials (none); each trial's "
        "validation_accuracy is its latest reported value (its last epoch's)."
    )


def test_what_the_cluster_left_out_is_shown_empty():
    """Every field is read where it may be missing: what is absent shows as an empty cell or
    name, a value never reported as a dash, nothing as Python's None."""
    experiment = {"spec": {"parameters": [{"parameterType": "int"}]},
                  "status": {"currentOptimalTrial": {"parameterAssignments": [
                      {"name": "other", "value": "3"}]}}}  # fmt: skip
    page = read(experiment, [])
    assert page.header == ["", "trial", "status", "", " (latest)"]
    assert page.trials == [(None, ["", "", "Succeeded", "", "—"])]  # no name: not the best
    assert page.h1 == "Katib search: no trial reported "
    assert page.meta == (
        "Experiment /, algorithm ; 1 trials (1 succeeded); each trial's  is its latest "
        "reported value (its last epoch's)."
    )
    page = read({}, [{}])
    assert page.header == ["", "trial", "status", " (latest)"]
    assert page.trials == [(None, ["", "", "Pending", "—"])]


def test_every_value_from_the_cluster_is_shown_as_text():
    hostile = '<img src=x onerror="alert(1)">'
    experiment = ended(best=hostile)
    experiment["metadata"]["name"] = "<b>x</b>"
    page = read(experiment, [trial(hostile, ("<i>1</i>", "64", "2"), seen("<s>0.9</s>"))], "<p>")
    assert page.trials[0] == ("best", ["★ best", hostile, "Succeeded", "<i>1</i>", "64", "2",
                                       "<s>0.9</s>", "—"])  # fmt: skip
    assert page.h1 == f"Katib search: best validation_accuracy <s>0.9</s> ({hostile})"
    assert page.meta.startswith("Experiment team-a/<b>x</b>, ")
    assert page.notes == ["The trials could not be listed: <p>"]
