"""components/common/report.py's pieces a person reads: round tick values on the charts, and
a table of names and values without an empty header row."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from components.common import report

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(finite, finite)
def test_ticks_cover_the_values_with_at_most_six_round_steps(a, b):
    low, high = min(a, b), max(a, b)
    ticks = report.nice_ticks(low, high)
    assert 2 <= len(ticks) <= 6
    step = ticks[1] - ticks[0]
    slack = 1e-6 * step  # float noise: a value a millionth of a step past a tick is on it
    assert ticks[0] <= low + slack and ticks[-1] >= high - slack
    steps = {round(t2 - t1, 12) for t1, t2 in zip(ticks, ticks[1:], strict=False)}
    assert all(math.isclose(s, step, rel_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5))


def test_the_losses_of_a_demo_run_get_round_ticks():
    assert report.nice_ticks(0.0232, 0.3449) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert report.nice_ticks(0.9876, 0.9923) == [0.986, 0.988, 0.99, 0.992, 0.994]
    chart = report.line_chart("Loss", [1, 2], {"train loss": [0.3449, 0.0914]}, "loss")
    labels = re.findall(r'text-anchor="end">([^<]+)</text>', chart)
    assert labels == ["0", "0.1", "0.2", "0.3", "0.4"]


def test_a_table_of_names_and_values_has_no_header_row():
    html = report.table(None, [("model_version", 1), ("run_id", "r1")])
    assert "<th>" not in html and html.count("<tr>") == 2
    assert report.table(["file", "why"], [("a", "b")]).count("<th>") == 2
