"""Training survives preemption: a training process killed (SIGKILL) in epoch 3 of 4 resumes,
when run again with the same run id, after epoch 2 from the checkpoint in the store, and ends
within noise of an uninterrupted run. Checkpoints are written so that a half-copied epoch is
never taken for a complete one, and are removed by export and by `clean`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.store import LocalStore
from components.train.checkpoint_records import LATEST
from components.train.checkpoints import StoreCheckpoints, run_prefix
from tests.conftest import REPO

SCRIPT = """
import sys, tempfile
from pathlib import Path
from components.store import open_store
from components.train.checkpoints import StoreCheckpoints, run_prefix
from components.train.trainer import TrainConfig, train_from_store
store = open_store(sys.argv[1])
work = Path(tempfile.mkdtemp())
checkpoints = StoreCheckpoints(store, run_prefix(sys.argv[2]), work / "checkpoint")
cfg = TrainConfig(epochs=4, batch_size=16, learning_rate=0.005, train_limit=1200)
result = train_from_store(store, "datasets/mnist", cfg, work / "model", work, None, checkpoints)
print("ACCURACY", result.test_accuracy, flush=True)
"""


@pytest.fixture(scope="module")
def store(small_mnist_dir, tmp_path_factory) -> Path:
    from components.unpack_upload.unpack import unpack_and_upload

    root = tmp_path_factory.mktemp("store")
    unpack_and_upload(small_mnist_dir, LocalStore(root), canonical=False)
    return root


def start(store: Path, run_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(store), run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)},
    )


def finish(process: subprocess.Popen) -> tuple[str, float]:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    (line,) = [x for x in output.splitlines() if x.startswith("ACCURACY")]
    return output, float(line.split()[1])


def test_a_killed_training_resumes_after_its_last_epoch(store):
    latest = store / run_prefix("run-killed") / LATEST
    process = start(store, "run-killed")
    deadline = time.monotonic() + 300
    while not (latest.exists() and json.loads(latest.read_text())["epoch"] == 2):
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "epoch 2 never finished"
        time.sleep(0.01)
    # epoch 3 has just begun (75 steps of it are to come): kill it there, as a preempted
    # node's pod dies, with no cleanup at all
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert json.loads(latest.read_text())["epoch"] == 2

    resumed, accuracy = finish(start(store, "run-killed"))
    assert "resuming after epoch 2 from the checkpoint at" in resumed
    epochs = [line.split("epoch ")[1].split(":")[0] for line in resumed.splitlines()
              if ": epoch " in line and "batch" not in line]  # fmt: skip
    assert epochs == ["3/4", "4/4"], resumed[-3000:]

    _, uninterrupted = finish(start(store, "run-whole"))
    assert abs(accuracy - uninterrupted) < 0.05, (accuracy, uninterrupted)


def test_a_half_copied_epoch_is_never_taken_for_complete(tmp_path):
    store = LocalStore(tmp_path / "store")
    local = tmp_path / "local"
    checkpoints = StoreCheckpoints(store, run_prefix("r"), local)
    (local / "latest.weights.h5").write_bytes(b"epoch 1 weights")
    (local / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    checkpoints.publish(1, [{"epoch": 1}])
    (local / "latest.weights.h5").write_bytes(b"epoch 2 weights")
    (local / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')

    class Interrupted(Exception):
        pass

    real_put = store.put_file

    def put_file(key, path, **kwargs):
        if "epoch-0002" in key and key.endswith("history.json"):
            raise Interrupted  # the pod dies while copying epoch 2
        return real_put(key, path, **kwargs)

    store.put_file = put_file
    with pytest.raises(Interrupted):
        checkpoints.publish(2, [{"epoch": 1}, {"epoch": 2}])
    store.put_file = real_put
    fresh = StoreCheckpoints(store, run_prefix("r"), tmp_path / "fresh")
    assert fresh.restore() == (1, [{"epoch": 1}])
    assert (tmp_path / "fresh" / "latest.weights.h5").read_bytes() == b"epoch 1 weights"


def test_export_and_clean_remove_checkpoints(tmp_path):
    from components.store import delete_all, open_store
    from pipeline.cleanup import plan

    root = tmp_path / "store"
    store = LocalStore(root)
    for run in ("exported", "abandoned"):
        checkpoints = StoreCheckpoints(store, run_prefix(run), tmp_path / run)
        (tmp_path / run / "latest.weights.h5").write_bytes(b"w")
        checkpoints.publish(1, [])
    delete_all(open_store(str(root / run_prefix("exported"))))
    assert not list(store.list(run_prefix("exported")))
    todo = plan(store, include_images=False)
    assert {info.key for info in todo.delete} == {
        info.key for info in store.list(run_prefix("abandoned"))
    }


@pytest.mark.parametrize("bad", ["", "..", "/"])
def test_a_run_id_that_cannot_name_a_folder_is_refused(bad):
    with pytest.raises(ValueError, match="cannot name a checkpoint folder"):
        run_prefix(bad)
