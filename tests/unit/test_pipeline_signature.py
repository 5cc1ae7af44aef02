"""pipeline/signature.py: a pipeline function that drifts from the parameter table is refused."""

from __future__ import annotations

import pytest

from components.common.parameters import Param
from pipeline.signature import drift, from_table

TABLE = (Param("epochs", int, 10, "Training epochs."), Param("rate", float, 0.5, "A rate."))


def good(epochs: int = 10, rate: float = 0.5): ...


def test_a_matching_signature_gets_the_tables_descriptions():
    func = from_table(TABLE, "Title.")(good)
    assert func.__doc__ == "Title.\n\nArgs:\n    epochs: Training epochs.\n    rate: A rate.\n"


@pytest.mark.parametrize(
    ("func", "problem"),
    [
        (lambda epochs=10: None, "rate: missing from the signature"),
        (lambda epochs=10, rate=0.5, extra=1: None, "extra: not in the parameter table"),
        (lambda epochs=11, rate=0.5: None, "epochs: default 11, the table says 10"),
        (lambda epochs=10.0, rate=0.5: None, "epochs: default 10.0, the table says 10"),
    ],
)
def test_drift_is_named(func, problem):
    func.__annotations__ = {"epochs": int, "rate": float, "extra": int}
    assert problem in drift(func, TABLE)
    with pytest.raises(TypeError, match=problem):
        from_table(TABLE, "Title.")(func)


def test_a_wrong_type_is_named():
    def typed(epochs: float = 10, rate: float = 0.5): ...

    assert drift(typed, TABLE) == ["epochs: typed float, the table says int"]
