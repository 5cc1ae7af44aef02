"""What a retried pod finds in the store and does with it (components/train/checkpoints.py),
with stand-in files instead of a trained model, so each case is fast: the folder a run id
names, which epoch a restore takes and the one line it says, what is left in the store after
a publish, the order of its deletions, and each refusal word for word. test_checkpoints.py
does the same through a real Keras model; this file covers the edges it does not reach."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.common.errors import InputError
from components.common.records import MAX_RECORD
from components.store import LocalStore, sha256_file
from components.train.checkpoint_records import (
    HISTORY,
    LATEST,
    LATEST_MAX_BYTES,
    MANIFEST,
    METADATA,
    WEIGHTS,
)
from components.train.checkpoints import StoreCheckpoints, keras_loader, run_prefix

PREFIX = run_prefix("r")


def publish(checkpoints: StoreCheckpoints, epochs, extra: dict[str, bytes] | None = None):
    """Publish stand-in state after each of `epochs`, as Keras' BackupAndRestore leaves it:
    the weights, its metadata naming the epoch, and any `extra` files (path: bytes)."""
    for epoch in epochs:
        (checkpoints.local / WEIGHTS).write_bytes(f"weights {epoch}".encode())
        (checkpoints.local / METADATA).write_text(json.dumps({"epoch": epoch, "batch": 0}))
        for path, data in (extra or {}).items():
            (checkpoints.local / path).parent.mkdir(parents=True, exist_ok=True)
            (checkpoints.local / path).write_bytes(data)
        checkpoints.publish(epoch, [{"epoch": e} for e in range(1, epoch + 1)])


def published(tmp_path: Path, epochs=(1, 2), extra=None) -> Path:
    """A store root where a run published `epochs` (from a local folder of its own)."""
    root = tmp_path / "store"
    publish(StoreCheckpoints(LocalStore(root), PREFIX, tmp_path / "writer"), epochs, extra)
    return root


def retried(root: Path, tmp_path: Path, load=None, store=None) -> tuple[int, list, Path]:
    """A retried pod's restore: (epochs done, history, its local folder)."""
    local = tmp_path / "retried"
    epoch, history = StoreCheckpoints(store or LocalStore(root), PREFIX, local).restore(load)
    return epoch, history, local


def folder(root: Path, epoch: int) -> Path:
    return root / PREFIX / f"epoch-{epoch:04d}"


def reseal(path: Path) -> None:
    """Rewrite the manifest of the epoch folder `path` over what it holds now."""
    files = [
        {"path": p.relative_to(path).as_posix(), "size": p.stat().st_size,
         "sha256": sha256_file(p)}
        for p in sorted(path.rglob("*")) if p.is_file() and p.name != MANIFEST
    ]  # fmt: skip
    (path / MANIFEST).write_text(json.dumps({"epoch": int(path.name[6:]), "files": files}))


def instead(root: Path, why: str, epoch: int) -> str:
    return (
        f"{why}; resuming after epoch {epoch} from the checkpoint at "
        f"{LocalStore(root).uri(f'{PREFIX}/epoch-{epoch:04d}')} instead"
    )


# -- the folder a run id names --------------------------------------------------------------


@pytest.mark.parametrize(
    "run_id, folder_name",
    [
        ("0f3c6a52-9e1b-4c7d-8a2e-5b6c7d8e9f10", "0f3c6a52-9e1b-4c7d-8a2e-5b6c7d8e9f10"),
        ("a.b_c-D9", "a.b_c-D9"),
        (" run 7/a:b ", "run_7_a_b"),  # spaces around go, others and '/' become '_'
        ("X", "X"),
        ("._x", "._x"),
    ],
)
def test_a_run_id_names_its_folder_under_checkpoints(run_id, folder_name):
    """A KFP run id (a UUID) is its own folder name; a character a key should not hold
    becomes '_', so no run id leads out of checkpoints/ or into another run's folder."""
    assert run_prefix(run_id) == f"checkpoints/{folder_name}"


@pytest.mark.parametrize("run_id", ["", "   ", "..", "_", "._.", "/"])
def test_a_run_id_with_no_letter_or_digit_is_refused_in_one_line(run_id):
    with pytest.raises(InputError) as e:
        run_prefix(run_id)
    assert str(e.value) == f"run id {run_id!r} cannot name a checkpoint folder"


