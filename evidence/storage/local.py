"""The local object store: a directory on this machine, the embedded default.

Layout under the root (``<data dir>/objects``)::

    originals/sha256/ab/cd/<hex>     an original, mode 0444
    derived/sha256/ab/cd/<hex>       a derived object (review copy, poster), mode 0644
    staging/<upload id>.part         an upload receiving parts, each written in place
    staging/<upload id>.ledger       one line "<part number> <length> ok" per part written
    staging/<upload id>              an upload assembled, waiting to be committed

Every object reaches its name complete: it is written and fsync'd under
another name, then hard-linked into place (which fails if the name exists, so
creation is exclusive), and the directory is fsync'd. A reader, or a crash,
sees the whole object or none; a crash can leave a temporary ``.<hex>.tmp-*``
file beside it, never a partial object under its key. A staged upload is
committed by linking the staging file into place: the bytes are not copied.
The ledger plays the part of S3's ListParts: completing checks that every
part was written, with its length, so a missing part cannot become a hole of
zeros in an object.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from evidence import fsutil
from evidence.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from evidence.storage.common import (
    CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    S3_MAX_PART_SIZE,
    ObjectInfo,
    ObjectStream,
    StagedUpload,
    check_key_for,
    check_part,
    check_range,
    check_upload_id,
    complete_then_commit,
    parse_content_key,
    part_lengths,
    receipts_count_matches,
    sha256_hex,
)

ORIGINAL_MODE: Final = 0o444  # read-only: the closest a plain directory gets to object lock
DERIVED_MODE: Final = 0o644
STAGING_MODE: Final = 0o600
# Below this much free space the store reports itself unavailable: a new upload
# would likely fail part-way, so devices are told to retry later instead.
MIN_FREE_BYTES: Final = 64 * 1024 * 1024

_STAGING_NAME = re.compile(r"(?P<id>[0-9a-f]{32})(?P<part>\.part)?")
# A ledger record. Each is written as "\n<number> <length> ok\n": the leading
# newline parts it from the torn remains of a record cut short by a crash, and a
# record without its "ok" does not count.
_LEDGER_LINE = re.compile(r"(?P<number>[0-9]{1,5}) (?P<length>[0-9]{1,10}) ok")


@contextlib.contextmanager
def _disk(what: str) -> Iterator[None]:
    """Turn an unexpected OSError (disk full, I/O error, permissions) into StorageUnavailable."""
    try:
        yield
    except OSError as exc:
        raise StorageUnavailable(
            f"local object store: {what} failed: {exc.strerror or exc}"
        ) from exc


class LocalStore:
    """`StagingStore` in a local directory (see the module docstring)."""

    def __init__(self, root: Path, part_size: int = DEFAULT_PART_SIZE) -> None:
        if not 0 < part_size <= S3_MAX_PART_SIZE:
            raise ValueError(f"part_size must be 1 to {S3_MAX_PART_SIZE} bytes")
        self.root = Path(root).absolute()
        self.part_size = part_size
        self._staging = self.root / "staging"
        with _disk(f"creating {self._staging}"):
            fsutil.make_dirs(self._staging)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- objects ---------------------------------------------------------------

    def _path(self, key: str) -> Path:
        parse_content_key(key)  # InvalidInput for anything but a content address
        return self.root / key

    def check(self) -> None:
        for directory in (self.root, self._staging):
            if not directory.is_dir():
                raise StorageUnavailable(f"local object store: {directory} is missing")
            if not os.access(directory, os.W_OK | os.X_OK):
                raise StorageUnavailable(f"local object store: {directory} is not writable")
        with _disk("checking free space"):
            fs = os.statvfs(self.root)
        if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            raise StorageUnavailable(f"local object store: {self.root} is (nearly) full")

    def put(self, key: str, data: bytes, sha256: str, *, retain: bool) -> bool:
        check_key_for(key, sha256)
        if sha256_hex(data) != sha256:
            raise IntegrityError("the data's SHA-256 is not the SHA-256 given for it")
        path = self._path(key)
        with _disk("writing an object"):
            # Already there (a retry, or the same bytes again): compare, write nothing.
            # Otherwise an exclusive create, which still settles a race with another writer.
            if not path.exists():
                fsutil.make_dirs(path.parent)
                mode = ORIGINAL_MODE if retain else DERIVED_MODE
                if fsutil.create_exclusive(path, data, mode):
                    return True
            size, digest = _hash_file(path)
        if (size, digest) != (len(data), sha256):
            raise IntegrityError(f"{key} already exists with other content")
        return False

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        with _disk("reading object metadata"):
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
        return ObjectInfo(size=st.st_size)

    def read(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        return _open_stream(self._path(key), start, end, what=key)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        with _disk("deleting an object"):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            fsutil.fsync_dir(path.parent)
        return True

    def close(self) -> None:
        pass

    # -- staging ---------------------------------------------------------------

    def _part_file(self, upload_id: str) -> Path:
        return self._staging / f"{check_upload_id(upload_id)}.part"

    def _ledger_file(self, upload_id: str) -> Path:
        return self._staging / f"{check_upload_id(upload_id)}.ledger"

    def _staged_file(self, upload_id: str) -> Path:
        return self._staging / check_upload_id(upload_id)

    def stage_begin(self, upload_id: str, key: str | None = None) -> str:
        if key is not None:
            parse_content_key(key)  # a directory stages beside its objects whatever the key
        part_file, staged = self._part_file(upload_id), self._staged_file(upload_id)
        with _disk("starting an upload"):
            if staged.exists():
                raise Conflict(f"upload {upload_id} is already staged")
            try:
                fd = os.open(part_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STAGING_MODE)
            except FileExistsError:
                raise Conflict(f"upload {upload_id} is already staged") from None
            os.close(fd)
            # The ledger too, so that both names are durable before any part is.
            os.close(os.open(self._ledger_file(upload_id), os.O_WRONLY | os.O_CREAT, STAGING_MODE))
            fsutil.fsync_dir(self._staging)
        return ""

    def stage_part(
        self, upload_id: str, handle: str, part_number: int, data: bytes | bytearray
    ) -> str:
        part_file = self._part_file(upload_id)
        check_part(part_number, data, self.part_size)
        offset = part_number * self.part_size
        with _disk("writing an upload part"):
            try:
                fd = os.open(part_file, os.O_WRONLY)
            except FileNotFoundError:
                raise NotFound(f"upload {upload_id} is not being staged") from None
            try:
                fsutil.pwrite_all(fd, data, offset)
                if len(data) < self.part_size:
                    # A short part is the last one: cut off whatever an earlier,
                    # longer attempt at it left behind (as S3 replaces a part).
                    os.ftruncate(fd, offset + len(data))
                    os.fsync(fd)
            finally:
                os.close(fd)
            # Only once the bytes are durable (pwrite_all fsyncs) is the part
            # recorded as written, durably (write_all fsyncs; the ledger's name
            # was made durable by stage_begin).
            ledger = os.open(
                self._ledger_file(upload_id),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                STAGING_MODE,
            )
            try:
                fsutil.write_all(ledger, f"\n{part_number} {len(data)} ok\n".encode())
            finally:
                os.close(ledger)
        return f"{part_number}:{len(data)}"

    def _written_parts(self, upload_id: str) -> dict[int, int]:
        """Part number -> length of every part recorded in the ledger (the last record wins)."""
        try:
            text = self._ledger_file(upload_id).read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return {}
        parts: dict[int, int] = {}
        for line in text.split("\n"):
            match = _LEDGER_LINE.fullmatch(line)
            if match is not None:
                parts[int(match["number"])] = int(match["length"])
        return parts

    def stage_complete(
        self, upload_id: str, handle: str, receipts: Sequence[str], size: int
    ) -> None:
        part_file, staged = self._part_file(upload_id), self._staged_file(upload_id)
        lengths = part_lengths(size, self.part_size)
        receipts_count_matches(receipts, lengths)
        for number, (receipt, length) in enumerate(zip(receipts, lengths, strict=True)):
            if receipt != f"{number}:{length}":
                raise InvalidInput(
                    f"receipt {number} does not match part {number} of {length} bytes"
                )
        with _disk("assembling an upload"):
            try:
                fd = os.open(part_file, os.O_RDONLY)
            except FileNotFoundError:
                if _size_of(staged) == size:
                    return  # completed before: a retry
                raise NotFound(f"upload {upload_id} is not being staged") from None
            try:
                staged_size = os.fstat(fd).st_size
                if staged_size != size:
                    raise InvalidInput(f"the staged parts make {staged_size} bytes, not {size}")
                written = self._written_parts(upload_id)
                if len(written) != len(lengths):
                    raise InvalidInput(
                        f"{len(written)} parts are staged, not the {len(lengths)} expected"
                    )
                for number, length in enumerate(lengths):
                    if written.get(number) != length:
                        raise InvalidInput(f"part {number} is missing or not {length} bytes")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(part_file, staged)
            self._ledger_file(upload_id).unlink(missing_ok=True)
            fsutil.fsync_dir(self._staging)

    def stage_read(self, upload_id: str, start: int = 0, end: int | None = None) -> ObjectStream:
        staged = self._staged_file(upload_id)
        return _open_stream(staged, start, end, what=f"completed upload {upload_id}")

    def stage_commit(
        self, upload_id: str, key: str, sha256: str, size: int, *, retain: bool
    ) -> bool:
        staged = self._staged_file(upload_id)
        check_key_for(key, sha256)
        target = self._path(key)
        with _disk("committing an upload"):
            staged_size = _size_of(staged)
            existing = _size_of(target)
            if staged_size is None:
                if existing is None:
                    raise NotFound(f"upload {upload_id} is not staged complete")
                _check_same_size(key, existing, size)
                return False  # committed before: a retry
            if staged_size != size:
                raise IntegrityError(f"upload {upload_id} has {staged_size} bytes, not {size}")
            if existing is not None:
                _check_same_size(key, existing, size)
                self._remove_staged(staged)
                return False
            try:
                fd = os.open(staged, os.O_RDONLY)
                try:
                    os.fchmod(fd, ORIGINAL_MODE if retain else DERIVED_MODE)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                created = fsutil.link_exclusive(staged, target)
            except FileNotFoundError:
                # Another request finishing this upload committed it meanwhile (its
                # staged file went into place): as a retry after the commit would.
                committed = _size_of(target)
                if committed is None:
                    raise NotFound(f"upload {upload_id} is not staged complete") from None
                _check_same_size(key, committed, size)
                return False
            if not created:  # another upload of the same bytes won the race
                _check_same_size(key, _size_of(target), size)
            self._remove_staged(staged)
        return created

    def stage_readable(self, handle: str) -> bool:
        return True

    def stage_finish(
        self,
        upload_id: str,
        handle: str,
        receipts: Sequence[str],
        size: int,
        key: str,
        sha256: str,
        *,
        retain: bool,
    ) -> bool:
        return complete_then_commit(
            self, upload_id, handle, receipts, size, key, sha256, retain=retain
        )

    def retain(self, key: str) -> None:
        path = self._path(key)
        with _disk(f"retaining {key}"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise NotFound(f"no object {key}") from None
            try:
                os.fchmod(fd, ORIGINAL_MODE)
                os.fsync(fd)
            finally:
                os.close(fd)

    def _remove_staged(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)
        fsutil.fsync_dir(self._staging)

    def stage_abort(self, upload_id: str | None, handle: str) -> None:
        if upload_id is None:
            raise InvalidInput("a local upload is named by its upload id")
        names = (
            self._part_file(upload_id),
            self._ledger_file(upload_id),
            self._staged_file(upload_id),
        )
        with _disk("aborting an upload"):
            removed = False
            for path in names:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed = True
            if removed:
                fsutil.fsync_dir(self._staging)

    def stage_list(self) -> list[StagedUpload]:
        found: list[StagedUpload] = []
        with _disk("listing staged uploads"), os.scandir(self._staging) as entries:
            for entry in entries:
                match = _STAGING_NAME.fullmatch(entry.name)
                if match is None:
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue  # committed or aborted meanwhile
                found.append(
                    StagedUpload(
                        upload_id=match["id"],
                        handle="",
                        complete=match["part"] is None,
                        since=datetime.fromtimestamp(mtime, UTC),
                    )
                )
        return sorted(found, key=lambda upload: upload.upload_id or "")


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _check_same_size(key: str, existing: int | None, size: int) -> None:
    if existing != size:
        raise IntegrityError(
            f"{key} already exists with {existing} bytes, not {size}: not overwritten"
        )


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _open_stream(path: Path, start: int, end: int | None, *, what: str) -> ObjectStream:
    with _disk("opening an object"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"{what} not found") from None
    try:
        with _disk("opening an object"):
            size = os.fstat(fd).st_size
        first, stop = check_range(start, end, size)
    except BaseException:
        os.close(fd)
        raise
    return ObjectStream(_pread_chunks(fd, first, stop), lambda: os.close(fd))


def _pread_chunks(fd: int, start: int, stop: int) -> Iterator[bytes]:
    position = start
    while position < stop:
        with _disk("reading an object"):
            chunk = os.pread(fd, min(CHUNK_SIZE, stop - position), position)
        if not chunk:
            raise StorageUnavailable("local object store: an object is shorter than its size")
        position += len(chunk)
        yield chunk
