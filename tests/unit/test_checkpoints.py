"""Checkpoints carry their own integrity: each epoch's folder has a manifest (path, size, sha256
of every file), LATEST.json is parsed as outside input, a broken latest checkpoint falls back to
the previous one (or to a fresh start) in one line, and "resuming" is said only once the state
checked out and Keras loaded it. A tiny real Keras model writes real BackupAndRestore files."""

from __future__ import annotations

import contextlib
import json
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.store import LocalStore, StoreError, sha256_file
from components.train.checkpoint_records import (
    LATEST,
    MANIFEST,
    WEIGHTS,
    CheckpointError,
    Pointer,
    parse_latest,
    parse_manifest,
)
from components.train.checkpoints import StoreCheckpoints, keras_loader, run_prefix
from tests.fuzz import fuzz

PREFIX = run_prefix("r")
STEPS = 4  # 32 samples in batches of 8


def tiny_model(seed: int, units: int = 2):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(units)])
    model.compile(optimizer="adam", loss="mse")
    return model


def state(model) -> list[np.ndarray]:
    """The model's weights and its optimizer's variables (the step count among them)."""
    return [np.array(v) for v in [*model.weights, *model.optimizer.variables]]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A store where a 3-epoch run published each epoch, and the state after each epoch."""
    import keras

    root = tmp_path_factory.mktemp("published")
    # a folder of its own each time: pytest makes a module's fixture again when the tests of
    # the module do not run together (mutmut's order), and Keras would resume from the last one
    local = tmp_path_factory.mktemp("published-local")
    checkpoints = StoreCheckpoints(LocalStore(root), PREFIX, local)
    model, snapshots, history = tiny_model(seed=1), {}, []

    class Publish(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.append({"epoch": epoch + 1, "seconds": 0.1 * (epoch + 1)})
            checkpoints.publish(epoch + 1, history)
            snapshots[epoch + 1] = state(self.model)

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4)), rng.random((32, 2))
    backup = keras.callbacks.BackupAndRestore(str(checkpoints.local), delete_checkpoint=False)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[backup, Publish()])
    return root, snapshots


@pytest.fixture
def store(published, tmp_path) -> Path:
    """This test's copy of the published store: epoch-0002 and epoch-0003 (rotation)."""
    root = tmp_path / "store"
    shutil.copytree(published[0], root)
    return root


class Recording:
    """A store that records every key it is asked about."""

    def __init__(self, store):
        self.store, self.keys = store, []

    def uri(self, key: str = "") -> str:
        return self.store.uri(key)

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def call(key="", *args, **kwargs):
            self.keys.append(key)
            return method(key, *args, **kwargs)

        return call

    def outside(self, prefix: str) -> list[str]:
        return [k for k in self.keys if not (posixpath.normpath(k) + "/").startswith(prefix + "/")]


def restore(root: Path, tmp_path: Path, seed: int = 7, units: int = 2):
    """Restore into a new model as a retried pod does: (epoch, history, model, initial state,
    the recording store, the local folder)."""
    model = tiny_model(seed, units)
    load = keras_loader(model)
    initial = state(model)
    store = Recording(LocalStore(root))
    local = tmp_path / "local"
    epoch, history = StoreCheckpoints(store, PREFIX, local).restore(load)
    assert not store.outside(PREFIX), store.outside(PREFIX)
    return epoch, history, model, initial, store, local


def assert_state(model, expected) -> None:
    actual = state(model)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def epoch_dir(root: Path, epoch: int) -> Path:
    return root / PREFIX / f"epoch-{epoch:04d}"


