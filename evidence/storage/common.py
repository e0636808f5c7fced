"""What every object store shares: keys, limits, values and the streaming reader.

Keys are content addresses built here from a validated prefix and a validated
SHA-256; staging names are built from validated upload ids. Nothing a client
sends is ever used as a path or an object name.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal

from evidence.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from evidence.storage import StagingStore

Prefix = Literal["originals", "derived"]
PREFIXES: Final[tuple[Prefix, ...]] = ("originals", "derived")

MiB: Final = 1024 * 1024

# Largest chunk a reader yields: streaming memory stays bounded whatever the object size.
CHUNK_SIZE: Final = 1 * MiB
# Default size of an upload part: S3 allows 10,000 parts, so 8 MiB parts reach 78 GiB.
DEFAULT_PART_SIZE: Final = 8 * MiB
# S3's own limits on multipart uploads (every part but the last at least 5 MiB).
S3_MIN_PART_SIZE: Final = 5 * MiB
S3_MAX_PART_SIZE: Final = 5 * 1024 * MiB
MAX_PARTS: Final = 10_000

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_CONTENT_KEY = re.compile(
    r"(?P<prefix>originals|derived)/sha256/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/(?P<hex>[0-9a-f]{64})"
)


def check_sha256(sha256: str) -> str:
    """`sha256` if it is 64 lower-case hex digits, else `InvalidInput`."""
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise InvalidInput("a SHA-256 must be 64 lower-case hex digits")
    return sha256


def check_upload_id(upload_id: str) -> str:
    """`upload_id` if it is 32 lower-case hex digits, else `InvalidInput`."""
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise InvalidInput("an upload id must be 32 lower-case hex digits")
    return upload_id


def content_key(prefix: str, sha256: str) -> str:
    """The content address of an object: ``<prefix>/sha256/<h[0:2]>/<h[2:4]>/<h>``.

    `prefix` is ``originals`` (what devices uploaded) or ``derived`` (review
    copies, posters); `sha256` is the lower-case hex digest of the object's bytes.
    """
    if prefix not in PREFIXES:
        raise InvalidInput(f"an object prefix must be one of {', '.join(PREFIXES)}")
    h = check_sha256(sha256)
    return f"{prefix}/sha256/{h[0:2]}/{h[2:4]}/{h}"


def parse_content_key(key: str) -> tuple[Prefix, str]:
    """The prefix and SHA-256 of a content address; `InvalidInput` for anything else."""
    match = _CONTENT_KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None or match["a"] != match["hex"][0:2] or match["b"] != match["hex"][2:4]:
        raise InvalidInput("not an object key: expected <originals|derived>/sha256/ab/cd/<hex>")
    prefix: Prefix = "originals" if match["prefix"] == "originals" else "derived"
    return prefix, match["hex"]


def check_key_for(key: str, sha256: str) -> None:
    """`InvalidInput` unless `key` is the content address of `sha256`."""
    check_sha256(sha256)
    if parse_content_key(key)[1] != sha256:
        raise InvalidInput("the object key is not the content address of the given SHA-256")


def check_range(start: int, end: int | None, size: int) -> tuple[int, int]:
    """The byte range ``[start, end)`` of an object of `size` bytes, checked.

    `end` None means the end of the object. `InvalidInput` unless
    ``0 <= start <= end <= size``; an empty range is allowed.
    """
    stop = size if end is None else end
    if isinstance(start, bool) or isinstance(stop, bool):
        raise InvalidInput("a byte range is two whole numbers")
    if not 0 <= start <= stop <= size:
        raise InvalidInput(f"byte range [{start}, {stop}) is outside the object of {size} bytes")
    return start, stop


def check_part(part_number: int, data: bytes | bytearray, part_size: int) -> None:
    """`InvalidInput` unless `part_number` is in range and `data` is 1 to `part_size` bytes."""
    if isinstance(part_number, bool) or not 0 <= part_number < MAX_PARTS:
        raise InvalidInput(f"a part number is 0 to {MAX_PARTS - 1}")
    if not 0 < len(data) <= part_size:
        raise InvalidInput(f"a part holds 1 to {part_size} bytes, not {len(data)}")


def part_lengths(size: int, part_size: int) -> list[int]:
    """The length of each part of an upload of `size` bytes (all full but the last)."""
    if isinstance(size, bool) or size < 0:
        raise InvalidInput("an upload size is a whole number of bytes")
    count = -(-size // part_size)
    if count > MAX_PARTS:
        raise InvalidInput(f"an upload has at most {MAX_PARTS} parts of {part_size} bytes")
    return [min(part_size, size - i * part_size) for i in range(count)]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Retention:
    """An object lock on a stored object: `mode` (``COMPLIANCE`` or ``GOVERNANCE``)
    until `until` (UTC)."""

    mode: str
    until: datetime


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about a stored object: its size and its lock, if any."""

    size: int
    retention: Retention | None = None


@dataclass(frozen=True)
class StagedUpload:
    """An upload found in staging: in progress (parts arriving) or complete (assembled).

    `handle` is what `stage_begin` returned for it (needed by `stage_abort`);
    `since` is when it began (in progress) or was assembled (complete), UTC.
    `upload_id` is None for an upload staged at its content key: the store
    cannot tell its upload id, and the handle alone names it.
    """

    upload_id: str | None
    handle: str
    complete: bool
    since: datetime


class ObjectStream(Iterator[bytes]):
    """The bytes of an object, in chunks of at most `CHUNK_SIZE`.

    Opened (and checked for existence and range) before it is returned, so
    errors come from the `read` call itself, not from the first chunk. Close
    it (or use it in a ``with`` block) when stopping early; it closes itself
    once exhausted. Errors while streaming are `StorageUnavailable`.
    """

    def __init__(self, chunks: Iterator[bytes], close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._close: Callable[[], None] | None = close

    def __iter__(self) -> ObjectStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            close()

    def __enter__(self) -> ObjectStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def empty_stream() -> ObjectStream:
    return ObjectStream(iter(()), lambda: None)


def receipts_count_matches(receipts: Sequence[str], lengths: Sequence[int]) -> None:
    if len(receipts) != len(lengths):
        raise InvalidInput(
            f"an upload of this size has {len(lengths)} parts, but {len(receipts)} receipts"
            " were given"
        )


def complete_then_commit(
    store: StagingStore,
    upload_id: str,
    handle: str,
    receipts: Sequence[str],
    size: int,
    key: str,
    sha256: str,
    *,
    retain: bool,
) -> bool:
    """`stage_finish` for an upload staged where it can be completed and read first."""
    check_key_for(key, sha256)
    with contextlib.suppress(NotFound):  # committed before: stage_commit says so
        store.stage_complete(upload_id, handle, receipts, size)
    return store.stage_commit(upload_id, key, sha256, size, retain=retain)
