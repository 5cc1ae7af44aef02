"""Exports that overlap (a recurring run and a manual one) never share or overwrite a version.

Each "model" here is a folder of distinct random files shaped like a SavedModel; what matters is
which bytes land in which version. Processes are forced to meet at every phase of `publish`
(after listing, after claiming, after the variables, before the last file), then left to race
freely many times, on a folder and on S3. Afterwards every complete version must hold exactly
the files of one model, and no version may have been written twice.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from components.export.exporter import CLAIM_FILE, SAVED_MODEL_PB, publish
from components.store import open_store

PREFIX = "models/mnist"
FILES = ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001")
_fork = multiprocessing.get_context("fork")


def _fake_model(folder: Path, n: int) -> dict[str, bytes]:
    """A SavedModel-shaped folder whose every file is unique to model `n`."""
    contents = {name: os.urandom(64) + f"model-{n}:{name}".encode() for name in FILES}
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return contents


def _export(store_uri, endpoint, model_dir, barrier, meet_at, repeats, results):
    """One exporter process: publish `model_dir` `repeats` times, meeting others at `meet_at`."""

    def notify(phase: str, version: int) -> None:
        if phase == meet_at:
            barrier.wait(timeout=30)

    store = open_store(store_uri, endpoint)
    for _ in range(repeats):
        version, _ = publish(Path(model_dir), store, PREFIX, notify)
        results.put((str(model_dir), version))


def _run(store_uri: str, endpoint: str, tmp_path: Path, workers: int, meet_at: str, repeats=1):
    models = {}
    for n in range(workers):
        models[str(tmp_path / f"model-{n}")] = _fake_model(tmp_path / f"model-{n}", n)
    barrier, results = _fork.Barrier(workers), _fork.Queue()
    procs = [
        _fork.Process(
            target=_export, args=(store_uri, endpoint, m, barrier, meet_at, repeats, results)
        )
        for m in models
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    published = [results.get(timeout=5) for _ in range(workers * repeats)]
    return models, published


def _check_store(store_uri: str, endpoint: str, models: dict, published: list) -> None:
    versions = [v for _, v in published]
    assert len(set(versions)) == len(versions), f"a version was published twice: {versions}"
    store = open_store(store_uri, endpoint)
    for model_dir, version in published:
        got = {
            info.key.split(f"{PREFIX}/{version}/", 1)[1]: store.get_bytes(info.key)
            for info in store.list(f"{PREFIX}/{version}")
        }
        claim = got.pop(CLAIM_FILE)
        assert b"claimed_at" in claim
        assert got == models[model_dir], f"version {version} mixes models or lacks files"
        matches = [m for m, files in models.items() if files == got]
        assert matches == [model_dir]


@pytest.mark.parametrize("meet_at", ["listed", "claimed", "uploaded"])
def test_two_exports_meeting_at_each_phase_get_two_whole_versions_folder(tmp_path, meet_at):
    store_uri = str(tmp_path / "store")
    models, published = _run(store_uri, "", tmp_path, workers=2, meet_at=meet_at)
    assert sorted(v for _, v in published) == [1, 2]
    _check_store(store_uri, "", models, published)


@pytest.mark.parametrize("meet_at", ["listed", "claimed", "uploaded"])
def test_two_exports_meeting_at_each_phase_get_two_whole_versions_s3(
    tmp_path, s3_env, s3_bucket, meet_at
):
    store_uri, endpoint = f"s3://{s3_bucket}/mnist", s3_env
    models, published = _run(store_uri, endpoint, tmp_path, workers=2, meet_at=meet_at)
    assert sorted(v for _, v in published) == [1, 2]
    _check_store(store_uri, endpoint, models, published)


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_four_exporters_racing_many_times_never_share_a_version(tmp_path, request, backend):
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        store_uri, endpoint = f"s3://{bucket}/mnist", request.getfixturevalue("s3_env")
    else:
        store_uri, endpoint = str(tmp_path / "store"), ""
    models, published = _run(store_uri, endpoint, tmp_path, workers=4, meet_at="-", repeats=5)
    assert sorted(v for _, v in published) == list(range(1, 21))
    _check_store(store_uri, endpoint, models, published)


def test_a_version_left_half_written_is_skipped_not_reused(tmp_path):
    """An export killed after its claim leaves a folder without saved_model.pb: the next
    export takes a new number and the abandoned folder is never written again."""
    store = open_store(str(tmp_path / "store"))
    store.put_bytes(f"{PREFIX}/1/{CLAIM_FILE}", b"{}")
    store.put_bytes(f"{PREFIX}/1/variables/variables.index", b"old")
    _fake_model(tmp_path / "m", 0)
    version, _ = publish(tmp_path / "m", store, PREFIX)
    assert version == 2
    assert store.get_bytes(f"{PREFIX}/1/variables/variables.index") == b"old"
    assert store.stat(f"{PREFIX}/1/{SAVED_MODEL_PB}") is None