def reseal(folder: Path) -> None:
    """Write the folder's manifest over what it holds now (damage done before the manifest)."""
    files = [
        {"path": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.name != MANIFEST
    ]
    epoch = int(folder.name[6:])
    (folder / MANIFEST).write_text(json.dumps({"epoch": epoch, "files": files}))


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def fell_back(lines, why: str, to: int) -> None:
    """One line names the broken epoch and why and the one resumed from; none claims more."""
    (line,) = [x for x in lines() if "resuming" in x or "fresh" in x]
    assert f"checkpoint epoch-0003 is broken ({why})" in line, line
    assert f"resuming after epoch {to} from the checkpoint at " in line, line
    assert line.endswith(f"epoch-{to:04d} instead"), line


# -- what a good checkpoint gives back ------------------------------------------------------


def test_a_good_checkpoint_resumes_with_its_weights_and_optimizer_step(
    published, store, tmp_path, lines
):
    epoch, history, model, _, _, local = restore(store, tmp_path)
    assert (epoch, [row["epoch"] for row in history]) == (3, [1, 2, 3])
    assert_state(model, published[1][3])
    assert int(model.optimizer.iterations) == 3 * STEPS
    assert json.loads((local / "training_metadata.json").read_text())["epoch"] == 3
    assert lines() == [f"resuming after epoch 3 from the checkpoint at {epoch_dir(store, 3)}"]


def test_each_published_folder_has_a_manifest_of_its_files(store):
    folder = epoch_dir(store, 3)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["epoch"] == 3
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {p.name for p in folder.iterdir()} - {MANIFEST}
    assert {WEIGHTS, "training_metadata.json", "history.json"} <= set(listed)
    for name, entry in listed.items():
        assert entry["size"] == (folder / name).stat().st_size
        assert entry["sha256"] == sha256_file(folder / name)
    assert json.loads((store / PREFIX / LATEST).read_text()) == {"epoch": 3, "folder": "epoch-0003"}


# -- defect 5: a missing or corrupt weights file --------------------------------------------


def test_missing_weights_falls_back_to_the_previous_epoch(published, store, tmp_path, lines):
    (epoch_dir(store, 3) / WEIGHTS).unlink()
    epoch, history, model, _, _, local = restore(store, tmp_path)
    assert (epoch, len(history)) == (2, 2)
    assert_state(model, published[1][2])
    assert json.loads((local / "training_metadata.json").read_text())["epoch"] == 2
    fell_back(lines, f"{WEIGHTS}: missing", to=2)


def test_weights_never_listed_are_missing_too(store, tmp_path, lines):
    (epoch_dir(store, 3) / WEIGHTS).unlink()
    reseal(epoch_dir(store, 3))
    assert restore(store, tmp_path)[0] == 2
    fell_back(lines, f"{WEIGHTS}: missing", to=2)


def test_corrupt_weights_fall_back_without_a_traceback(published, store, tmp_path, lines):
    flip_bytes(epoch_dir(store, 3) / WEIGHTS)
    epoch, _, model, *_ = restore(store, tmp_path)
    assert epoch == 2
    assert_state(model, published[1][2])
    fell_back(lines, f"{WEIGHTS}: sha256 mismatch", to=2)


def test_a_truncated_weights_file_is_caught_by_its_size(store, tmp_path, lines):
    weights = epoch_dir(store, 3) / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:100])
    assert restore(store, tmp_path)[0] == 2
    (line,) = lines()
    assert f"({WEIGHTS}: 100 bytes, not " in line


def test_no_good_checkpoint_starts_fresh_from_the_models_own_state(store, tmp_path, lines):
    (epoch_dir(store, 3) / WEIGHTS).unlink()
    flip_bytes(epoch_dir(store, 2) / WEIGHTS)
    epoch, history, model, initial, _, local = restore(store, tmp_path)
    assert (epoch, history) == (0, [])
    assert_state(model, initial)
    assert not list(local.iterdir())  # nothing half-copied for BackupAndRestore to pick up
    assert lines() == [
        f"checkpoint epoch-0003 is broken ({WEIGHTS}: missing); "
        f"checkpoint epoch-0002 is broken ({WEIGHTS}: sha256 mismatch); starting fresh"
    ]


@pytest.mark.parametrize("damage", ["garbage", "another model's weights"])
def test_weights_keras_cannot_load_are_broken_even_with_a_good_manifest(
    published, store, tmp_path, lines, damage
):
    """Damage done before the manifest was written: every digest matches, Keras still fails."""
    for epoch in (3, 2):
        weights = epoch_dir(store, epoch) / WEIGHTS
        if damage == "garbage":
            weights.write_bytes(b"not an HDF5 file" * 64)
        else:
            other = tiny_model(seed=5, units=5)
            other.optimizer.build(other.trainable_variables)
            other.save_weights(str(weights))
        reseal(epoch_dir(store, epoch))
        if epoch == 3:
            assert restore(store, tmp_path / "3")[0] == 2
            assert "(Keras cannot load it: " in lines()[-1]
    epoch, _, model, initial, _, local = restore(store, tmp_path / "2")
    assert epoch == 0
    # the first layer loaded before the second failed: the fresh start must not keep it
    assert_state(model, initial)
    assert not list(local.iterdir())
    assert lines()[-1].endswith("; starting fresh")
    assert lines()[-1].count("(Keras cannot load it: ") == 2


