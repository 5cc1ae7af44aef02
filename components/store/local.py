"""LocalStore: a folder standing in for a bucket, for laptop runs and tests.

Apart from S3Store because almost all of it is about the file system: writes made atomic by a
rename (or a hard link, for an exclusive create), and reads, listings and deletes that never
follow a symbolic link or open a FIFO, and never reach outside the root.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat as stat_module
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components.common.provenance import sha256_file
from components.store.base import _CHUNK, AlreadyExists, ObjectInfo, Skipped, StoreError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once, at import: os.umask can only be read by setting it


def _os_errors(method):
    """A LocalStore method whose OSError (a full disk, a folder it may not write) becomes a
    StoreError naming the object: the one error family a step reports in one line."""

    @functools.wraps(method)
    def wrapper(self, key: str, *args, **kwargs):
        try:
            return method(self, key, *args, **kwargs)
        except OSError as e:
            why = e.strerror or type(e).__name__
            raise StoreError(f"{self.uri(key)}: {why}") from None

    return wrapper


class LocalStore:
    """A folder standing in for a bucket: the embedded default for laptop runs.

    Like a bucket it holds only regular files: symbolic links, FIFOs and other special files are
    never followed or read (`scan` names them as skipped), and nothing is read or written outside
    the root. Files are created with the mode the umask gives, as any other program would.
    """

    def __init__(self, root: Path):
        self.root = _resolved(root, str(root))

    def uri(self, key: str = "") -> str:
        return str(self.root / key)  # the root itself for "": a Path joined with "" is unchanged

    def _path(self, key: str) -> Path:
        # normpath, not resolve(): this runs for every image read, and resolve() costs a
        # system call per path component. A key still cannot climb out of the root.
        path = os.path.normpath(os.path.join(self.root, key))
        inside = str(self.root).rstrip(os.sep) + os.sep  # the root may be "/" itself
        if path != str(self.root) and not path.startswith(inside):
            raise StoreError(f"key {key!r} is outside the store {self.root}")
        return Path(path)

    def _contained(self, path: Path, key: str) -> Path:
        """`path` if its real location, links resolved, is still inside the root."""
        real = _resolved(path, self.uri(key))
        if real != self.root and self.root not in real.parents:
            raise StoreError(f"{self.uri(key)} leads outside the store through a symbolic link")
        return path

    @_os_errors
    def put_file(
        self, key: str, src: str | os.PathLike, sha256: str | None = None, exclusive: bool = False
    ) -> None:
        with open(src, "rb") as f:
            self._write(key, lambda tmp: shutil.copyfileobj(f, tmp, _CHUNK), exclusive)

    @_os_errors
    def put_bytes(self, key: str, data: bytes, exclusive: bool = False) -> None:
        self._write(key, lambda tmp: tmp.write(data), exclusive)

    def _write(self, key: str, fill, exclusive: bool = False) -> None:
        """Write beside the destination and rename, so a reader never sees half a file.

        With `exclusive` the rename is a hard link, which fails if the name is taken: the
        folder's counterpart of S3's `If-None-Match: *`.
        """
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._contained(dest.parent, key)
        tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".part-", delete=False)  # noqa: SIM115 - closed below, removed on failure
        try:
            with tmp:
                fill(tmp)
                os.fchmod(tmp.fileno(), 0o666 & ~_UMASK)  # not mkstemp's 0600
            if not exclusive:
                os.replace(tmp.name, dest)
                return
            try:
                os.link(tmp.name, dest)
            except FileExistsError:
                raise AlreadyExists(f"{self.uri(key)} already exists; not overwriting it") from None
            os.unlink(tmp.name)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise

    def _open(self, key: str):
        """Open a regular file for reading: never a link, and never block on a FIFO."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise StoreError(f"no object {self.uri(key)}") from None
        except OSError as e:
            why = "is a symbolic link" if e.errno == errno.ELOOP else e.strerror
            raise StoreError(f"{self.uri(key)}: {why}") from None
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StoreError(f"{self.uri(key)}: not a regular file")
        return open(fd, "rb")

    @_os_errors
    def get_file(self, key: str, dest: str | os.PathLike) -> None:
        with self._open(key) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)

    @_os_errors
    def get_bytes(self, key: str) -> bytes:
        with self._open(key) as f:
            return f.read()

    @_os_errors
    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if path.is_symlink() or not path.is_file():
            return None
        return ObjectInfo(key, path.stat().st_size, sha256_file(path))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, sorted by key (as S3 lists them)."""
        yield from self.scan(prefix)[0]

    def scan(self, prefix: str = "") -> tuple[list[ObjectInfo], list[Skipped]]:
        """The regular files under `prefix`, and what else is there (links, FIFOs...) and why."""
        base = self._path(prefix)
        if base.is_symlink():
            return [], [Skipped(prefix.strip("/"), "symbolic link: not followed")]
        if not base.is_dir():
            return [], []
        if not self._unlinked(base):
            return [], [Skipped(prefix.strip("/"), "reached through a symbolic link: not followed")]
        found, skipped = [], []
        for folder, dirs, names in os.walk(base):
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            for name in sorted(dirs + names):
                key = name if rel == "." else f"{rel}/{name}"
                try:
                    st = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:  # removed or renamed by a writer since the walk
                    continue
                kind = _kind(st.st_mode)
                if kind == "folder":
                    continue
                if name.startswith(".part-"):
                    skipped.append(Skipped(key, "an unfinished write (.part-*)"))
                elif kind == "file":
                    found.append(ObjectInfo(key, st.st_size))
                else:
                    skipped.append(Skipped(key, f"{kind}: not read"))
        return sorted(found, key=lambda o: o.key), sorted(skipped)

    def walk(self, prefix: str = "") -> Iterator[ObjectInfo | Skipped]:
        """`scan` as one stream: the files in key order, then what else is there (the same
        interface as S3Store.walk; a folder is listed whole)."""
        found, skipped = self.scan(prefix)
        yield from found
        yield from skipped

    def _unlinked(self, path: Path) -> bool:
        """Whether `path` is inside the root with no symbolic link on the way to it."""
        return os.path.realpath(path) == str(path)

    @_os_errors
    def delete(self, key: str) -> None:
        """Remove one file; refused when a folder on its path is a link (checked just before)."""
        path = self._path(key)
        if not self._unlinked(path.parent):
            raise StoreError(f"{self.uri(key)}: reached through a symbolic link; not deleted")
        path.unlink(missing_ok=True)

    @_os_errors
    def remove_empty_folders(self, prefix: str) -> int:
        """Remove the empty folders under `prefix`, then those it leaves empty above it, up to
        (not including) the root. Each folder is checked just before its removal: never one
        reached through a symbolic link, never one outside the root. The count removed."""
        top = self._path(prefix)
        if not top.is_dir() or not self._unlinked(top):
            return 0
        removed = 0
        for folder, _, _ in os.walk(top, topdown=False):  # os.walk never enters a linked folder
            removed += self._rmdir_if_empty(Path(folder))
        above = top.parent if not top.exists() else self.root  # kept: its parents are not empty
        while self.root in above.parents and self._rmdir_if_empty(above):
            removed += 1
            above = above.parent
        return removed

    def _rmdir_if_empty(self, path: Path) -> bool:
        if path == self.root or not self._unlinked(path) or not path.is_dir():
            return False
        if any(path.iterdir()):
            return False
        try:
            path.rmdir()  # fails on a link or a folder filled meanwhile
        except OSError:
            return False
        return True


def _resolved(path: Path, where: str) -> Path:
    """`path.resolve()`; a loop of symbolic links, which Python 3.11's resolve() reports as a
    bare RuntimeError, is a StoreError naming `where`."""
    try:
        return path.resolve()
    except RuntimeError:
        raise StoreError(f"{where}: a loop of symbolic links") from None


def _kind(mode: int) -> str:
    if stat_module.S_ISLNK(mode):
        return "symbolic link"
    if stat_module.S_ISDIR(mode):
        return "folder"
    if stat_module.S_ISREG(mode):
        return "file"
    return "FIFO" if stat_module.S_ISFIFO(mode) else "special file"
