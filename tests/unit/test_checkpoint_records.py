"""A checkpoint's records as read back (components/train/checkpoint_records.py), one refusal at a
time, in the words restore() puts in its one line; and the edges of what is accepted: the
first epoch, the width of a folder's number, the size bounds, a digest's alphabet. The fuzz
tests in test_checkpoints.py show nothing else gets through; these show why each thing is
refused, and that nothing right is."""

from __future__ import annotations

import json

import pytest

from components.train.checkpoint_records import (
    HISTORY,
    LATEST,
    LATEST_MAX_BYTES,
    MANIFEST,
    METADATA,
    REQUIRED,
    WEIGHTS,
    CheckpointError,
    Entry,
    Pointer,
    _history,
    _record,
    folder_epoch,
    folder_name,
    parse_latest,
    parse_manifest,
)

DIGEST = "0123456789abcdef" * 4


def refused(parse, *args) -> str:
    with pytest.raises(CheckpointError) as e:
        parse(*args)
    return str(e.value)


def manifest(*files: dict, epoch: int = 3) -> bytes:
    return json.dumps({"epoch": epoch, "files": list(files)}).encode()


def entry(path: str, size=1, sha256=DIGEST) -> dict:
    return {"path": path, "size": size, "sha256": sha256}


REQUIRED_ENTRIES = [entry(name) for name in REQUIRED]