def test_keras_metadata_naming_another_epoch_is_broken(store, tmp_path, lines):
    folder = epoch_dir(store, 3)
    (folder / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    reseal(folder)
    assert restore(store, tmp_path)[0] == 2
    fell_back(lines, "training_metadata.json: epoch 1, not 3", to=2)


@pytest.mark.parametrize(
    "history,why",
    [
        (b"{not json", "history.json: not valid JSON"),
        (b'{"epoch": 1}', "history.json: not a list of objects"),
        (b"[1, 2, 3]", "history.json: not a list of objects"),
        (b'[{"epoch": 1}]', "history.json: 1 epochs, not 3"),
    ],
)
def test_a_bad_history_is_broken(store, tmp_path, lines, history, why):
    (epoch_dir(store, 3) / "history.json").write_bytes(history)
    reseal(epoch_dir(store, 3))
    assert restore(store, tmp_path)[0] == 2
    fell_back(lines, why, to=2)


@pytest.mark.parametrize(
    "manifest,why",
    [
        (None, "no MANIFEST.json"),
        (b"\xff\xfe", "MANIFEST.json: not valid JSON (JSONDecodeError)"),
        (b"[]", "MANIFEST.json: holds a JSON list, not an object"),
        (b'{"epoch": 3, "files": {}}', "MANIFEST.json: field 'files' is a dict"),
        (b'{"epoch": 2, "files": []}', "MANIFEST.json: epoch 2, not 3"),
        (
            b'{"epoch": 3, "files": [{"path": "../../other/x", "size": 1, "sha256": "%s"}]}'
            % (b"0" * 64),
            "MANIFEST.json: path '../../other/x' is not a plain relative path",
        ),
        (
            json.dumps(
                {
                    "epoch": 3,
                    "files": [
                        {"path": path, "size": 1, "sha256": "0" * 64}
                        for path in ("history.json", "history.json/x")
                    ],
                }
            ).encode(),
            "MANIFEST.json: history.json/x is inside a file it lists",
        ),
    ],
)
def test_a_bad_manifest_is_broken_and_never_leads_out(store, tmp_path, lines, manifest, why):
    path = epoch_dir(store, 3) / MANIFEST
    path.unlink()
    if manifest is not None:
        path.write_bytes(manifest)
    assert restore(store, tmp_path)[0] == 2  # restore() asserts no key outside the run
    fell_back(lines, why, to=2)


# -- defect 7: LATEST.json is outside input ---------------------------------------------------


@pytest.mark.parametrize(
    "latest,why",
    [
        (b"{not json", "not valid JSON (JSONDecodeError)"),
        (b'[3, "epoch-0003"]', "holds a JSON list, not an object"),
        (b'{"epoch": 3}', "has no 'folder' field"),
        (b'{"folder": "epoch-0003"}', "has no 'epoch' field"),
        (b'{"epoch": 3, "folder": "../.."}', "folder '../..' is not epoch-NNNN"),
        (
            b'{"epoch": 3, "folder": "epoch-0003/../../x"}',
            "folder 'epoch-0003/../../x' is not epoch-NNNN",
        ),
        (b'{"epoch": "3", "folder": "epoch-0003"}', "field 'epoch' is a str"),
        (b'{"epoch": true, "folder": "epoch-0001"}', "field 'epoch' is a bool"),
        (b'{"epoch": 0, "folder": "epoch-0000"}', "epoch 0 is not >= 1"),
        (b'{"epoch": 2, "folder": "epoch-0003"}', "epoch 2 disagrees with folder epoch-0003"),
        (b'{"epoch": 3, "folder": "epoch-0003", "x": 1}', "unexpected field 'x'"),
        (b" " * 5000, "larger than 4096 bytes"),
    ],
)
def test_a_bad_latest_json_is_one_line_and_the_folders_are_scanned(
    published, store, tmp_path, lines, latest, why
):
    (store / PREFIX / LATEST).write_bytes(latest)
    epoch, _, model, *_ = restore(store, tmp_path)  # asserts no key outside the run's prefix
    assert epoch == 3
    assert_state(model, published[1][3])
    (line,) = lines()
    assert line == (
        f"{store / PREFIX / LATEST}: {why}; resuming after epoch 3 "
        f"from the checkpoint at {epoch_dir(store, 3)} instead"
    )


def test_latest_json_cannot_lead_to_another_runs_checkpoint(published, store, tmp_path, lines):
    other = store / run_prefix("other")
    shutil.copytree(store / PREFIX, other)
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    shutil.rmtree(store / PREFIX)
    (store / PREFIX).mkdir()
    (store / PREFIX / LATEST).write_text('{"epoch": 3, "folder": "../other/epoch-0003"}')
    epoch, _, model, initial, recording, _ = restore(store, tmp_path)
    assert epoch == 0
    assert_state(model, initial)
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert lines() == [
        f"{store / PREFIX / LATEST}: folder '../other/epoch-0003' is not epoch-NNNN; starting fresh"
    ]


def test_latest_pointing_at_a_folder_that_is_gone_falls_back(store, tmp_path, lines):
    shutil.rmtree(epoch_dir(store, 3))
    assert restore(store, tmp_path)[0] == 2
    fell_back(lines, "no such folder", to=2)


def test_a_run_without_checkpoints_starts_fresh_silently(tmp_path, lines):
    (tmp_path / "store").mkdir()
    assert restore(tmp_path / "store", tmp_path)[:2] == (0, [])
    assert lines() == []


# -- a store that is down is not a broken checkpoint ------------------------------------------


@pytest.mark.parametrize("failing", ["list", "get_bytes", "get_file"])
def test_a_store_that_cannot_be_read_fails_the_step(store, tmp_path, lines, failing):
    local = LocalStore(store)

    def down(*args, **kwargs):
        raise StoreError("connection refused")

    setattr(local, failing, down)
    with pytest.raises(StoreError, match="connection refused"):
        StoreCheckpoints(local, PREFIX, tmp_path / "local").restore(keras_loader(tiny_model(7)))
    assert not [x for x in lines() if "resuming" in x]


# -- rotation: the last two complete epochs, nothing else touched ---------------------------


def publish_epochs(root: Path, local: Path, epochs) -> Iterator[tuple[LocalStore, list[dict]]]:
    """Publish stand-in files for each of `epochs`, yielding after each."""
    store, history = LocalStore(root), []
    checkpoints = StoreCheckpoints(store, PREFIX, local)
    for epoch in epochs:
        (local / WEIGHTS).write_bytes(f"weights {epoch}".encode())
        (local / "training_metadata.json").write_text(json.dumps({"epoch": epoch}))
        history.append({"epoch": epoch})
        checkpoints.publish(epoch, history)
        yield store, history


def epoch_folders(store: LocalStore) -> list[str]:
    return sorted({i.key.split("/")[2] for i in store.list(PREFIX)} - {"tfjob", LATEST})


def test_publishing_keeps_exactly_the_last_two_epochs(tmp_path):
    root = tmp_path / "store"
    LocalStore(root).put_bytes(f"{PREFIX}/tfjob/model.keras", b"the chief's model")  # no epoch
    kept = [epoch_folders(s) for s, _ in publish_epochs(root, tmp_path / "local", range(1, 5))]
    assert kept == [
        ["epoch-0001"],
        ["epoch-0001", "epoch-0002"],  # the previous epoch stays: the one to fall back to
        ["epoch-0002", "epoch-0003"],  # and the one before it goes
        ["epoch-0003", "epoch-0004"],
    ]
    assert (root / PREFIX / "tfjob/model.keras").read_bytes() == b"the chief's model"
    # the one kept before the latest is whole: a broken latest falls back to it
    (root / PREFIX / "epoch-0004" / WEIGHTS).unlink()
    fresh = StoreCheckpoints(LocalStore(root), PREFIX, tmp_path / "fresh")
    assert fresh.restore() == (3, [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}])
    assert (tmp_path / "fresh" / WEIGHTS).read_bytes() == b"weights 3"


