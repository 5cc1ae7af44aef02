"""Progress lines on a timer, in human units, with the time left; sizes and durations."""

from __future__ import annotations

import logging

import pytest

from components.common import log as log_module
from components.common.log import Progress
from components.common.units import human_bytes, human_seconds


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(log_module.time, "monotonic", clock)
    return clock


@pytest.fixture
def lines(caplog):
    logger = logging.getLogger("mnist")
    logger.addHandler(caplog.handler)
    yield lambda: [r.getMessage() for r in caplog.records]
    logger.removeHandler(caplog.handler)


def test_a_quick_task_logs_nothing_of_its_own(clock, lines):
    progress = Progress(log_module.get_logger("t"), "upload", 10_000_000, unit="bytes")
    clock.now += 1
    progress.update(10_000_000)
    assert lines() == []


def test_a_slow_task_logs_on_the_timer_with_eta_then_a_last_line(clock, lines):
    progress = Progress(log_module.get_logger("t"), "download x.gz", 9_600_000, unit="bytes")
    for _ in range(4):  # 2.4 MB every 2 s: a line at 6 s (> 5 s), none at 2 or 4 s
        clock.now += 2
        progress.update(2_400_000)
        if progress.done == 7_200_000:
            assert lines() == ["download x.gz: 7.2 MB of 9.6 MB (75%), 1.2 MB/s, about 2.0 s left"]
    assert lines()[-1] == "download x.gz: 9.6 MB in 8.0 s, 1.2 MB/s"


def test_counts_without_a_total(clock, lines):
    progress = Progress(log_module.get_logger("t"), "batch-predict", 0)
    clock.now += 6
    progress.update(600)
    assert lines() == ["batch-predict: 600 so far, 100/s"]


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (1234, "1.2 kB"), (47040016, "47.0 MB"), (2.5e12, "2500.0 GB")],
)
def test_human_bytes(n, text):
    assert human_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [(9.44, "9.4 s"), (125, "2 min 5 s"), (3725, "1 h 2 min")])
def test_human_seconds(s, text):
    assert human_seconds(s) == text
