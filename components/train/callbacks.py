"""The Keras callbacks of a training run: each epoch's line with its ETA (Pace), the checkpoint of
each epoch (Keras' BackupAndRestore, timed), and the publishing of that checkpoint to the store
(components/train/checkpoints.py) so a retried pod resumes after it."""

from __future__ import annotations

import time

from components.common.log import get_logger
from components.common.units import human_seconds

log = get_logger("train")
EPOCH_PROGRESS_SECONDS = 10.0  # inside a long epoch, a progress line this often


def timed_backup(checkpoints):
    """Keras' BackupAndRestore, timing each save (the resume overhead, logged by _publisher)."""
    import keras

    class TimedBackup(keras.callbacks.BackupAndRestore):
        seconds = 0.0

        def on_epoch_end(self, epoch, logs=None):
            start = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            self.seconds = time.perf_counter() - start

    return TimedBackup(str(checkpoints.local), save_freq="epoch", delete_checkpoint=False)


def publisher(checkpoints, logger, backup):
    """After each epoch (and after BackupAndRestore saved it): copy it to the store, and log
    what the checkpoint cost against the epoch."""
    import keras

    class Publish(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            start = time.perf_counter()
            checkpoints.publish(epoch + 1, logger.history)
            copied = time.perf_counter() - start
            log.info(
                "checkpoint of epoch %d: saved in %.2f s, copied to the store in %.2f s "
                "(the epoch's training took %.1f s)",
                epoch + 1,
                backup.seconds,
                copied,
                logger.train_seconds,
            )

    return Publish()


def epoch_setter(variable):
    """Set the data's epoch (model.epoch_variable) as each epoch begins, a resumed one too:
    what model.dataset reads to choose that epoch's order and shifts."""
    import keras

    class EpochSetter(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            variable.assign(epoch)

    return EpochSetter()


class Pace:
    """How long the rest of training will take, said only once it is known.

    The first batches of a run trace and compile the model, so a rate measured from the start
    of the first epoch ran 7 to 15 times long. Here the rate is measured between progress
    points after the warm-up (`batch_at`), and each new measurement weighs half (a moving
    average): no estimate until two points after the warm-up are known. An epoch's whole time
    (training and evaluation) is averaged the same way for the time the run has left; the first
    epoch's, which holds the compilation, is replaced by its warm rate times its batches when
    that is known."""

    def __init__(self, steps: int):
        self.steps = steps
        self._point: tuple[float, int] | None = None  # (time, batch) of the last progress point
        self.batch_seconds: float | None = None
        self.epoch_seconds: float | None = None

    def batch_at(self, now: float, done: int) -> None:
        """A progress point: `done` batches of the current epoch finished at `now`."""
        if self._point is not None and done > self._point[1]:
            rate = (now - self._point[0]) / (done - self._point[1])
            self.batch_seconds = _averaged(self.batch_seconds, rate)
        self._point = (now, done)

    def epoch_left(self, done: int) -> float | None:
        return None if self.batch_seconds is None else self.batch_seconds * (self.steps - done)

    def epoch_done(self, seconds: float, training_seconds: float, first: bool) -> None:
        """An epoch took `seconds` in all, `training_seconds` of them training."""
        if first and self.batch_seconds is not None:  # its compilation is not a cost to come
            seconds += self.batch_seconds * self.steps - training_seconds
        self.epoch_seconds = _averaged(self.epoch_seconds, seconds)
        self._point = None  # the next epoch's points start again after its first batches

    def run_left(self, epochs_left: int) -> float | None:
        return None if self.epoch_seconds is None else self.epoch_seconds * epochs_left


def _averaged(average: float | None, new: float) -> float:
    """A moving average in which each new measurement weighs half (the first is the average)."""
    return new if average is None else (average + new) / 2


def epoch_logger(test_ds, on_epoch, epochs: int, steps: int, samples: int = 0, feed: float = 0.0):
    """A Keras callback that evaluates and logs after each epoch, with the time left, and logs
    progress inside an epoch every EPOCH_PROGRESS_SECONDS (progress in the KFP logs). Each
    epoch's line gives the training rate in samples per second and, against `feed` (what the
    input pipeline alone delivers), the most of its time the model could have waited on input.
    `test_ds` None: no test set is evaluated, and the rows have no test columns."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history: list[dict] = []
            self._start = self._last = time.monotonic()
            self.pace = Pace(steps)
            self._epochs_here = 0  # epochs trained in this process (a resumed run starts later)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._epoch_start = epoch + 1, time.monotonic()
            self._warm = False

        def on_train_batch_end(self, batch, logs=None):
            done, now = batch + 1, time.monotonic()
            if not self._warm and done >= max(3, steps // 50):  # past tracing and compiling
                self._warm = True
                self.pace.batch_at(now, done)
            if now - self._last < EPOCH_PROGRESS_SECONDS or not self._warm:
                return
            self._last = now
            self.pace.batch_at(now, done)
            left = self.pace.epoch_left(done)
            log.info(
                "epoch %d/%d: batch %d/%d (%.0f%%)%s",
                self._epoch,
                epochs,
                done,
                steps,
                100.0 * done / steps,
                "" if left is None else f", about {human_seconds(left)} left in this epoch",
            )

        train_seconds = 0.0

        def on_epoch_end(self, epoch, logs=None):
            self.train_seconds = time.monotonic() - self._epoch_start
            logs = logs or {}
            row = {
                "epoch": epoch + 1,
                "train_loss": float(logs.get("loss", float("nan"))),
                **validation(logs),
            }
            if test_ds is not None:
                loss, accuracy = self.model.evaluate(test_ds, verbose=0)
                row["test_accuracy"], row["test_loss"] = float(accuracy), float(loss)
            row["seconds"] = time.monotonic() - self._start
            self.history.append(row)
            self._last = time.monotonic()
            whole = self._last - self._epoch_start  # training and evaluation
            self.pace.epoch_done(whole, self.train_seconds, first=self._epochs_here == 0)
            self._epochs_here += 1
            left = self.pace.run_left(epochs - row["epoch"])
            rate = samples / max(self.train_seconds, 1e-9)
            row["samples_per_second"] = rate
            speed = f", {rate:,.0f} samples/s" if samples else ""
            if samples and feed:
                speed += f" (input wait at most {min(100.0, 100 * rate / feed):.0f}%)"
            log.info(
                "epoch %d/%d: train loss %.4f, %s%.1f s%s%s",
                row["epoch"],
                epochs,
                row["train_loss"],
                scores_text(row),
                row["seconds"],
                speed,
                f", about {human_seconds(left)} left" if left and row["epoch"] < epochs else "",
            )
            if on_epoch:
                on_epoch(row)

    return EpochLogger()


def validation(logs: dict) -> dict:
    """The row's validation_accuracy and validation_loss, from Keras' val_ logs (none when
    nothing was held out)."""
    if "val_accuracy" not in logs:
        return {}
    return {
        "validation_accuracy": float(logs["val_accuracy"]),
        "validation_loss": float(logs["val_loss"]),
    }


def validation_text(row: dict) -> str:
    """`validation accuracy 0.9812, ` for an epoch's line, when the row has one."""
    if "validation_accuracy" not in row:
        return ""
    return f"validation accuracy {row['validation_accuracy']:.4f}, "


def scores_text(row: dict) -> str:
    """`validation accuracy 0.9812, test accuracy 0.9905, ` for an epoch's line: the scores
    the row has (a trial's has no test accuracy)."""
    if "test_accuracy" not in row:
        return validation_text(row)
    return f"{validation_text(row)}test accuracy {row['test_accuracy']:.4f}, "
