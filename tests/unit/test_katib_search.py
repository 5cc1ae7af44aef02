"""How many points Katib's grid has (components/tune/search.py grid_points), the figure the
grid's max_trials check stands on: Katib's grid takes exactly that many trials and refuses one
more, over ints stepped or not, doubles stepped by values that do not divide their range
evenly in floating point (0 to 1 by 0.1 is 11 values, 0.1 to 0.3 by 0.1 is 3), and lists
(tests/katib_controller.py mirrors the service's count), and a grid search with as many
trials as points taken, one more refused. And what an algorithm can search at all (grid: a
double only with a step), refused in one line."""

from __future__ import annotations

import itertools

import pytest

from components.common.errors import InputError
from components.tune.search import Search, grid_points, unusable
from tests import katib_controller as controller

BOUNDS = ("0", "0.001", "0.01", "0.1", "0.2", "0.3", "0.5", "0.7", "1", "1.5", "3")
STEPS = ("0.001", "0.005", "0.01", "0.05", "0.1", "0.2", "0.3", "0.5", "1")


def double(low: str, high: str, step: str) -> dict:
    return {"name": "learning_rate", "parameterType": "double",
            "feasibleSpace": {"min": low, "max": high, "step": step}}  # fmt: skip


def integer(low: str, high: str, step: str | None = None) -> dict:
    space = {"min": low, "max": high, **({"step": step} if step else {})}
    return {"name": "epochs", "parameterType": "int", "feasibleSpace": space}


def listed(*values: str) -> dict:
    return {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": [*values]}}


def katib_takes_exactly(parameters: list[dict], points: int) -> bool:
    """Whether Katib's grid takes `points` trials over `parameters` and refuses one more."""
    return (
        controller._grid_error(parameters, points) is None
        and controller._grid_error(parameters, points + 1) is not None
    )


def test_a_stepped_doubles_points_are_katibs_over_a_sweep():
    spaces = [
        double(low, high, step)
        for low, high, step in itertools.product(BOUNDS, BOUNDS, STEPS)
        if float(low) <= float(high)
    ]
    wrong = [
        (s["feasibleSpace"], grid_points([s]))
        for s in spaces
        if not katib_takes_exactly([s], grid_points([s]))
    ]
    assert wrong == []


@pytest.mark.parametrize(
    "space, points",
    [
        (double("0", "1", "0.1"), 11),  # 1 // 0.1 is 9.0 in floating point
        (double("0.1", "0.3", "0.1"), 3),  # (0.3 - 0.1) // 0.1 is 1.0
        (double("0.001", "0.05", "0.001"), 50),
        (double("0", "0.25", "0.1"), 3),  # 0, 0.1, 0.2: the step does not reach 0.25
        (double("0.5", "0.5", "0.1"), 1),
        (integer("1", "8"), 8),
        (integer("1", "8", "2"), 4),  # 1, 3, 5, 7
        (integer("1", "9", "2"), 5),
        (integer("3", "3"), 1),
        (listed("64", "128", "256"), 3),
    ],
)
def test_each_kind_of_parameter_counts_as_katib_lists_it(space, points):
    assert grid_points([space]) == points
    assert katib_takes_exactly([space], points)


def test_the_points_of_several_parameters_multiply_in_any_order():
    kinds = [double("0", "1", "0.1"), integer("1", "9", "2"), listed("64", "128", "256")]
    for space in itertools.permutations(kinds):
        assert grid_points(list(space)) == 11 * 5 * 3, space
        assert katib_takes_exactly(list(space), 11 * 5 * 3)


def test_grid_can_search_a_double_with_a_step():
    """Katib's grid refuses a double without a step, and takes one with a step."""
    space = [double("0.01", "0.05", "0.01"), integer("1", "8"), listed("64", "128")]
    assert unusable("grid", space) is None
    spec = {"algorithm": {"algorithmName": "grid", "algorithmSettings": []},
            "parameters": space, "maxTrialCount": 80, "parallelTrialCount": 2}  # fmt: skip
    assert controller.suggestion_error({"spec": spec}) is None
    del space[0]["feasibleSpace"]["step"]
    assert unusable("grid", space) == (
        "algorithm grid: learning_rate is a double with no step, and Katib's grid needs a step "
        "for every double parameter"
    )


@pytest.mark.parametrize("max_epochs", [1, 2, 8])
def test_a_grid_search_may_have_as_many_trials_as_points_and_not_one_more(max_epochs):
    points = 6 * 3 * max_epochs  # learning rates x batch sizes x epochs
    assert grid_points(Search("grid", max_epochs).parameters()) == points
    fits = Search("grid", max_epochs, max_trials=points, parallel_trials=1)
    assert fits.problem() is None and fits.check() is fits
    assert controller._grid_error(fits.parameters(), points) is None
    over = Search("grid", max_epochs, max_trials=points + 1, parallel_trials=1)
    assert over.problem() == (
        f"algorithm grid: max_trials={points + 1} is more than the {points} points of its grid "
        f"(6 learning rates x 3 batch sizes x {max_epochs} epochs); lower max_trials or raise "
        "max_epochs"
    )


@pytest.mark.parametrize(
    "algorithm, space, line",
    [
        ("grid", [double("0.001", "0.05", "0.001"), integer("1", "8"), listed("64")], None),
        ("grid", [{**double("0.001", "0.05", "0.001"), "feasibleSpace": {"min": "0.001",
                                                                        "max": "0.05"}}],
         "algorithm grid: learning_rate is a double with no step, and Katib's grid needs a step "
         "for every double parameter"),
        ("cmaes", [integer("1", "8"), listed("64")],
         "algorithm cmaes: Katib's CMA-ES needs two or more double or int parameters, the "
         "search space has 1"),
        ("hyperband", [listed("64")],
         "algorithm hyperband: its resource_name epochs is not searched"),
    ],
)  # fmt: skip
def test_a_search_over_a_space_its_algorithm_cannot_search_is_refused(
    algorithm, space, line, monkeypatch
):
    """The pipeline build refuses such an algorithm (tests/unit/test_katib_algorithms.py);
    the Experiment is refused too, in the same line, should one be built anyway."""
    monkeypatch.setattr(Search, "parameters", lambda self: space)
    search = Search(algorithm, max_epochs=8, max_trials=12, parallel_trials=3)
    assert search.problem() == line
    if line:
        with pytest.raises(InputError) as e:
            search.check()
        assert str(e.value) == line
