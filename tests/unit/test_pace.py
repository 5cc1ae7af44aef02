"""components/train/callbacks.Pace: training's time left, said only once it is known (the
first batches trace and compile the model; an estimate from them ran 7 to 15 times long)."""

from __future__ import annotations

import pytest

from components.train.callbacks import Pace


def test_no_estimate_before_two_points_after_the_warm_up():
    pace = Pace(steps=100)
    assert pace.epoch_left(10) is None and pace.run_left(3) is None
    pace.batch_at(10.0, 5)
    assert pace.epoch_left(5) is None


def test_the_rate_is_measured_after_the_warm_up_not_from_the_epochs_start():
    """Three batches of 10 s (tracing), then 0.1 s each: 95 s are left at batch 50, where the
    rate from the epoch's start (34.7 s / 50 batches) said 659 s."""
    pace = Pace(steps=1000)
    pace.batch_at(30.0, 3)  # warm: the point after the compiled batches
    pace.batch_at(30.0 + 47 * 0.1, 50)
    assert pace.epoch_left(50) == pytest.approx(95.0)


def test_each_new_rate_weighs_half():
    pace = Pace(steps=100)
    pace.batch_at(0.0, 10)
    pace.batch_at(2.0, 20)  # 0.2 s a batch
    pace.batch_at(6.0, 30)  # 0.4 s a batch
    assert pace.batch_seconds == pytest.approx(0.3)
    assert pace.epoch_left(30) == pytest.approx(21.0)


def test_the_first_epochs_compilation_is_not_counted_as_time_to_come():
    pace = Pace(steps=100)
    pace.batch_at(5.0, 3)
    pace.batch_at(7.0, 23)  # 0.1 s a batch, warm
    pace.epoch_done(seconds=40.0, training_seconds=35.0, first=True)  # 5 s of evaluation
    assert pace.epoch_seconds == pytest.approx(15.0)  # 100 x 0.1 s + 5 s
    assert pace.run_left(4) == pytest.approx(60.0)
    pace.epoch_done(seconds=17.0, training_seconds=12.0, first=False)
    assert pace.run_left(3) == pytest.approx(48.0)  # (15 + 17) / 2 a epoch


def test_a_first_epoch_without_a_warm_rate_counts_as_it_was():
    pace = Pace(steps=2)
    pace.epoch_done(seconds=9.0, training_seconds=8.0, first=True)
    assert pace.run_left(2) == pytest.approx(18.0)
