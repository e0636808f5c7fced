"""Durable file writes: complete or not at all, fsync'd with their directory.

Used for the log's key file, the monitor's state file and, later, the local
object store: every file `evidence` writes for keeps goes through here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd`, then fsync it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def fsync_dir(directory: Path) -> None:
    """Make a created, renamed or linked name in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` exclusively with `mode` and write `data` durably (FileExistsError if there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask or the filesystem's default
        write_all(fd, data)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _temporary_beside(path: Path, data: bytes, mode: int) -> Iterator[Path]:
    """A complete, fsync'd temporary copy of `data` next to `path`, removed afterwards."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        _write_new(tmp, data, mode)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def replace_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(path, data, mode) as tmp:
        os.replace(tmp, path)
    fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` with `data`, complete or not at all; False if it already exists.

    The data is written to a temporary file first and hard-linked into place,
    so a concurrent reader never sees a partly written file; on a filesystem
    without hard links, an exclusive create (still atomic against a second
    creator) is used instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _temporary_beside(path, data, mode) as tmp:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:
                _write_new(path, data, mode)
            except FileExistsError:
                return False
    fsync_dir(path.parent)
    return True


def make_dirs(directory: Path, mode: int = 0o700) -> None:
    """Create `directory` and any missing parents, each new name made durable.

    `Path.mkdir(parents=True)` alone can lose a new directory in a crash: its
    name lives in the parent directory, which must be fsync'd too.
    """
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=mode)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue  # made by a concurrent caller, who makes it durable
        fsync_dir(path.parent)


def pwrite_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    """Write every byte of `data` to `fd` at `offset` (not at the file position), then fsync."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
    os.fsync(fd)


def link_exclusive(source: Path, target: Path) -> bool:
    """Give the file `source` the further name `target`; False if `target` already exists.

    Nothing is copied: the new name points at the same, already durable, data,
    so a reader of `target` sees the whole file or no file. `target`'s
    directory is created if needed and fsync'd so that the new name survives a
    crash. Needs a filesystem with hard links (every local POSIX one).
    """
    make_dirs(target.parent)
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    fsync_dir(target.parent)
    return True