def test_publishing_removes_newer_folders_of_a_timeline_fallen_back_from(tmp_path):
    root = tmp_path / "store"
    LocalStore(root).put_bytes(f"{PREFIX}/epoch-0009/{WEIGHTS}", b"broken, fallen back from")
    for store, _ in publish_epochs(root, tmp_path / "local", [3]):
        assert epoch_folders(store) == ["epoch-0003"]


class Journal:
    """A LocalStore that writes down every change it makes: (method, key under the run)."""

    def __init__(self, root: Path):
        self.store, self.changes = LocalStore(root), []

    def __getattr__(self, name):
        method = getattr(self.store, name)
        if name not in ("put_file", "put_bytes", "delete"):
            return method

        def change(key, *args, **kwargs):
            self.changes.append((name, key.removeprefix(f"{PREFIX}/")))
            return method(key, *args, **kwargs)

        return change


def test_latest_json_names_a_folder_only_once_it_is_whole(tmp_path):
    """The order a reader relies on: the epoch's files, its manifest, LATEST.json, and only
    then the rotation, whose deletions begin with a folder's manifest."""
    journal, local = Journal(tmp_path / "store"), tmp_path / "local"
    checkpoints = StoreCheckpoints(journal, PREFIX, local)
    for epoch in (1, 2, 3):
        journal.changes.clear()
        (local / WEIGHTS).write_bytes(f"weights {epoch}".encode())
        (local / "training_metadata.json").write_text(json.dumps({"epoch": epoch}))
        checkpoints.publish(epoch, [{"epoch": e} for e in range(1, epoch + 1)])
    names = sorted(["history.json", WEIGHTS, "training_metadata.json"])
    assert journal.changes == [
        *[("put_file", f"epoch-0003/{name}") for name in names],
        ("put_bytes", f"epoch-0003/{MANIFEST}"),
        ("put_bytes", LATEST),
        ("delete", f"epoch-0001/{MANIFEST}"),
        *[("delete", f"epoch-0001/{name}") for name in names],
    ]


