"""What `run --local` shows (pipeline/console.py), fed kfp.local-like output."""

from __future__ import annotations

import io

from pipeline.console import StepConsole

KFP_LINES = [
    "\x1b[0m14:42:45.001 - INFO - Executing task \x1b[96m'train'\x1b[0m",
    "14:42:45.002 - INFO - Streamed logs:",
    "    Got executor_input:",
    '    {"inputs": {"parameterValues": {"epochs": 2}}}',
    "I0000 00:00:1795876451.324900    5326 port.cc:153] oneDNN custom operations are on.",
    "    2026-11-28 14:42:46,123 INFO mnist.train: epoch 1/2: train loss 0.27, test accuracy 0.98",
    "    2026-11-28 14:42:47,123 WARNING mnist.train: a warning of ours",
    "14:42:48.500 - INFO - Task \x1b[96m'train'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m",
    "14:42:48.600 - INFO - Executing task \x1b[96m'export'\x1b[0m",
    "14:42:49.600 - ERROR - Task \x1b[96m'export'\x1b[0m finished with status "
    "\x1b[91mFAILURE\x1b[0m",
]


def feed(console: StepConsole) -> None:
    for line in KFP_LINES:
        console.write(line + "\n")
    console.close()


def test_quiet_shows_our_lines_and_the_steps_and_logs_everything(tmp_path):
    out = io.StringIO()
    feed(StepConsole(out, tmp_path, headline=lambda step: "test accuracy 0.9800"))
    shown = out.getvalue().splitlines()
    assert shown[0] == "[4/6] train …"
    assert shown[1] == "      14:42:46  epoch 1/2: train loss 0.27, test accuracy 0.98"
    assert shown[2] == "      14:42:47  WARNING: a warning of ours"
    assert shown[3].startswith("[4/6] train done in ") and shown[3].endswith(
        ": test accuracy 0.9800"
    )
    assert shown[4] == "[5/6] export …"
    assert shown[5].startswith("[5/6] export failed after ")
    assert len(shown) == 6 and "\x1b[" not in out.getvalue()
    train_log = (tmp_path / "train.log").read_text()
    assert "Got executor_input" in train_log and "oneDNN" in train_log and "\x1b[" not in train_log
    assert "Executing task 'export'" in (tmp_path / "export.log").read_text()


def test_verbose_streams_everything_without_colour_when_not_a_terminal(tmp_path):
    out = io.StringIO()
    feed(StepConsole(out, tmp_path, verbose=True))
    assert out.getvalue().count("\n") == len(KFP_LINES)
    assert "Got executor_input" in out.getvalue() and "\x1b[" not in out.getvalue()


def test_hidden_lines_stay_in_the_log(tmp_path):
    out = io.StringIO()
    console = StepConsole(out, tmp_path, hide=lambda step, message: "epoch" in message)
    feed(console)
    assert "epoch 1/2" not in out.getvalue()
    assert "epoch 1/2" in (tmp_path / "train.log").read_text()