def test_a_prefix_given_with_slashes_names_the_same_folder(tmp_path):
    store = LocalStore(tmp_path / "store")
    checkpoints = StoreCheckpoints(store, "/checkpoints/RUN-X/", tmp_path / "local")
    assert checkpoints.uri == store.uri("checkpoints/RUN-X")
    publish(checkpoints, [1])
    names = (HISTORY, MANIFEST, METADATA, WEIGHTS)
    assert sorted(info.key for info in store.list("")) == [
        "checkpoints/RUN-X/LATEST.json",
        *sorted(f"checkpoints/RUN-X/epoch-0001/{name}" for name in names),
    ]
    again = StoreCheckpoints(store, "checkpoints/RUN-X", tmp_path / "again")
    assert again.restore() == (1, [{"epoch": 1}])


# -- the local folder Keras reads -----------------------------------------------------------


def test_the_local_folder_is_made_with_its_parents(tmp_path):
    local = tmp_path / "pod" / "work" / "checkpoint"
    StoreCheckpoints(LocalStore(tmp_path / "store"), PREFIX, local)
    assert local.is_dir() and not list(local.iterdir())


def test_a_restore_after_the_local_folder_and_its_parent_went_still_resumes(tmp_path, lines):
    """BackupAndRestore removes its folder when fit ends, and a temporary folder may be
    cleaned: the restore makes it again and fills it."""
    root = tmp_path / "store"
    local = tmp_path / "work" / "checkpoint"
    checkpoints = StoreCheckpoints(LocalStore(root), PREFIX, local)
    publish(checkpoints, [1, 2])
    shutil.rmtree(tmp_path / "work")
    assert checkpoints.restore() == (2, [{"epoch": 1}, {"epoch": 2}])
    assert (local / WEIGHTS).read_bytes() == b"weights 2"
    assert lines() == [f"resuming after epoch 2 from the checkpoint at {folder(root, 2)}"]


def test_a_local_folder_that_cannot_be_emptied_is_not_handed_to_keras(tmp_path, lines):
    """What is left in it would be read by BackupAndRestore as the state to resume from, while
    the line said otherwise: the restore fails instead (a link here, which rmtree refuses)."""
    root = published(tmp_path, [1])
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / WEIGHTS).write_bytes(b"another run's weights")
    (tmp_path / "linked").symlink_to(stale)
    checkpoints = StoreCheckpoints(LocalStore(root), PREFIX, tmp_path / "linked")
    with pytest.raises(FileExistsError):
        checkpoints.restore()
    assert not [line for line in lines() if "resuming" in line or "fresh" in line]


def test_files_in_subfolders_come_back_where_they_were(tmp_path):
    nested = {"variables/deep/x.data-00000-of-00001": b"\x00\x01 nested", "assets/vocab": b"v"}
    root = published(tmp_path, [1], nested)
    manifest = json.loads((folder(root, 1) / MANIFEST).read_text())
    assert set(nested) <= {f["path"] for f in manifest["files"]}
    epoch, _, local = retried(root, tmp_path)
    assert epoch == 1
    for path, data in nested.items():
        assert (local / path).read_bytes() == data


# -- which epoch a restore takes, and the line it says --------------------------------------


def test_no_latest_json_takes_the_newest_whole_folder_and_says_so(tmp_path, lines):
    """A pod killed between an epoch's manifest and LATEST.json, or LATEST.json removed."""
    root = published(tmp_path, [1, 2])
    (root / PREFIX / LATEST).unlink()
    epoch, history, local = retried(root, tmp_path)
    assert (epoch, len(history)) == (2, 2)
    assert (local / WEIGHTS).read_bytes() == b"weights 2"
    assert lines() == [instead(root, "no LATEST.json", 2)]


def test_latest_json_that_is_a_folder_is_not_a_pointer(tmp_path, lines):
    root = published(tmp_path, [1, 2])
    (root / PREFIX / LATEST).unlink()
    (root / PREFIX / LATEST).mkdir()
    (root / PREFIX / LATEST / "stray").write_bytes(b"x")
    assert retried(root, tmp_path)[0] == 2
    where = LocalStore(root).uri(PREFIX)
    assert lines() == [instead(root, f"{where}/{LATEST}: a folder, not a file", 2)]


def test_past_epoch_9999_the_newest_folder_is_still_the_highest_epoch(tmp_path, lines):
    """Folder names grow a fifth digit: epoch-10000 sorts before epoch-9999 as text, and is
    still the one a scan without LATEST.json takes first."""
    root = published(tmp_path, [9999, 10000])
    (root / PREFIX / LATEST).unlink()
    epoch, history, local = retried(root, tmp_path)
    assert (epoch, len(history)) == (10000, 10000)
    assert (local / WEIGHTS).read_bytes() == b"weights 10000"
    assert lines() == [instead(root, "no LATEST.json", 10000)]