def test_a_publish_cut_short_leaves_latest_json_at_the_last_whole_epoch(tmp_path, lines):
    """The pod dies while copying epoch 2: LATEST.json still names epoch 1, so the retried pod
    resumes from it without a word about a broken checkpoint."""
    store, local = LocalStore(tmp_path / "store"), tmp_path / "local"
    checkpoints = StoreCheckpoints(store, PREFIX, local)
    for epoch in (1, 2):
        (local / WEIGHTS).write_bytes(f"weights {epoch}".encode())
        (local / "training_metadata.json").write_text(json.dumps({"epoch": epoch}))
        if epoch == 2:
            store.put_file = dead_after(store.put_file, 1)
        with contextlib.suppress(PodKilled):
            checkpoints.publish(epoch, [{"epoch": e} for e in range(1, epoch + 1)])
    latest = json.loads((tmp_path / "store" / PREFIX / LATEST).read_bytes())
    assert latest == {"epoch": 1, "folder": "epoch-0001"}
    fresh = StoreCheckpoints(LocalStore(tmp_path / "store"), PREFIX, tmp_path / "fresh")
    assert fresh.restore() == (1, [{"epoch": 1}])
    where = LocalStore(tmp_path / "store").uri(f"{PREFIX}/epoch-0001")
    assert lines() == [f"resuming after epoch 1 from the checkpoint at {where}"]


class PodKilled(Exception):
    pass


def dead_after(put_file, calls: int):
    """`put_file` that works `calls` times, then dies as the pod does."""
    done = []

    def put(*args, **kwargs):
        if len(done) == calls:
            raise PodKilled
        done.append(args)
        return put_file(*args, **kwargs)

    return put


# -- the parsers, fuzzed --------------------------------------------------------------------


@fuzz(300)
@given(st.binary(max_size=5000))
def test_any_bytes_are_a_pointer_or_a_checkpoint_error(data):
    try:
        pointer = parse_latest(data)
    except CheckpointError:
        return
    assert pointer.folder == f"epoch-{pointer.epoch:04d}" and pointer.epoch >= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
folders = st.one_of(
    st.from_regex(r"epoch-[0-9]{1,6}", fullmatch=True),
    st.sampled_from(["../..", "epoch-0003/../../x", "/epoch-0003", "epoch-0003/", "epoch-٠٠٠٣"]),
    json_values,
)
pointers = st.fixed_dictionaries(
    {"epoch": st.one_of(st.integers(-2, 10**6), json_values), "folder": folders},
    optional={"other": json_values},
)


