"""The object store: where evidence bytes live, written once under their content address.

Two ports: `ObjectStore` (objects: what content, review copies and exports use)
and `StagingStore`, which adds the resumable staging of uploads that only ingest
uses. Two production implementations, each of both:

- `evidence.storage.local.LocalStore`: a directory (the embedded default,
  ``<data dir>/objects``): exclusive create by hard-linking a complete,
  fsync'd file into place, fsync of every directory touched, originals 0444;
- `evidence.storage.s3.S3Store`: any S3-compatible service (AWS S3, MinIO,
  Ceph RGW) through boto3: ``If-None-Match: *`` on writes, multipart staging,
  object lock in compliance mode for originals where the bucket has it.

Every method blocks (disk or network): call them from a worker thread, never
on the event loop. One contract test suite (``tests/storage``) runs against
both. See ``docs/decisions/0007-object-store.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from evidence.storage.common import (
    CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    MAX_PARTS,
    PREFIXES,
    S3_MIN_PART_SIZE,
    ObjectInfo,
    ObjectStream,
    Prefix,
    Retention,
    StagedUpload,
    check_sha256,
    check_upload_id,
    content_key,
    parse_content_key,
)

if TYPE_CHECKING:
    from evidence.settings import Settings

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_PART_SIZE",
    "MAX_PARTS",
    "PREFIXES",
    "S3_MIN_PART_SIZE",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStream",
    "Prefix",
    "Retention",
    "StagedUpload",
    "StagingStore",
    "check_sha256",
    "check_upload_id",
    "content_key",
    "open_store",
    "parse_content_key",
]


class ObjectStore(Protocol):
    """Write-once, content-addressed storage of evidence objects.

    What everything but ingest needs (content, review copies, exports);
    ingest's resumable staging is `StagingStore`.

    **Keys** are content addresses made by `content_key` (``originals/sha256/ab/cd/<hex>``
    or ``derived/...``); every method taking a key raises `InvalidInput` for
    anything else (``../x``, upper-case or short hex, an unknown prefix).
    **Upload ids** name staged uploads and are 32 lower-case hex digits
    (`InvalidInput` otherwise); a client-supplied name is never a path.

    **Write-once.** An object, once created under its key, is never
    overwritten by this interface: writing the same bytes again is accepted
    and reported (False), writing different bytes is an `IntegrityError`.

    **Retention.** ``retain=True`` marks an original: where the store has
    object lock (S3 with a lock-enabled bucket) it is written in compliance
    mode until now + the configured retention; the local store makes it
    read-only (0444). `delete` of an object under retention is `Forbidden`.

    **Errors.** `StorageUnavailable` when the store cannot be reached or fails
    (retry later: HTTP 503), `NotFound`, `InvalidInput`, `IntegrityError`,
    `Forbidden`, `Conflict`, all from `evidence.errors`.

    **Threads.** Every method blocks; run it in a worker thread. A store may
    be used from many threads at once.
    """

    def check(self) -> None:
        """Return if the store can be used now; else raise `StorageUnavailable` saying why.

        For health checks, and to answer uploads with 503 + Retry-After early.
        """
        ...

    def put(self, key: str, data: bytes, sha256: str, *, retain: bool) -> bool:
        """Store a small object held in memory under `key`, write-once.

        `IntegrityError` if SHA-256(`data`) is not `sha256` (nothing is stored),
        `InvalidInput` if `key` is not the content address of `sha256`.
        True when the object was created; False when it already existed with
        the same bytes (idempotent); `IntegrityError` when it exists with other
        bytes (the stored object is left as it is). Durable when it returns.
        """
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and retention of the object at `key`, or None when there is none."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        """Stream bytes ``[start, end)`` of the object (`end` None: to its end).

        Chunks of at most `CHUNK_SIZE` bytes; memory does not grow with the
        object. `NotFound` if there is no object, `InvalidInput` unless
        ``0 <= start <= end <= size`` (raised by this call, before any chunk).
        """
        ...

    def delete(self, key: str) -> bool:
        """Remove the object at `key` (every stored version of it). False if there was none.

        `Forbidden` when it is under retention (object lock or legal hold):
        then nothing is removed.
        """
        ...

    def retain(self, key: str) -> None:
        """Put the object at `key` under retention as an original (see Retention above).

        For an object committed with ``retain=False`` whose content was checked
        afterwards. Idempotent. `NotFound` if there is no object.
        """
        ...

    def close(self) -> None:
        """Release connections. The store is not used afterwards."""
        ...


class StagingStore(ObjectStore, Protocol):
    """An `ObjectStore` that also stages uploads: what ingest needs, and only ingest.

    An upload arrives in parts of `part_size` bytes (the last may be shorter),
    possibly over several requests to several server processes; each part is
    durable once `stage_part` returns. When complete, the staged object is
    committed under its content address without copying it through the server.
    Where the parts wait differs by store, and ingest must know it (see
    `stage_readable`): beside the objects (local: they can be read, hashed and
    checked before they reach their key) or at the object's key itself (S3's
    multipart upload: nothing is copied, but nothing can be read before it is
    finished there, and a lost multipart upload loses every part).
    """

    part_size: int
    """Size in bytes of every staged part except the last (which may be shorter)."""

    def stage_begin(self, upload_id: str, key: str | None = None) -> str:
        """Start staging the upload `upload_id`; return a handle to keep with the upload.

        The handle is passed back to `stage_part`, `stage_complete`,
        `stage_finish` and `stage_abort` (S3: names the multipart upload; local:
        ""). With `key`, the content address the upload is expected to end at,
        a store may stage the parts at that key itself (S3 does), so that
        `stage_finish` assembles them there without a copy; `stage_readable`
        then says False: such an upload cannot be read before it is finished.
        `Conflict` if `upload_id` is already staged.
        """
        ...

    def stage_readable(self, handle: str) -> bool:
        """Whether the upload can be completed and read (`stage_complete`, `stage_read`)
        before it is committed; False when it is staged at its content key."""
        ...

    def stage_part(
        self, upload_id: str, handle: str, part_number: int, data: bytes | bytearray
    ) -> str:
        """Store part `part_number` (from 0) of the upload: bytes at ``part_number * part_size``.

        `data` is `part_size` bytes, or fewer for the last part. Durable when
        it returns. Returns a receipt to pass to `stage_complete`. Sending a
        part again (a retry) replaces it; the same bytes give the same receipt.
        `NotFound` if the upload is not being staged (never begun, completed or
        aborted).
        """
        ...

    def stage_complete(
        self, upload_id: str, handle: str, receipts: Sequence[str], size: int
    ) -> None:
        """Assemble the staged parts into one object of `size` bytes.

        `receipts[i]` is what `stage_part` returned for part i; there must be
        one for each part an upload of `size` bytes has. `InvalidInput` if the
        staged parts do not make exactly `size` bytes or do not match the
        receipts (the parts stay staged: send the missing ones, or abort).
        Completing an already completed upload of that size does nothing.
        """
        ...

    def stage_read(self, upload_id: str, start: int = 0, end: int | None = None) -> ObjectStream:
        """Stream bytes ``[start, end)`` of the completed staged object, as `read` does.

        To hash it again after an interruption, or to look inside it before
        committing. `NotFound` unless the upload is complete and not yet
        committed; `InvalidInput` for a range outside it.
        """
        ...

    def stage_commit(
        self, upload_id: str, key: str, sha256: str, size: int, *, retain: bool
    ) -> bool:
        """Move the completed staged object to `key`, write-once, and clear the staging.

        `sha256` and `size` are the staged object's, as the caller computed
        them while staging (or with `stage_read`): the store checks the size
        and that `key` is the content address of `sha256`, but does not hash
        the bytes again. True when the object was created; False when an
        object of that size already was at `key` (the same bytes from another
        upload: it is stored once, and this staging is removed). `IntegrityError`
        if the staged object or the existing one has another size (nothing
        is overwritten or removed). A retry after a commit that succeeded
        returns False. `NotFound` if nothing is staged or stored.
        """
        ...

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
        """Assemble the staged parts as the object at `key`, write-once: complete and commit in one.

        Only for a caller that has checked the SHA-256 of every staged byte
        (the store checks sizes and the key, not the hash): this is how an
        upload staged at its content key (`stage_readable` False) is finished.
        True when the object was created. False when an object of `size` bytes
        was already at `key` (a retry, or the same bytes from another upload);
        the staged parts are then left for `stage_abort`. `InvalidInput` for
        parts that do not match the receipts, `IntegrityError` for an existing
        object of another size, `NotFound` if nothing is staged or stored.
        """
        ...

    def stage_abort(self, upload_id: str | None, handle: str) -> None:
        """Remove everything staged for the upload (never a committed object). Idempotent.

        `upload_id` may be None only for an upload staged at its content key
        (as `stage_list` reports those): its handle names it.
        """
        ...

    def stage_list(self) -> list[StagedUpload]:
        """Every upload in staging (at content keys too), so that abandoned ones can be aborted."""
        ...


def open_store(settings: Settings) -> StagingStore:
    """The object store the settings name: ``local`` under ``<data dir>/objects``, or ``s3``."""
    if settings.store == "s3":
        from evidence.storage.s3 import S3Store

        if settings.s3_bucket is None:  # Settings.load refuses this; keep mypy honest
            raise ValueError("EVIDENCE_S3_BUCKET is required for the s3 store")
        return S3Store(
            settings.s3_bucket,
            settings.s3_endpoint_url,
            settings.s3_retention_days,
            region=settings.s3_region,
        )
    from evidence.storage.local import LocalStore

    return LocalStore(settings.data_dir / "objects")