def test_keras_metadata_that_is_not_json_is_named(tmp_path, lines):
    root = published(tmp_path, [1, 2])
    (folder(root, 2) / METADATA).write_bytes(b'{"epoch": 2, "ba')  # cut short before the manifest
    reseal(folder(root, 2))
    assert retried(root, tmp_path)[0] == 1
    why = f"checkpoint epoch-0002 is broken ({METADATA}: not valid JSON (JSONDecodeError))"
    assert lines() == [instead(root, why, 1)]


def test_every_problem_passed_over_is_named_in_the_one_line(tmp_path, lines):
    """No pointer and a broken newest epoch: both reasons, in the order met, then the epoch."""
    root = published(tmp_path, [1, 2])
    (root / PREFIX / LATEST).unlink()
    (folder(root, 2) / METADATA).write_bytes(b"{")
    reseal(folder(root, 2))
    assert retried(root, tmp_path)[0] == 1
    broken = f"checkpoint epoch-0002 is broken ({METADATA}: not valid JSON (JSONDecodeError))"
    assert lines() == [instead(root, f"no LATEST.json; {broken}", 1)]


def test_a_pointer_of_exactly_the_size_bound_is_read(tmp_path, lines):
    root = published(tmp_path, [1, 2])
    pointer = json.dumps({"epoch": 1, "folder": "epoch-0001"}).encode()
    (root / PREFIX / LATEST).write_bytes(pointer + b" " * (LATEST_MAX_BYTES - len(pointer)))
    epoch, _, local = retried(root, tmp_path)
    assert epoch == 1 and (local / WEIGHTS).read_bytes() == b"weights 1"
    assert lines() == [f"resuming after epoch 1 from the checkpoint at {folder(root, 1)}"]


def test_a_manifest_too_large_to_be_ours_is_not_read(tmp_path, lines):
    root = published(tmp_path, [1, 2])
    (folder(root, 2) / MANIFEST).write_bytes(b" " * (MAX_RECORD + 1))
    assert retried(root, tmp_path)[0] == 1
    why = f"checkpoint epoch-0002 is broken ({MANIFEST}: larger than {MAX_RECORD} bytes)"
    assert lines() == [instead(root, why, 1)]


def test_a_history_up_to_the_record_bound_is_read_and_one_byte_more_is_not(tmp_path, lines):
    root = published(tmp_path, [1, 2])
    rows = json.dumps([{"epoch": 1}, {"epoch": 2}]).encode()
    (folder(root, 2) / HISTORY).write_bytes(rows + b" " * (MAX_RECORD - len(rows)))
    reseal(folder(root, 2))
    epoch, history, _ = retried(root, tmp_path / "a")
    assert (epoch, history) == (2, [{"epoch": 1}, {"epoch": 2}])
    (folder(root, 2) / HISTORY).write_bytes(rows + b" " * (MAX_RECORD + 1 - len(rows)))
    reseal(folder(root, 2))
    assert retried(root, tmp_path / "b")[0] == 1
    why = f"checkpoint epoch-0002 is broken ({HISTORY}: larger than {MAX_RECORD} bytes)"
    assert lines()[-1] == instead(root, why, 1)


class ChangedAfterListing:
    """A store whose object `key` is rewritten (3 bytes longer) between the listing and the
    download: another writer, or a file being replaced."""

    def __init__(self, root: Path, key: str):
        self.store, self.key = LocalStore(root), key

    def __getattr__(self, name):
        return getattr(self.store, name)

    def get_file(self, key, dest):
        self.store.get_file(key, dest)
        if key == self.key:
            Path(dest).write_bytes(Path(dest).read_bytes() + b"new")


def test_a_file_that_changed_after_the_listing_is_caught_by_its_size(tmp_path, lines):
    root = published(tmp_path, [1, 2])
    size = (folder(root, 2) / WEIGHTS).stat().st_size
    store = ChangedAfterListing(root, f"{PREFIX}/epoch-0002/{WEIGHTS}")
    epoch, _, local = retried(root, tmp_path, store=store)
    assert epoch == 1 and (local / WEIGHTS).read_bytes() == b"weights 1"
    why = f"checkpoint epoch-0002 is broken ({WEIGHTS}: {size + 3} bytes, not {size})"
    assert lines() == [instead(root, why, 1)]


