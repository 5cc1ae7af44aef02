"""Katib's search algorithms over the tune step's space (components/tune/search.py): the
algorithmSettings each one gets, what its suggestion service would refuse (mirrored in
tests/katib_controller.py from Katib's services), refused in one line when the Experiment is
built, by `mnist-pipeline tune` before a run, and, for an algorithm that cannot search this
space at all, when the tuning pipeline is built."""

from __future__ import annotations

import itertools

import pytest
from click.testing import CliRunner

from components.common.errors import InputError
from components.common.parameters import ALGORITHMS
from components.tune import search as search_
from components.tune.search import Search
from tests import katib_controller as controller
from tests.unit.test_katib_tune import body

SETTINGS = {  # what each algorithm gets, for seed 42, 12 trials, 3 at once, 8 epochs
    "random": {"random_state": "42"},
    "tpe": {"random_state": "42"},
    "multivariate-tpe": {"random_state": "42", "n_startup_trials": "4"},
    "grid": {"random_state": "42"},
    "cmaes": {"random_state": "42"},
    "sobol": {},
    "bayesianoptimization": {"random_state": "42", "n_initial_points": "4"},
    "hyperband": {"resource_name": "epochs", "r_l": "8", "eta": "3"},
}


def test_every_algorithm_offered_has_its_settings():
    assert set(SETTINGS) == set(ALGORITHMS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_gets_the_settings_its_service_takes(algorithm):
    experiment = body(algorithm=algorithm, max_epochs=8, parallel_trials=3)
    settings = experiment["spec"]["algorithm"]["algorithmSettings"]
    assert {s["name"]: s["value"] for s in settings} == SETTINGS[algorithm]
    assert controller.suggestion_error(experiment) is None


def test_grid_searches_learning_rates_it_can_list_and_the_others_a_range():
    """Katib's grid needs a `step` for a double: there the learning rate is a list of
    log-spaced values over the other algorithms' range."""
    grid = {p["name"]: p for p in Search("grid").parameters()}
    tpe = {p["name"]: p for p in Search("tpe").parameters()}
    assert grid["learning_rate"]["parameterType"] == "discrete"
    rates = [float(v) for v in grid["learning_rate"]["feasibleSpace"]["list"]]
    assert rates == sorted(rates) and len(rates) >= 5
    space = tpe["learning_rate"]["feasibleSpace"]
    assert tpe["learning_rate"]["parameterType"] == "double"
    assert (rates[0], rates[-1]) == (float(space["min"]), float(space["max"]))
    assert {k: v for k, v in grid.items() if k != "learning_rate"} == {
        k: v for k, v in tpe.items() if k != "learning_rate"
    }


@pytest.mark.parametrize(
    "values, line",
    [
        (
            dict(algorithm="grid", max_trials=200, max_epochs=8),
            "algorithm grid: max_trials=200 is more than the 144 points of its grid (6 learning "
            "rates x 3 batch sizes x 8 epochs); lower max_trials or raise max_epochs",
        ),
        (
            dict(algorithm="hyperband", parallel_trials=2, max_epochs=8),
            "algorithm hyperband: parallel_trials=2 is below the 3 trials its first bracket "
            "runs at once (eta=3, r_l=max_epochs=8); set parallel_trials to 3 or more",
        ),
        (
            dict(algorithm="hyperband", parallel_trials=8, max_epochs=9, max_trials=40),
            "algorithm hyperband: parallel_trials=8 is below the 9 trials its first bracket "
            "runs at once (eta=3, r_l=max_epochs=9); set parallel_trials to 9 or more",
        ),
        (
            dict(algorithm="tpe", parallel_trials=13, max_trials=12),
            "parallel_trials=13 is more than max_trials=12: Katib refuses more trials at once "
            "than in all",
        ),
    ],
)
def test_a_search_katib_would_refuse_is_refused_in_one_line(values, line):
    with pytest.raises(InputError) as e:
        body(**values)
    assert str(e.value) == line


def mirrored_verdict(search: Search) -> bool:
    """Whether Katib takes `search`: its webhook (parallel <= max trials) and its service."""
    spec = {
        "algorithm": {"algorithmName": search.algorithm, "algorithmSettings": search.settings()},
        "parameters": search.parameters(),
        "maxTrialCount": search.max_trials,
        "parallelTrialCount": search.parallel_trials,
    }
    webhook = search.parallel_trials <= search.max_trials
    return webhook and controller.suggestion_error({"spec": spec}) is None


def test_the_checks_agree_with_katibs_services_over_the_tables_range():
    """Every algorithm over a sweep of the values the table allows: refused here exactly
    when Katib's webhook or the algorithm's service would refuse it."""
    sweep = itertools.product(
        ALGORITHMS, (1, 2, 3, 8, 9, 26, 27, 80, 81, 100), (1, 2, 3, 9, 27, 50), (1, 12, 50, 200)
    )
    for algorithm, max_epochs, parallel, max_trials in sweep:
        search = Search(algorithm, max_epochs, max_trials, parallel)
        assert (search.problem() is None) == mirrored_verdict(search), search


@pytest.mark.parametrize(
    "algorithm, space, line",
    [
        ("grid", [{"name": "learning_rate", "parameterType": "double",
                   "feasibleSpace": {"min": "0.001", "max": "0.05"}}],
         "algorithm grid: learning_rate is a double with no step, and Katib's grid needs a "
         "step for every double parameter"),
        ("cmaes", [{"name": "epochs", "parameterType": "int",
                    "feasibleSpace": {"min": "1", "max": "8"}}],
         "algorithm cmaes: Katib's CMA-ES needs two or more double or int parameters, the "
         "search space has 1"),
        ("hyperband", [{"name": "batch_size", "parameterType": "discrete",
                        "feasibleSpace": {"list": ["64"]}}],
         "algorithm hyperband: its resource_name epochs is not searched"),
    ],
)  # fmt: skip
def test_an_algorithm_that_cannot_search_the_space_stops_the_pipeline_build(
    algorithm, space, line, monkeypatch
):
    """Katib's service refuses these whatever the values; so does the build, in one line."""
    from pipeline.dag import build_tune_pipeline

    assert controller.suggestion_error(
        {"spec": {"algorithm": {"algorithmName": algorithm, "algorithmSettings":
                                Search(algorithm).settings()},
                  "parameters": space, "maxTrialCount": 1, "parallelTrialCount": 27}}
    ) is not None  # fmt: skip
    searched = Search.parameters
    monkeypatch.setattr(
        Search, "parameters", lambda self: space if self.algorithm == algorithm else searched(self)
    )
    assert search_.unusable_algorithms() == [line]
    with pytest.raises(TypeError) as e:
        build_tune_pipeline()
    assert str(e.value) == f"mnist-tune offers an algorithm Katib cannot run: {line}"


def test_the_tuning_pipeline_offers_no_algorithm_katib_cannot_run():
    assert search_.unusable_algorithms() == []


def test_hyperbands_parallel_trials_are_its_services_figure():
    """ceil(eta ** s_max), s_max = int(log(r_l) / log(eta)) in floating point, as Katib
    computes it (log(243) / log(3) is 4.999..., so 243 epochs would need 81 at once)."""
    assert [search_.hyperband_parallel(r, 3) for r in (1, 2, 3, 8, 9, 26, 27, 80, 81, 243)] == [
        1, 1, 3, 3, 9, 9, 27, 27, 81, 81,
    ]  # fmt: skip


# -- mnist-pipeline tune: refused before a run -----------------------------------------------


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--algorithm", "hyperband"], "algorithm hyperband: parallel_trials=2 is below the 3"),
        (["--algorithm", "grid", "--max-trials", "200"], "more than the 144 points of its grid"),
        (["--parallel-trials", "20"], "parallel_trials=20 is more than max_trials=12"),
        (["--max-epochs", "0"], "max_epochs=0 is out of range: must be from 1 to 100"),
        (["--param", "validation_split=0"], "validation_split=0.0: a Katib trial is scored"),
    ],
)
def test_tune_refuses_a_search_katib_would_refuse_before_anything_is_sent(args, phrase):
    from pipeline.cli import main

    result = CliRunner().invoke(main, ["tune", "--dry-run", "--host", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2, result.output
    assert phrase in result.stderr and "Traceback" not in result.output


def test_tune_runs_hyperband_when_its_settings_allow():
    from pipeline.cli import main

    args = ["--algorithm", "hyperband", "--parallel-trials", "3", "-o", "json"]
    result = CliRunner().invoke(main, ["tune", "--dry-run", "--host", "http://127.0.0.1:9", *args])
    assert result.exit_code == 0, result.output
    assert '"algorithm": "hyperband"' in result.stdout
    assert '"validation_split": 0.1' in result.stdout  # the tuning pipeline's default