def shown(value) -> str:
    """How a message shows a value: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- epoch folders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "epoch, name",
    [(1, "epoch-0001"), (42, "epoch-0042"), (1000, "epoch-1000"), (10000, "epoch-10000"),
     (12345, "epoch-12345")],
)  # fmt: skip
def test_an_epoch_folder_is_named_with_at_least_four_digits(epoch, name):
    assert folder_name(epoch) == name
    assert folder_epoch(name) == epoch


@pytest.mark.parametrize(
    "name",
    ["epoch-0000", "epoch-001", "epoch-00042", "Epoch-0001", "epoch-0001/", "x-epoch-0001",
     "epoch-" + "1" * 59, 7, None],
)  # fmt: skip
def test_anything_else_is_not_an_epoch_folder(name):
    assert refused(folder_epoch, name) == f"folder {shown(name)} is not epoch-NNNN"


def test_the_longest_epoch_folder_name_taken_is_64_characters():
    assert folder_epoch("epoch-" + "1" * 58) == int("1" * 58)


def test_a_long_value_is_cut_short_in_the_message():
    name = "epoch-" + "x" * 100
    assert refused(folder_epoch, name) == f"folder {repr(name)[:37]}... is not epoch-NNNN"
    assert (
        refused(folder_epoch, "epoch-" + "x" * 32) == f"folder 'epoch-{'x' * 32}' is not epoch-NNNN"
    )


# -- LATEST.json ----------------------------------------------------------------------------


def test_a_pointer_names_its_epoch_and_folder():
    data = json.dumps({"epoch": 2, "folder": "epoch-0002"}).encode()
    assert parse_latest(data) == Pointer(2, "epoch-0002")


@pytest.mark.parametrize(
    "latest, why",
    [
        ({"epoch": 0, "folder": "epoch-0000"}, "epoch 0 is not >= 1"),
        ({"epoch": -1, "folder": "epoch-0001"}, "epoch -1 is not >= 1"),
        ({"epoch": 2, "folder": "epoch-0003"}, "epoch 2 disagrees with folder epoch-0003"),
        ({"epoch": 3, "folder": "../epoch-0003"}, "folder '../epoch-0003' is not epoch-NNNN"),
        ({"epoch": 3, "folder": "epoch-0003", "by": "x"}, "unexpected field 'by'"),
        ({"epoch": 3}, "has no 'folder' field"),
        ({"epoch": "3", "folder": "epoch-0003"}, "field 'epoch' is a str"),
        ({"epoch": True, "folder": "epoch-0001"}, "field 'epoch' is a bool"),
    ],
)
def test_a_pointer_that_is_not_one_says_why(latest, why):
    assert refused(parse_latest, json.dumps(latest).encode()) == f"{LATEST}: {why}"


def test_latest_json_is_bounded_before_it_is_parsed():
    pointer = b'{"epoch": 1, "folder": "epoch-0001"}'
    padded = pointer + b" " * (LATEST_MAX_BYTES - len(pointer))
    assert parse_latest(padded) == Pointer(1, "epoch-0001")  # exactly the bound: taken
    assert refused(parse_latest, padded + b" ") == f"{LATEST}: larger than 4096 bytes"


# -- MANIFEST.json --------------------------------------------------------------------------


def test_a_manifest_lists_its_entries_in_order():
    files = [entry("a/b.bin", 0), *REQUIRED_ENTRIES, entry("variables/x.data-0", 10**9)]
    assert parse_manifest(manifest(*files), 3) == [Entry(**f) for f in files]


def plus(*files) -> list:
    """The required entries, and these."""
    return [*REQUIRED_ENTRIES, *files]


NOT_PLAIN = "is not a plain relative path"
UPPER, SHORT = DIGEST.upper(), DIGEST[:-1]  # a digest is 64 lowercase hex digits


@pytest.mark.parametrize(
    "files, why",
    [
        (plus("x"), "MANIFEST.json: a file entry is not an object"),
        (plus({**entry("x"), "mode": 1}), "MANIFEST.json: unexpected field 'mode' in a file entry"),
        (plus(entry(WEIGHTS)), "MANIFEST.json: a file listed twice"),
        (plus(entry(f"{HISTORY}/x")), f"MANIFEST.json: {HISTORY}/x is inside a file it lists"),
        (plus(entry("a/b"), entry("a/b/c/d")), "MANIFEST.json: a/b/c/d is inside a file it lists"),
        (plus(entry(MANIFEST)), f"MANIFEST.json: path 'MANIFEST.json' {NOT_PLAIN}"),
        (plus(entry("a/./b")), f"MANIFEST.json: path 'a/./b' {NOT_PLAIN}"),
        (plus(entry("a/../b")), f"MANIFEST.json: path 'a/../b' {NOT_PLAIN}"),
        (plus(entry("a//b")), f"MANIFEST.json: path 'a//b' {NOT_PLAIN}"),
        (plus(entry("/abs")), f"MANIFEST.json: path '/abs' {NOT_PLAIN}"),
        (plus(entry("a b")), f"MANIFEST.json: path 'a b' {NOT_PLAIN}"),
        (plus(entry(3)), f"MANIFEST.json: path 3 {NOT_PLAIN}"),
        (plus(entry("x", -1)), "MANIFEST.json: size of x is -1"),
        (plus(entry("x", 1.0)), "MANIFEST.json: size of x is 1.0"),
        (plus(entry("x", True)), "MANIFEST.json: size of x is True"),
        (plus(entry("x", sha256=UPPER)), f"MANIFEST.json: sha256 of x is {shown(UPPER)}"),
        (plus(entry("x", sha256=SHORT)), f"MANIFEST.json: sha256 of x is {shown(SHORT)}"),
        (plus(entry("x", sha256=None)), "MANIFEST.json: sha256 of x is None"),
        (REQUIRED_ENTRIES[1:], f"{WEIGHTS}: missing"),
        ([e for e in REQUIRED_ENTRIES if e["path"] != METADATA], f"{METADATA}: missing"),
        (REQUIRED_ENTRIES[:-1], f"{HISTORY}: missing"),
    ],
)  # fmt: skip
def test_a_manifest_that_is_not_ours_says_why(files, why):
    assert refused(parse_manifest, manifest(*files), 3) == why


def test_a_manifest_of_another_epoch_is_refused():
    assert refused(parse_manifest, manifest(*REQUIRED_ENTRIES, epoch=2), 3) == (
        "MANIFEST.json: epoch 2, not 3"
    )


# -- the history and Keras' metadata --------------------------------------------------------


def test_a_history_is_a_list_of_rows():
    assert _history(b'[{"epoch": 1}, {"epoch": 2, "loss": 0.5}]') == [
        {"epoch": 1}, {"epoch": 2, "loss": 0.5}]  # fmt: skip
    assert _history(b"[]") == []


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\xff", "history.json: not valid JSON"),
        (b"[" * 100_000, "history.json: not valid JSON"),
        (b'{"epoch": 1}', "history.json: not a list of objects"),
        (b'[{"epoch": 1}, 2]', "history.json: not a list of objects"),
    ],
)
def test_a_history_that_is_not_one_says_why(data, why):
    assert refused(_history, data) == why


def test_a_record_may_carry_more_fields_where_keras_adds_them():
    """Keras' metadata holds `batch` too: read with exact=False, which only LATEST.json and the
    manifest are not."""
    data = b'{"epoch": 2, "batch": 0}'
    assert _record(data, METADATA, {"epoch": int}, exact=False) == {"epoch": 2, "batch": 0}
    assert refused(_record, data, METADATA, {"epoch": int}) == (
        f"{METADATA}: unexpected field 'batch'"
    )