@fuzz(300)
@given(st.one_of(pointers, json_values))
def test_any_json_is_a_pointer_or_a_checkpoint_error(value):
    try:
        pointer = parse_latest(json.dumps(value).encode())
    except CheckpointError:
        return
    assert pointer == Pointer(value["epoch"], f"epoch-{value['epoch']:04d}")
    assert set(value) == {"epoch", "folder"}


@fuzz(300)
@given(st.integers(1, 10**9))
def test_a_pointer_as_published_parses_back(epoch):
    folder = f"epoch-{epoch:04d}"
    assert parse_latest(json.dumps({"epoch": epoch, "folder": folder}).encode()) == (epoch, folder)


names = [WEIGHTS, "training_metadata.json", "history.json", "a/b", "../x", "/x", "a//b", "."]
entries = st.fixed_dictionaries(
    {
        "path": st.one_of(st.sampled_from(names), json_values),
        "size": st.one_of(st.integers(-1, 10), json_values),
        "sha256": st.one_of(st.just("0" * 64), json_values),
    }
)


@fuzz(300)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(entries, max_size=5).map(lambda f: json.dumps({"epoch": 1, "files": f}).encode()),
        json_values.map(lambda value: json.dumps(value).encode()),
    )
)
def test_any_manifest_is_entries_or_a_checkpoint_error(data):
    try:
        parsed = parse_manifest(data, 1)
    except CheckpointError:
        return
    for entry in parsed:
        assert ".." not in entry.path.split("/") and not entry.path.startswith("/")


# -- through the trainer: what Keras runs after a restore -----------------------------------


@pytest.fixture(scope="module")
def trained(small_mnist_dir, tmp_path_factory):
    """The small MNIST set, a config of 4 steps an epoch, and a store after 2 of its epochs."""
    from components.dataset import mnist
    from components.train import trainer

    data = mnist.load_split(small_mnist_dir, "train"), mnist.load_split(small_mnist_dir, "test")
    cfg = trainer.TrainConfig(epochs=2, batch_size=50, learning_rate=0.01, train_limit=200)
    root = tmp_path_factory.mktemp("trained")
    local = tmp_path_factory.mktemp("trained-local")  # its own, as published's
    trainer.train(*data, cfg, checkpoints=StoreCheckpoints(LocalStore(root), PREFIX, local))
    return data, cfg, root


@pytest.mark.parametrize(
    "damage,why,runs",
    [
        ("none", "", [3]),
        ("missing", f"checkpoint epoch-0002 is broken ({WEIGHTS}: missing)", [2, 3]),
        ("flipped", f"checkpoint epoch-0002 is broken ({WEIGHTS}: sha256 mismatch)", [2, 3]),
        ("both", f"checkpoint epoch-0001 is broken ({WEIGHTS}: missing)", [1, 2, 3]),
    ],
)
def test_training_goes_on_from_the_state_it_says_it_restored(
    trained, tmp_path, lines, damage, why, runs
):
    """Keras runs exactly the epochs after the one restored, with the optimizer's step count
    restored too (4 steps an epoch: 12 after epoch 3 whatever was resumed)."""
    from dataclasses import replace

    from components.train import trainer

    data, cfg, published = trained
    root = tmp_path / "store"
    shutil.copytree(published, root)
    if damage in ("missing", "both"):
        (epoch_dir(root, 2) / WEIGHTS).unlink()
    if damage == "flipped":
        flip_bytes(epoch_dir(root, 2) / WEIGHTS)
    if damage == "both":
        (epoch_dir(root, 1) / WEIGHTS).unlink()
    seen = []
    checkpoints = StoreCheckpoints(LocalStore(root), PREFIX, tmp_path / "local")
    result = trainer.train(*data, replace(cfg, epochs=3), seen.append, checkpoints)
    assert [row["epoch"] for row in seen] == runs
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert int(result.model.optimizer.iterations) == 3 * 4
    said = [x for x in lines() if "resum" in x or "fresh" in x]
    done = 3 - len(runs)
    if damage == "none":
        assert said == [f"resuming after epoch 2 from the checkpoint at {epoch_dir(root, 2)}"]
    elif done:
        assert said == [
            f"{why}; resuming after epoch {done} from the checkpoint at "
            f"{epoch_dir(root, done)} instead"
        ]
    else:
        assert len(said) == 1 and why in said[0] and said[0].endswith("; starting fresh")