@pytest.mark.parametrize(
    "error, said",
    [
        (
            OSError("Unable to synchronously open file (file signature not found)\nat h5py"),
            "OSError: Unable to synchronously open file (file signature not found)",
        ),
        (ValueError(), "ValueError: "),
        (ValueError("  \n"), "ValueError: "),
        (KeyError("x" * 200), "KeyError: '" + "x" * 159),
    ],
    ids=["first line", "no message", "blank message", "cut at 160"],
)
def test_a_checkpoint_keras_cannot_load_is_named_with_the_errors_first_line(
    tmp_path, lines, error, said
):
    root = published(tmp_path, [1])

    def load(local: Path):
        assert (local / WEIGHTS).read_bytes() == b"weights 1"  # the files are in place
        raise error

    assert retried(root, tmp_path, load)[:2] == (0, [])
    assert lines() == [
        f"checkpoint epoch-0001 is broken (Keras cannot load it: {said}); starting fresh"
    ]


# -- what publishing leaves in the store ----------------------------------------------------


def test_a_fresh_start_over_broken_epochs_leaves_only_its_own_after_its_first_publish(
    tmp_path, lines
):
    """Every folder was broken, so the run starts again from epoch 1: publishing it removes
    the broken epochs 1 and 2, so nothing of the old timeline is left to be taken later."""
    root = published(tmp_path, [1, 2])
    for epoch in (1, 2):
        (folder(root, epoch) / WEIGHTS).unlink()
    checkpoints = StoreCheckpoints(LocalStore(root), PREFIX, tmp_path / "retried")
    assert checkpoints.restore() == (0, [])
    assert lines()[-1].endswith("; starting fresh")
    publish(checkpoints, [1])
    objects = {info.key.split("/")[2] for info in LocalStore(root).list(PREFIX)}
    assert sorted(objects) == [LATEST, "epoch-0001"]
    assert (folder(root, 1) / WEIGHTS).read_bytes() == b"weights 1"


class Deletions:
    """A LocalStore that writes down the keys it deletes, in order."""

    def __init__(self, root: Path):
        self.store, self.deleted = LocalStore(root), []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def delete(self, key):
        self.deleted.append(key.removeprefix(f"{PREFIX}/"))
        self.store.delete(key)


def test_rotation_deletes_a_folders_manifest_before_any_of_its_files_whatever_their_names(
    tmp_path,
):
    """Names that sort before MANIFEST.json ('0...', 'ASSETS', 'A/...') go after it: a folder
    cut short mid-deletion has no manifest, so it is plainly incomplete."""
    store = Deletions(tmp_path / "store")
    extra = {"0.index": b"0", "ASSETS": b"a", "A/b": b"b"}
    publish(StoreCheckpoints(store, PREFIX, tmp_path / "local"), [1, 2, 3], extra)
    first, *rest = store.deleted
    assert first == f"epoch-0001/{MANIFEST}"
    assert sorted(rest) == sorted(
        f"epoch-0001/{name}" for name in (*extra, HISTORY, METADATA, WEIGHTS)
    )


def test_every_object_published_on_s3_carries_its_sha256(s3_bucket, s3_env, tmp_path):
    """On S3 each file of an epoch is uploaded with its digest in the object's metadata, the
    one the manifest lists (as every object the project writes)."""
    from components.store import open_store

    store = open_store(f"s3://{s3_bucket}", s3_env)
    publish(StoreCheckpoints(store, PREFIX, tmp_path / "local"), [1])
    manifest = json.loads(store.get_bytes(f"{PREFIX}/epoch-0001/{MANIFEST}"))
    assert {f["path"] for f in manifest["files"]} == {HISTORY, METADATA, WEIGHTS}
    for entry in manifest["files"]:
        info = store.stat(f"{PREFIX}/epoch-0001/{entry['path']}")
        assert (info.size, info.sha256) == (entry["size"], entry["sha256"]), entry["path"]


# -- keras_loader ---------------------------------------------------------------------------


def tiny():
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def values(variables) -> list:
    import numpy as np

    return [np.array(v) for v in variables]


def test_a_failed_load_puts_back_every_variable_the_optimizers_included(tmp_path):
    """A load that fails after it changed the weights and the optimizer's state (its step
    among them) leaves the model as it was, so a fresh start begins from its own state."""
    import numpy as np

    model = tiny()
    load = keras_loader(model)
    assert model.optimizer.built  # its slots exist before the load, as BackupAndRestore has them
    variables = [*model.weights, *model.optimizer.variables]
    before = values(variables)

    def half_a_load(path):
        for variable in variables:
            variable.assign(np.ones(variable.shape, variable.dtype))
        raise OSError("cut short")

    model.load_weights = half_a_load
    with pytest.raises(OSError, match="cut short"):
        load(tmp_path)
    for now, then in zip(values(variables), before, strict=True):
        np.testing.assert_array_equal(now, then)
