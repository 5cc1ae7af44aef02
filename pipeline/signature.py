"""The pipelines' parameters are the table's: the check that keeps `@dsl.pipeline` functions honest.

pipeline/dag.py writes each pipeline as a plain function with named parameters, which is what a
KFP user expects to read. `from_table` ties it to components/common/parameters.py: each
parameter's name, type and default must be the table's (a drift fails when the pipeline is
built, and so in every compile test), and the docstring, whose `Args:` kfp turns into the
descriptions the Kubeflow UI shows, is written from the table's help.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

from components.common.parameters import PARAMETERS, TUNE_DEFAULTS, TUNE_PARAMETERS, Param

TUNED = ("epochs", "batch_size", "learning_rate")  # what the tuning pipeline's search sets
MAIN: tuple[Param, ...] = PARAMETERS
# The main pipeline's parameters but the searched ones, with the tuning pipeline's own defaults
# (TUNE_DEFAULTS), then the search's.
TUNING: tuple[Param, ...] = (
    tuple(
        dataclasses.replace(p, default=TUNE_DEFAULTS.get(p.name, p.default))
        for p in PARAMETERS
        if p.name not in TUNED
    )
    + TUNE_PARAMETERS
)


def drift(func: Callable, params: tuple[Param, ...]) -> list[str]:
    """How `func`'s signature differs from `params` (empty when it does not)."""
    got = inspect.signature(func).parameters
    problems = [
        f"{name}: not in the parameter table" for name in got.keys() - {p.name for p in params}
    ]
    for param in params:
        arg = got.get(param.name)
        if arg is None:
            problems.append(f"{param.name}: missing from the signature")
        elif arg.annotation not in (param.type, param.type.__name__):
            problems.append(
                f"{param.name}: typed {arg.annotation}, the table says {param.type.__name__}"
            )
        elif arg.default != param.default or type(arg.default) is not type(param.default):
            problems.append(
                f"{param.name}: default {arg.default!r}, the table says {param.default!r}"
            )
    return problems


def from_table(params: tuple[Param, ...], title: str) -> Callable[[Callable], Callable]:
    """Check a pipeline function against `params` and give it the table's descriptions."""

    def apply(func: Callable) -> Callable:
        problems = drift(func, params)
        if problems:
            raise TypeError(
                f"{func.__name__} drifted from the parameter table: {'; '.join(problems)}"
            )
        func.__doc__ = f"{title}\n\nArgs:\n" + "".join(
            f"    {p.name}: {p.description}\n" for p in params
        )
        return func

    return apply
