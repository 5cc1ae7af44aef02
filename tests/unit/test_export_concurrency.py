"""Exports that overlap (a recurring run and a manual one) never share or overwrite a version.

Each "model" here is a folder of distinct random files shaped like a SavedModel; what matters is
which bytes land in which version. Processes are forced to meet at every phase of `publish`
(after listing, after claiming, after the variables, before the last file), then left to race
freely many times, on a folder and on S3. Afterwards every complete version must hold exactly
the files of one model, and no version may have been written twice. The claim those processes
rely on is also checked step by step in this one process: a version another export claimed
meanwhile, the phases, what a claim says, the bound on tries, which folders are versions.
"""

from __future__ import annotations

import calendar
import json
import multiprocessing
import os
import socket
import time
from pathlib import Path

import pytest

from components.export.exporter import (
    CLAIM_FILE,
    SAVED_MODEL_PB,
    ExportError,
    claim_version,
    existing_versions,
    publish,
)
from components.store import AlreadyExists, open_store

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


# -- the claim, in this process: what the racing processes above rely on ----------------------


def test_a_version_claimed_between_listing_and_claiming_is_left_to_its_owner(tmp_path, caplog):
    """Another export claims version 1 after this one listed the store: this one takes 2, and
    the other's claim is not touched."""
    store = open_store(str(tmp_path / "store"))
    _fake_model(tmp_path / "m", 0)

    def other_export_claims(phase: str, version: int) -> None:
        if phase == "listed":
            store.put_bytes(f"{PREFIX}/{version}/{CLAIM_FILE}", b"the other export", exclusive=True)

    caplog.set_level("INFO", logger="mnist")
    assert publish(tmp_path / "m", store, PREFIX, other_export_claims)[0] == 2
    assert store.get_bytes(f"{PREFIX}/1/{CLAIM_FILE}") == b"the other export"
    assert [i.key for i in store.list(f"{PREFIX}/1")] == [f"{PREFIX}/1/{CLAIM_FILE}"]
    assert "version 1 was claimed by another export; trying 2" in caplog.messages


def test_each_phase_is_announced_with_its_version(tmp_path):
    store = open_store(str(tmp_path / "store"))
    _fake_model(tmp_path / "m", 0)
    phases: list[tuple[str, int]] = []
    for _ in range(2):
        publish(tmp_path / "m", store, PREFIX, lambda phase, v: phases.append((phase, v)))
    assert phases == [
        (phase, version)
        for version in (1, 2)
        for phase in ("listed", "claimed", "uploaded", "published")
    ]


@pytest.fixture
def tokyo(monkeypatch):
    """The machine's local time nine hours ahead of UTC, for the block of one test."""
    monkeypatch.setenv("TZ", "JST-9")  # POSIX form: no tz database needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_claim_says_who_claimed_the_version_and_when_in_utc(tmp_path, monkeypatch, tokyo):
    """claimed_at ends in Z: UTC, whatever the machine's time zone (here nine hours ahead)."""
    assert time.localtime().tm_hour != time.gmtime().tm_hour
    monkeypatch.setenv("KFP_RUN_ID", "run-42")
    store = open_store(str(tmp_path / "store"))
    _fake_model(tmp_path / "m", 0)
    before = time.time()
    publish(tmp_path / "m", store, PREFIX)
    claim = json.loads(store.get_bytes(f"{PREFIX}/1/{CLAIM_FILE}"))
    assert set(claim) == {"host", "pid", "run", "claimed_at"}
    assert (claim["host"], claim["pid"], claim["run"]) == (
        socket.gethostname(),
        os.getpid(),
        "run-42",
    )
    claimed = calendar.timegm(time.strptime(claim["claimed_at"], "%Y-%m-%dT%H:%M:%SZ"))
    # whole seconds, from time.gmtime(): C's time(), a coarse clock that can be a tick behind
    # time.time() (a CI run at 2 ms past a second read the second before)
    assert int(before) - 1 <= claimed <= time.time()


def test_a_claim_outside_kfp_names_no_run(tmp_path, monkeypatch):
    monkeypatch.delenv("KFP_RUN_ID", raising=False)
    store = open_store(str(tmp_path / "store"))
    _fake_model(tmp_path / "m", 0)
    publish(tmp_path / "m", store, PREFIX)
    assert json.loads(store.get_bytes(f"{PREFIX}/1/{CLAIM_FILE}"))["run"] == ""


def test_claiming_gives_up_after_a_hundred_taken_versions(tmp_path):
    store = open_store(str(tmp_path / "store"))
    tried = []

    def always_taken(key, data, exclusive=False):
        tried.append((key, exclusive))
        raise AlreadyExists(key)

    store.put_bytes = always_taken
    with pytest.raises(ExportError) as e:
        claim_version(store, PREFIX)
    assert str(e.value) == f"could not claim a version under {store.uri(PREFIX)} in 100 tries"
    assert tried == [(f"{PREFIX}/{v}/{CLAIM_FILE}", True) for v in range(1, 101)]


def test_the_next_version_follows_every_numbered_folder_and_nothing_else(tmp_path):
    """Complete, claimed-only and abandoned versions all count; a folder whose name is not a
    canonical number (a person's notes, a backup, a zero-padded copy) does not."""
    store = open_store(str(tmp_path / "store"))
    for key in ("2/saved_model.pb", f"5/{CLAIM_FILE}", "7/variables/variables.index",
                "v9/x", "X8/x", "12.bak/x", "011/x", "٣٣/x", "notes.txt"):  # fmt: skip
        store.put_bytes(f"{PREFIX}/{key}", b"x")
    store.put_bytes("models/other/30/saved_model.pb", b"another model's versions")
    assert existing_versions(store, PREFIX) == {2, 5, 7}
    assert existing_versions(store, PREFIX + "/") == {2, 5, 7}
    assert claim_version(store, PREFIX) == 8
