"""LocalStore, the folder that stands in for a bucket (components/store/local.py), one promise at
a time: a reader never sees half a file, an exclusive create has one winner, files get the
umask's mode, nothing is read, listed or deleted through a symbolic link or outside the root,
special files are named and never opened, empty folders go and the root stays; and each
refusal is one line naming the object."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from components.store import AlreadyExists, LocalStore, ObjectInfo, Skipped, StoreError
from components.store import local as local_module


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "root")


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def test_the_root_is_resolved_and_named_in_uris(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store = LocalStore(tmp_path / "link")
    assert store.root == tmp_path / "real"
    assert store.uri() == str(tmp_path / "real")
    assert store.uri("a/b") == str(tmp_path / "real" / "a" / "b")


def test_a_write_lands_whole_with_the_umasks_mode_and_no_leftover(store, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"file")
    store.put_file("a/b/file", src)
    store.put_bytes("a/bytes", b"bytes")
    assert store.get_bytes("a/b/file") == b"file" and store.get_bytes("a/bytes") == b"bytes"
    assert files(store.root) == ["a/b/file", "a/bytes"]  # no .part-* left beside them
    mode = 0o666 & ~local_module._UMASK
    for name in ("a/b/file", "a/bytes"):
        assert stat.S_IMODE((store.root / name).stat().st_mode) == mode


def test_a_write_replaces_an_object_unless_it_is_exclusive(store):
    store.put_bytes("k", b"one")
    store.put_bytes("k", b"two")
    assert store.get_bytes("k") == b"two"
    with pytest.raises(AlreadyExists) as e:
        store.put_bytes("k", b"three", exclusive=True)
    assert str(e.value) == f"{store.uri('k')} already exists; not overwriting it"
    store.put_bytes("new", b"four", exclusive=True)
    assert store.get_bytes("k") == b"two" and store.get_bytes("new") == b"four"
    assert files(store.root) == ["k", "new"]


def test_an_exclusive_file_create_has_the_same_rule(store, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"x")
    store.put_file("k", src, exclusive=True)
    with pytest.raises(AlreadyExists):
        store.put_file("k", src, exclusive=True)
    assert files(store.root) == ["k"]


def test_a_write_that_fails_midway_leaves_nothing(store):
    def fill(tmp):
        tmp.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        store._write("a/k", fill)
    assert files(store.root) == []  # no .part-* left behind


def test_an_os_error_is_one_line_naming_the_object(store, tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(StoreError) as e:
        store.put_file("k", tmp_path / "folder")  # a folder cannot be read as a file
    assert str(e.value) == f"{store.uri('k')}: Is a directory"


def test_an_os_error_without_words_is_named_by_its_type(store):
    @local_module._os_errors
    def fails(self, key):
        raise PermissionError()

    with pytest.raises(StoreError) as e:
        fails(store, "k")
    assert str(e.value) == f"{store.uri('k')}: PermissionError"


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd"])
def test_a_key_cannot_climb_out_of_the_root(store, key):
    with pytest.raises(StoreError) as e:
        store.put_bytes(key, b"x")
    assert str(e.value) == f"key {key!r} is outside the store {store.root}"


def test_keys_are_normalised_inside_the_root(store):
    store.put_bytes("a/./b/../c", b"x")
    assert files(store.root) == ["a/c"]
    assert store.get_bytes("a//c") == b"x"


def test_the_root_may_be_the_file_system_root():
    assert LocalStore(Path("/"))._path("tmp") == Path("/tmp")


def test_a_write_through_a_linked_folder_is_refused(store, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    store.root.mkdir(parents=True)
    (store.root / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError) as e:
        store.put_bytes("out/x", b"x")
    assert str(e.value) == f"{store.uri('out/x')} leads outside the store through a symbolic link"
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_linked_folder_inside_the_root_may_be_written(store):
    (store.root / "real").mkdir(parents=True)
    (store.root / "alias").symlink_to(store.root / "real")
    store.put_bytes("alias/x", b"x")
    assert (store.root / "real" / "x").read_bytes() == b"x"


def test_reads_never_follow_a_link_or_open_a_special_file(store, tmp_path):
    store.put_bytes("real", b"x")
    (store.root / "link").symlink_to(store.root / "real")
    os.mkfifo(store.root / "fifo")
    (store.root / "folder").mkdir()
    for key, why in [
        ("link", "is a symbolic link"),
        ("fifo", "not a regular file"),
        ("folder", "not a regular file"),
        ("missing", None),
    ]:
        with pytest.raises(StoreError) as e:
            store.get_bytes(key)
        expected = f"no object {store.uri(key)}" if why is None else f"{store.uri(key)}: {why}"
        assert str(e.value) == expected
    with pytest.raises(StoreError, match="is a symbolic link"):
        store.get_file("link", tmp_path / "copy")


def test_get_file_copies_the_object(store, tmp_path):
    store.put_bytes("a", b"content" * 1000)
    store.get_file("a", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"content" * 1000


def test_stat_gives_size_and_digest_of_files_only(store):
    store.put_bytes("a", b"abc")
    info = store.stat("a")
    assert info == ObjectInfo(
        "a", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    (store.root / "link").symlink_to(store.root / "a")
    (store.root / "folder").mkdir()
    assert store.stat("link") is None and store.stat("folder") is None
    assert store.stat("missing") is None


def test_a_listing_is_every_file_under_the_prefix_sorted_with_its_size(store):
    for key, data in [("b/2", b"22"), ("a/1", b"1"), ("a/sub/3", b"333"), ("ab", b"")]:
        store.put_bytes(key, data)
    assert [(i.key, i.size) for i in store.list()] == [
        ("a/1", 1), ("a/sub/3", 3), ("ab", 0), ("b/2", 2)]  # fmt: skip
    assert list(store.list("a")) == [ObjectInfo("a/1", 1), ObjectInfo("a/sub/3", 3)]
    assert list(store.list("a/")) == list(store.list("a"))
    assert list(store.list("missing")) == [] and list(store.list("ab")) == []


def test_scan_names_everything_it_does_not_read(store, tmp_path):
    store.put_bytes("d/ok", b"x")
    (store.root / "d" / ".part-abc").write_bytes(b"half")
    (store.root / "d" / "link").symlink_to(store.root / "d" / "ok")
    os.mkfifo(store.root / "d" / "fifo")
    (store.root / "d" / "empty").mkdir()
    found, skipped = store.scan("d")
    assert found == [ObjectInfo("d/ok", 1)]
    assert skipped == [
        Skipped("d/.part-abc", "an unfinished write (.part-*)"),
        Skipped("d/fifo", "FIFO: not read"),
        Skipped("d/link", "symbolic link: not read"),
    ]


def test_scan_does_not_follow_a_linked_prefix(store, tmp_path):
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    (tmp_path / "elsewhere" / "deeper" / "secret").write_bytes(b"x")
    store.root.mkdir(parents=True)
    (store.root / "in").symlink_to(tmp_path / "elsewhere")
    assert store.scan("in") == ([], [Skipped("in", "symbolic link: not followed")])
    assert store.scan("in/") == ([], [Skipped("in", "symbolic link: not followed")])
    assert store.scan("in/deeper") == (
        [], [Skipped("in/deeper", "reached through a symbolic link: not followed")])  # fmt: skip


def test_scan_of_a_file_or_nothing_is_empty(store):
    store.put_bytes("f", b"x")
    assert store.scan("f") == ([], []) and store.scan("none") == ([], [])


def test_kinds_of_file_are_named():
    assert local_module._kind(stat.S_IFLNK) == "symbolic link"
    assert local_module._kind(stat.S_IFDIR) == "folder"
    assert local_module._kind(stat.S_IFREG) == "file"
    assert local_module._kind(stat.S_IFIFO) == "FIFO"
    assert local_module._kind(stat.S_IFCHR) == "special file"
    assert local_module._kind(stat.S_IFSOCK) == "special file"


def test_delete_removes_one_file_and_a_missing_one_is_no_error(store):
    store.put_bytes("a/1", b"x")
    store.put_bytes("a/2", b"x")
    store.delete("a/1")
    store.delete("a/1")
    assert files(store.root) == ["a/2"]


def test_delete_through_a_linked_folder_is_refused(store, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep").write_bytes(b"x")
    store.root.mkdir(parents=True)
    (store.root / "in").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError) as e:
        store.delete("in/keep")
    assert str(e.value) == f"{store.uri('in/keep')}: reached through a symbolic link; not deleted"
    assert (tmp_path / "elsewhere" / "keep").exists()


def test_empty_folders_go_up_to_the_root_and_no_further(store):
    store.put_bytes("runs/r1/a/b/x", b"x")
    store.put_bytes("runs/keep", b"x")
    (store.root / "runs" / "r1" / "empty" / "deeper").mkdir(parents=True)
    store.delete("runs/r1/a/b/x")
    assert store.remove_empty_folders("runs/r1") == 5  # deeper, empty, b, a, r1
    assert not (store.root / "runs" / "r1").exists() and (store.root / "runs").is_dir()
    store.delete("runs/keep")
    assert store.remove_empty_folders("runs") == 1
    assert store.root.is_dir() and not any(store.root.iterdir())
    assert store.remove_empty_folders("") == 0  # the root itself stays


def test_the_folders_a_removal_leaves_empty_above_the_prefix_go_too(store):
    store.put_bytes("x/y/z/f", b"x")
    store.put_bytes("x/keep", b"x")
    store.delete("x/y/z/f")
    assert store.remove_empty_folders("x/y/z") == 2  # z, then y; x holds keep
    assert files(store.root) == ["x/keep"]
    assert store.remove_empty_folders("x/none") == 0  # nothing there: nothing removed


def test_a_folder_that_is_not_empty_or_is_linked_stays(store, tmp_path):
    store.put_bytes("a/x", b"x")
    assert store.remove_empty_folders("a") == 0
    (tmp_path / "elsewhere" / "empty").mkdir(parents=True)
    (store.root / "in").symlink_to(tmp_path / "elsewhere")
    assert store.remove_empty_folders("in") == 0
    assert (tmp_path / "elsewhere" / "empty").is_dir()


def test_a_folder_that_cannot_be_removed_is_not_counted(store, monkeypatch):
    (store.root / "a" / "b").mkdir(parents=True)

    def refuse(self):
        raise OSError(39, "Directory not empty")  # filled between the check and the removal

    monkeypatch.setattr(Path, "rmdir", refuse)
    assert store.remove_empty_folders("a") == 0


def test_a_folder_that_became_a_file_is_left_alone(store):
    """Each folder is checked just before its removal: what is no longer a folder stays."""
    store.put_bytes("a/was-a-folder", b"x")
    assert store._rmdir_if_empty(store.root / "a" / "was-a-folder") is False
    assert files(store.root) == ["a/was-a-folder"]
