"""Ingest: from a device's signed manifest and bytes to a committed item and its receipt.

The order of events is what makes an item trustworthy:

1. At creation, before any byte: the device is enrolled and not revoked, the
   manifest is canonical and complete, its signature verifies with the
   device's key, the case exists, the declared length is the manifest's size
   and within the limit, and the kind may have that media type.
2. While bytes arrive: they are staged in the object store in fixed-size
   parts (S3: at the content address the manifest names, as a multipart
   upload that nothing can read until it is completed); the bytes after the
   last whole part (the tail) are kept in the database. The offset an upload
   reports counts only bytes that are durable in one or the other, so any
   server process can resume it. The SHA-256 is carried over each part as it
   is staged and saved with it, so a process that resumes an upload carries
   it on without reading anything back (where OpenSSL cannot be loaded, the
   hash lives in memory, and a process that did not see every byte re-reads
   the staged object once at the end). docs/decisions/0009.
3. At completion: the SHA-256 must equal the manifest's before anything
   reaches the content address; the content must be what the manifest says
   (checked as it streamed, in memory, on the staged object, or, for an
   upload staged at its content address, on the completed object before it
   is locked); only then is the object locked where the store has object
   lock, and only after that is `item.ingested` appended to the custody log,
   in one transaction with the item's row, the upload's completion and the
   review-copy job.

Any refusal leaves nothing behind: no entry, no item, staging removed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from evidence.batching import Batcher
from evidence.cases.records import RecordItem, SignedManifest, ingested_index
from evidence.cases.registry import case_exists
from evidence.cases.tables import items
from evidence.chain import manifest as mf
from evidence.chain.entries import ItemIngested
from evidence.chain.receipt import make_receipt
from evidence.clock import Clock, format_time, stored_utc
from evidence.db import Database
from evidence.devices.assignments import actor_for_device
from evidence.devices.registry import Device, authenticate_devices
from evidence.errors import (
    ChecksumMismatch,
    Conflict,
    Disconnected,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    TooLarge,
    VerificationError,
)
from evidence.ingest import hashing
from evidence.ingest.staging import PartStager
from evidence.ingest.tables import upload_parts, uploads
from evidence.log.custody import CustodyLog
from evidence.media import probe
from evidence.people.policy import is_allowed
from evidence.review.queue import QueueReviewCopy
from evidence.storage import StagingStore, parse_content_key
from evidence.storage.rangefile import RangeFile, ReadRange

log = structlog.get_logger(__name__)

UPLOAD_ID_BYTES = 16
ED25519_SIGNATURE_SIZE = 64


@dataclass(frozen=True)
class _Stream:
    """The SHA-256 and the streaming content check over an upload's staged parts: [0, offset).

    Each staged part gives a new `_Stream` (`after`); its state is saved with
    the part (`saved`), so that any process can carry the upload on without
    reading back what is staged (`restore`). A hasher that cannot be saved
    (no OpenSSL to load) lives only in the receiving process's memory.
    """

    hasher: hashing.Hasher
    check: probe.StreamCheck | None
    offset: int

    @classmethod
    def start(cls, media_type: str, *, resumable: bool) -> _Stream:
        hasher = hashing.new_hasher(resumable=resumable)
        return cls(hasher, probe.StreamCheck.for_type(media_type), 0)

    def after(self, data: bytes | bytearray) -> _Stream:
        """This stream carried on over `data` (this one is left as it is)."""
        hasher = self.hasher.copy()
        hasher.update(data)
        check = None
        if self.check is not None:
            check = self.check.copy()
            check.update(data)
        return _Stream(hasher, check, self.offset + len(data))

    def saved(self) -> str | None:
        state = hashing.export_state(self.hasher)
        if state is None:
            return None
        check = None if self.check is None else self.check.saved()
        return json.dumps({"offset": self.offset, "sha256": state, "check": check})

    @classmethod
    def restore(cls, saved: str, media_type: str) -> _Stream:
        try:
            state = json.loads(saved)
            hasher = hashing.ResumableSha256.restore(state["sha256"])
            check = probe.StreamCheck.for_type(media_type)
            if check is not None:
                check = probe.StreamCheck.restore(state["check"])
            if hasher.length != state["offset"]:
                raise ValueError("the saved hash does not cover the saved offset")
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IntegrityError(f"an upload's saved hash state is damaged: {exc}") from exc
        return cls(hasher, check, hasher.length)


@dataclass(frozen=True)
class Limits:
    max_upload_size: int = 64 << 30  # one long recording, generously
    max_item_size: int = 32 << 20  # POST /api/v1/items, held in memory
    upload_ttl: dt.timedelta = dt.timedelta(days=7)  # a device may be offline for days


@dataclass(frozen=True)
class UploadStatus:
    id: str
    offset: int
    length: int
    expires_at: dt.datetime
    complete: bool


class Ingest:
    def __init__(
        self,
        db: Database,
        log_: CustodyLog,
        store: StagingStore,
        clock: Clock,
        key_for: Callable[[str], str],
        limits: Limits | None = None,
    ) -> None:
        self.db = db
        self.log = log_
        self.store = store
        self.clock = clock
        self.key_for = key_for  # sha256 hex -> content-addressed key of an original
        self.limits = limits or Limits()
        # Save the hash state with each part (where OpenSSL can be loaded): then
        # uploads are staged straight at their content address where the store
        # can, and any process resumes them without reading anything back.
        self.resumable = hashing.AVAILABLE
        # upload id -> the stream over its staged parts as this process last saw
        # it; without a saved state, lost on restart (the staged object is then
        # re-read once at the end instead).
        self._streams: dict[str, _Stream] = {}
        # Many requests' work in one hand-over to a worker thread (evidence.batching).
        self._authenticate = Batcher(partial(authenticate_devices, db))
        self._small = Batcher(self._check_and_store)

    async def close(self) -> None:
        """Finish the requests already taken (before the database and store close)."""
        await self._authenticate.close()
        await self._small.close()

    # -- who is asking ------------------------------------------------------------

    async def device(self, authorization: str | None) -> Device:
        """The device an ``Authorization`` header names (`authenticate_device`), batched."""
        return await self._authenticate(authorization)

    # -- creation -------------------------------------------------------------------

    def check_manifest(
        self, device: Device, manifest_text: bytes, signature: bytes, length: int
    ) -> mf.CaptureManifest:
        """Everything that can be checked before a byte of content arrives."""
        manifest = self._check_signed(device, manifest_text, signature, length)
        with self.db.read() as conn:
            _check_may_upload(conn, device, manifest)
        return manifest

    def _check_signed(
        self, device: Device, manifest_text: bytes, signature: bytes, length: int
    ) -> mf.CaptureManifest:
        """What `check_manifest` checks without the database: the manifest, its signature
        by `device`, its size (`length`, and the limit) and the media type its kind may have."""
        manifest = mf.parse_manifest(manifest_text)
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise VerificationError("the signature must be 64 bytes (Ed25519)")
        if manifest.device != device.id:
            raise Forbidden("the manifest names another device than the token's")
        mf.verify_manifest_signature(manifest_text, signature, device.verifier)
        if length != manifest.size:
            raise InvalidInput(f"Upload-Length {length} is not the manifest's size {manifest.size}")
        if manifest.size > self.limits.max_upload_size:
            raise TooLarge(
                f"{manifest.size} bytes is over the limit of {self.limits.max_upload_size}"
            )
        probe.check_declared_type(manifest.kind, manifest.media_type)
        return manifest

    async def create(
        self, device: Device, manifest_text: bytes, signature: bytes, length: int
    ) -> UploadStatus:
        manifest = await asyncio.to_thread(
            self.check_manifest, device, manifest_text, signature, length
        )
        upload_id = secrets.token_hex(UPLOAD_ID_BYTES)
        item = mf.item_id(manifest_text)
        now = self.clock()
        existing = await asyncio.to_thread(self._ingested_entry, item)
        handle = ""
        if existing is None:
            # With a saved hash the upload can be staged at its content address
            # (S3: no copy at the end); it is completed there only once its
            # SHA-256 is known to be the manifest's.
            key = self.key_for(manifest.sha256) if self.resumable else None
            handle = await asyncio.to_thread(self.store.stage_begin, upload_id, key)
        row: dict[str, Any] = {
            "id": upload_id,
            "device_id": device.id,
            "item_id": item,
            "manifest": manifest_text,
            "signature": signature,
            "length": manifest.size,
            "offset": manifest.size if existing is not None else 0,
            "parts": "[]",
            "tail": b"",
            "stage_handle": handle,
            "sha256": manifest.sha256,
            "writer": None,
            "state": "complete" if existing is not None else "receiving",
            "entry": existing,
            "created_at": now,
            "expires_at": now + self.limits.upload_ttl,
        }
        await asyncio.to_thread(self._insert_upload, row)
        if manifest.size == 0 and existing is None:  # nothing to wait for
            status = await self.receive(device, upload_id, 0, _one_chunk(b""))
            return UploadStatus(upload_id, 0, 0, row["expires_at"], status.complete)
        log.info(
            "upload.created",
            upload=upload_id,
            item=item,
            device=device.id,
            size=manifest.size,
            already_ingested=existing is not None,
        )
        return UploadStatus(
            upload_id, row["offset"], manifest.size, row["expires_at"], existing is not None
        )

    async def create_with_upload(
        self,
        device: Device,
        manifest_text: bytes,
        signature: bytes,
        length: int,
        body: AsyncIterator[bytes],
        checksum: bytes | None = None,
    ) -> UploadStatus:
        """Create an upload and take its first bytes in the same request (`create`, `receive`).

        A refusal of those bytes (too many, a wrong checksum, a body that cannot
        be read, content that is not what the manifest says, the store down)
        refuses the creation: the client is never told where the upload is, so
        nothing of it is left (no row, no part, no staged byte).
        """
        status = await self.create(device, manifest_text, signature, length)
        if status.complete:
            return status
        try:
            return await self.receive(device, status.id, 0, body, checksum)
        except Exception:
            row = await asyncio.to_thread(self._load_any, status.id)
            if row is not None and row.state == "receiving":
                await self._discard(row)
            raise

    def _insert_upload(self, row: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(uploads.insert().values(**row))

    def _ingested_entry(self, item: str) -> int | None:
        with self.db.read() as conn:
            return ingested_index(conn, item)

    # -- state ----------------------------------------------------------------------

    def _load(self, device: Device, upload_id: str) -> Any:
        with self.db.read() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None or row.device_id != device.id:
            raise NotFound(f"no upload {upload_id}")  # another device's upload is not its business
        if row.state == "receiving" and stored_utc(row.expires_at) <= self.clock():
            raise NotFound(f"upload {upload_id} has expired")
        return row

    async def status(self, device: Device, upload_id: str) -> UploadStatus:
        row = await self._finish_if_ready(await asyncio.to_thread(self._load, device, upload_id))
        return UploadStatus(
            row.id, row.offset, row.length, stored_utc(row.expires_at), row.state == "complete"
        )

    # -- receiving ------------------------------------------------------------------

    async def receive(
        self,
        device: Device,
        upload_id: str,
        offset: int,
        body: AsyncIterator[bytes],
        checksum: bytes | None = None,
    ) -> UploadStatus:
        """Take the bytes of one PATCH at `offset`; finish the upload when they complete it.

        Whole parts are made durable as they fill, and the offset recorded with
        each; when the body ends or breaks off, the remaining bytes are kept as
        the tail. With a `checksum` (tus checksum extension, SHA-256 of this
        request's body) nothing is recorded until the body is complete and
        matches, so a corrupted request leaves the upload where it was.
        """
        row = await asyncio.to_thread(self._load, device, upload_id)
        if row.state == "complete":
            raise Conflict(f"upload {upload_id} is complete (offset {row.length})")
        if offset != row.offset:
            raise Conflict(
                f"Upload-Offset {offset} does not match the upload's offset {row.offset}"
            )
        if row.offset == row.length:  # every byte is here; finishing it failed before
            async for chunk in body:
                if chunk:
                    raise TooLarge(f"the upload is {row.length} bytes; it has them all")
            row = await self._finish_if_ready(row)
            return UploadStatus(
                row.id, row.offset, row.length, stored_utc(row.expires_at), row.state == "complete"
            )
        writer = secrets.token_hex(8)
        await asyncio.to_thread(self._claim, upload_id, offset, writer)
        row, parts = await asyncio.to_thread(self._claimed, upload_id)

        body_hash = hashlib.sha256() if checksum is not None else None

        async def settled(parts: list[str], stream: _Stream | None) -> None:
            size = self._staged_bytes(parts, row.length)
            await asyncio.to_thread(self._record, upload_id, writer, size, parts, b"", stream)

        stager = PartStager(
            self.store.part_size,
            parts,
            self._stream_of(row, self._staged_bytes(parts, row.length)),
            lambda number, data: self.store.stage_part(upload_id, row.stage_handle, number, data),
            _carry,
            # With a checksum, nothing is recorded before the whole body is known good.
            settled if body_hash is None else None,
        )
        received = 0
        failure: BaseException | None = None
        try:
            await stager.feed(memoryview(bytes(row.tail)))  # the tail kept by the last request
            async for chunk in body:
                if offset + received + len(chunk) > row.length:
                    raise TooLarge(f"the upload is {row.length} bytes; this request goes past it")
                received += len(chunk)
                if body_hash is not None:
                    body_hash.update(chunk)
                await stager.feed(memoryview(chunk))
        except Disconnected:  # the device lost its connection: keep what arrived
            log.info("upload.interrupted", upload=upload_id, received=received)
        except Exception as exc:
            failure = exc  # too much data, the store down...: keep what is durable
        failure = await stager.drain() or failure
        if isinstance(failure, Conflict):
            raise failure  # a newer request owns the upload now: it records, not this one
        buffer, stream = stager.tail(), stager.stream
        if body_hash is not None and (failure is not None or body_hash.digest() != checksum):
            await asyncio.to_thread(self._release, upload_id, writer)
            raise failure or ChecksumMismatch("the request body does not match its Upload-Checksum")
        new_offset = self._staged_bytes(parts, row.length) + len(buffer)
        await asyncio.to_thread(self._record, upload_id, writer, new_offset, parts, buffer, stream)
        if stream is not None:
            self._streams[upload_id] = stream
        if failure is not None:
            raise failure
        if new_offset == row.length:
            await self._finish(row, writer, parts, buffer, stream)
            return UploadStatus(row.id, row.length, row.length, stored_utc(row.expires_at), True)
        return UploadStatus(row.id, new_offset, row.length, stored_utc(row.expires_at), False)

    def _stream_of(self, row: Any, staged: int) -> _Stream | None:
        """The stream over the `staged` bytes of an upload, or None when it is lost.

        From this process's memory, else from the state saved with the parts;
        a fresh one when nothing is staged yet. None only for an upload whose
        hash could not be saved and whose bytes went partly through another
        process (or before a restart): its staged object is re-read at the end.
        """
        manifest = mf.parse_manifest(bytes(row.manifest))
        kept = self._streams.pop(row.id, None)
        if kept is not None and kept.offset == staged:
            return kept
        if row.stream_state is not None:
            restored = _Stream.restore(row.stream_state, manifest.media_type)
            if restored.offset == staged:
                return restored
        if staged == 0:
            return _Stream.start(manifest.media_type, resumable=self.resumable)
        return None

    def _claim(self, upload_id: str, offset: int, writer: str) -> None:
        """Become the one request writing this upload (a newer request takes over)."""
        with self.db.write() as conn:
            claimed = conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.offset == offset)
                .values(writer=writer)
            ).rowcount
        if claimed != 1:
            raise Conflict(f"upload {upload_id} moved on meanwhile; HEAD it for its offset")

    def _record(
        self,
        upload_id: str,
        writer: str,
        offset: int,
        parts: list[str],
        tail: bytes,
        stream: _Stream | None,
    ) -> None:
        """Record the upload's progress: offset, tail, hash state, and the parts not yet recorded.

        Parts are only ever added (a recorded part is never staged again, except
        after `_restart`, which clears them): one row is written per new part.
        """
        saved = None if stream is None else stream.saved()
        with self.db.write() as conn:
            updated = conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.writer == writer)
                .values(offset=offset, parts="[]", tail=tail, stream_state=saved)
            ).rowcount
            if updated != 1:
                raise Conflict(f"another request took over upload {upload_id}")
            recorded = conn.execute(
                sa.select(sa.func.count())
                .select_from(upload_parts)
                .where(upload_parts.c.upload_id == upload_id)
            ).scalar_one()
            if recorded > len(parts):
                raise Conflict(f"upload {upload_id} has more parts recorded than this request")
            if recorded < len(parts):
                conn.execute(
                    upload_parts.insert(),
                    [
                        {"upload_id": upload_id, "number": number, "receipt": parts[number]}
                        for number in range(recorded, len(parts))
                    ],
                )

    def _claimed(self, upload_id: str) -> tuple[Any, list[str]]:
        """The row and part receipts of an upload just claimed, read together.

        Read after the claim, in one snapshot: what an earlier request recorded
        up to the claim (parts, tail, hash state) is seen whole and consistent.
        """
        with self.db.read() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).one()
            receipts = conn.execute(
                sa.select(upload_parts.c.receipt)
                .where(upload_parts.c.upload_id == upload_id)
                .order_by(upload_parts.c.number)
            ).scalars()
            found: list[str] = list(receipts)
        return row, found or json.loads(row.parts)  # rows from before migration 0005

    def _release(self, upload_id: str, writer: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.writer == writer)
                .values(writer=None)
            )

    # -- finishing ------------------------------------------------------------------

    async def _finish(
        self, row: Any, writer: str, parts: list[str], tail: bytes, stream: _Stream | None
    ) -> None:
        """Verify, commit and record an upload whose every byte is durable.

        Safe to repeat after a failure at any step (the store down, a crash):
        each step is idempotent. The last, short part is recorded once staged,
        so a retry never stages it again over an upload already assembled. If
        the staging is gone while the row is still here: for an upload staged
        beside its key, an earlier attempt checked, committed and locked the
        object and stopped before the log, so only the recording is left; an
        upload staged at its key whose parts the store no longer has starts
        again from offset 0 (`_restart`).
        """
        manifest = mf.parse_manifest(bytes(row.manifest))
        key = self.key_for(manifest.sha256)
        try:
            created = await self._verify_and_commit(row, writer, manifest, parts, tail, stream, key)
        except VerificationError:
            await self._discard(row)
            raise
        except NotFound:
            readable = self.store.stage_readable(row.stage_handle)
            info = await asyncio.to_thread(self.store.stat, key)
            if info is None or info.size != row.length:
                if parts and not readable:
                    await self._restart(row, writer, key)
                raise
            if not readable:  # another request is finishing it: it checks and locks it
                raise StorageUnavailable(
                    f"object store: upload {row.id} is being finished by another request"
                ) from None
            log.info("upload.committed_before", upload=row.id, item=row.item_id)
            created = False
        self._streams.pop(row.id, None)
        await self._record_item(row, manifest, key, row.id, confirm=not created)
        if not created:  # parts staged for an object that was there already
            await asyncio.to_thread(self.store.stage_abort, row.id, row.stage_handle)

    async def _restart(self, row: Any, writer: str, key: str) -> None:
        """The store lost the staged parts and holds no object for them: begin again at 0."""
        handle = await asyncio.to_thread(self.store.stage_begin, row.id, key)

        def reset() -> int:
            with self.db.write() as conn:
                done: int = conn.execute(
                    uploads.update()
                    .where(
                        uploads.c.id == row.id,
                        uploads.c.writer == writer,
                        uploads.c.state == "receiving",
                    )
                    .values(
                        offset=0,
                        parts="[]",
                        tail=b"",
                        stream_state=None,
                        stage_handle=handle,
                        writer=None,
                    )
                ).rowcount
                if done == 1:
                    conn.execute(upload_parts.delete().where(upload_parts.c.upload_id == row.id))
                return done

        if await asyncio.to_thread(reset) != 1:  # another request took over: it decides
            await asyncio.to_thread(self.store.stage_abort, row.id, handle)
            raise Conflict(f"upload {row.id} moved on meanwhile; HEAD it for its offset")
        await asyncio.to_thread(self.store.stage_abort, row.id, row.stage_handle)  # if any left
        self._streams.pop(row.id, None)
        log.warning("upload.restarted", upload=row.id, item=row.item_id)
        raise StorageUnavailable(
            f"object store: the parts of upload {row.id} were lost; send it again from offset 0"
        )

    async def _verify_and_commit(
        self,
        row: Any,
        writer: str,
        manifest: mf.CaptureManifest,
        parts: list[str],
        tail: bytes,
        stream: _Stream | None,
        key: str,
    ) -> bool:
        """Check the bytes against the manifest and commit them at `key`; True if created there.

        Nothing reaches `key` before its SHA-256 is known to be the manifest's.
        The content check comes before the commit too, except for an upload
        staged at its key (S3), which cannot be read before it is completed
        there: its content is checked right after, before it is locked or
        recorded, and if refused the object is removed again (`_discard`).
        """
        upload_id, handle = row.id, row.stage_handle
        if not parts:  # every byte is here, in memory: check it all, then store it
            return await self._commit_in_memory(row, manifest, tail, key)
        readable = self.store.stage_readable(handle)
        if stream is None and not readable:  # never: such uploads are begun with a saved hash
            raise IntegrityError(f"upload {upload_id} lost its hash and cannot be read back")
        while tail:  # staged part by part (the last may be short), each then recorded
            piece, tail = tail[: self.store.part_size], tail[self.store.part_size :]
            receipt = await asyncio.to_thread(
                self.store.stage_part, upload_id, handle, len(parts), piece
            )
            parts = [*parts, receipt]
            stream = await asyncio.to_thread(_carry, stream, piece)
            await asyncio.to_thread(
                self._record, upload_id, writer, row.length, parts, tail, stream
            )
        if readable:
            await asyncio.to_thread(self.store.stage_complete, upload_id, handle, parts, row.length)
        if stream is not None:
            digest: str = stream.hasher.hexdigest()
        else:  # this process did not see every byte, and no hash was saved: read them once
            digest = await asyncio.to_thread(self._staged_sha256, upload_id)
        _check_digest(digest, manifest)
        if stream is not None and stream.check is not None:
            stream.check.finish()  # checked as it streamed: no second read
            checked = True
        else:
            checked = False
        if readable:
            if not checked:
                await asyncio.to_thread(self._probe_staged, upload_id, manifest)
            return await asyncio.to_thread(
                self.store.stage_commit, upload_id, key, manifest.sha256, row.length, retain=True
            )
        created = await asyncio.to_thread(
            self.store.stage_finish,
            upload_id,
            handle,
            parts,
            row.length,
            key,
            manifest.sha256,
            retain=False,
        )
        try:
            if not checked:
                await asyncio.to_thread(self._probe_stored, key, manifest)  # refused: _discard
            await asyncio.to_thread(self.store.retain, key)
        except NotFound as exc:  # removed from outside meanwhile: retry
            raise StorageUnavailable(f"object store: {key} went as it was committed") from exc
        return created

    async def _commit_in_memory(
        self, row: Any, manifest: mf.CaptureManifest, content: bytes, key: str
    ) -> bool:
        """An upload no longer than a part: check and store it in one write."""
        _check_digest(hashlib.sha256(content).hexdigest(), manifest)
        source = io.BytesIO(content)
        await asyncio.to_thread(
            probe.check_content, manifest.kind, manifest.media_type, source, len(content)
        )
        created = await asyncio.to_thread(
            self.store.put, key, content, manifest.sha256, retain=True
        )
        if created:  # else the staging goes once the item is recorded
            await asyncio.to_thread(self.store.stage_abort, row.id, row.stage_handle)
        return created

    def _unstore(self, conn: Connection, key: str, upload_id: str) -> bool:
        """Remove the object at `key` unless an item holds it or another upload is headed for it.

        For an upload refused, expired or terminated after its bytes may have
        reached `key` (completed there before the content check, or committed
        before a crash). Call it inside `CustodyLog.exclusive`: under the log's
        lock it cannot interleave with an append recording an item for `key`;
        and an upload of the same bytes still in progress (its row is
        'receiving' until the append that records it) keeps the object for it.
        True if removed.
        """
        _, sha256 = parse_content_key(key)
        used = conn.execute(sa.select(items.c.id).where(items.c.object_key == key).limit(1)).first()
        headed = conn.execute(
            sa.select(uploads.c.id)
            .where(
                uploads.c.sha256 == sha256,
                uploads.c.state == "receiving",
                uploads.c.id != upload_id,
            )
            .limit(1)
        ).first()
        if used is not None or headed is not None or self.store.stat(key) is None:
            return False
        try:
            removed = self.store.delete(key)
        except Forbidden:  # under a lock the bucket sets by default: it stays
            log.warning("upload.refused_object_kept", key=key, upload=upload_id)
            return False
        if removed:
            log.info("upload.object_removed", key=key, upload=upload_id)
        return removed

    async def _finish_if_ready(self, row: Any) -> Any:
        """An upload whose bytes all arrived but that did not finish (the store or the
        database failed then): finish it now, so that a tus client that sees its
        offset at the end can get its receipt. Returns the row as it now is."""
        if row.state != "receiving" or row.offset != row.length:
            return row
        writer = secrets.token_hex(8)
        await asyncio.to_thread(self._claim, row.id, row.offset, writer)
        row, parts = await asyncio.to_thread(self._claimed, row.id)
        stream = self._stream_of(row, self._staged_bytes(parts, row.length))
        await self._finish(row, writer, parts, bytes(row.tail), stream)
        return await asyncio.to_thread(self._load_any, row.id)

    def _staged_bytes(self, parts: list[str], length: int) -> int:
        """The bytes in `parts`: whole parts, or all of them once the short last one is in."""
        return min(len(parts) * self.store.part_size, length)

    def _staged_sha256(self, upload_id: str) -> str:
        h = hashlib.sha256()
        for chunk in self.store.stage_read(upload_id):
            h.update(chunk)
        return h.hexdigest()

    def _probe_staged(self, upload_id: str, manifest: mf.CaptureManifest) -> None:
        self._probe(lambda start, end: self.store.stage_read(upload_id, start, end), manifest)

    def _probe_stored(self, key: str, manifest: mf.CaptureManifest) -> None:
        self._probe(lambda start, end: self.store.read(key, start, end), manifest)

    def _probe(self, read: ReadRange, manifest: mf.CaptureManifest) -> None:
        raw = RangeFile(read, manifest.size)
        with io.BufferedReader(raw) as source:
            probe.check_content(manifest.kind, manifest.media_type, source, manifest.size)

    async def _discard(self, row: Any) -> None:
        """A refused upload leaves nothing: staging removed, row deleted, and any object
        it put at its content address that nothing else holds removed (`_unstore`).

        The row goes and the object with it in one transaction under the log's
        lock: an append recording this upload's item either came first (then
        the row is complete and stays, and its item holds the object) or
        finds the row gone (`_complete` refuses it).
        """
        self._streams.pop(row.id, None)
        await asyncio.to_thread(self.store.stage_abort, row.id, row.stage_handle)
        key = self.key_for(mf.parse_manifest(bytes(row.manifest)).sha256)

        def end(conn: Connection) -> None:
            deleted = conn.execute(
                uploads.delete().where(uploads.c.id == row.id, uploads.c.state == "receiving")
            ).rowcount
            if deleted:  # else it completed meanwhile: it stays, with its item
                conn.execute(upload_parts.delete().where(upload_parts.c.upload_id == row.id))
                self._unstore(conn, key, row.id)

        await asyncio.to_thread(self.log.exclusive, end)
        log.info("upload.refused", upload=row.id, item=row.item_id)

    async def _record_item(
        self, row: Any, manifest: mf.CaptureManifest, key: str, upload_id: str, *, confirm: bool
    ) -> int:
        """Append item.ingested with the item's row, the job and the upload's completion.

        With `confirm` (the object was at `key` before this upload committed
        it), the object is checked to be still there inside the append's
        transaction. `_discard` never removes it while this upload is in
        progress; this catches one removed from outside the service.
        """
        now = self.clock()
        entry = _item_ingested(manifest, row.item_id, now)
        signed = SignedManifest(manifest, bytes(row.manifest), bytes(row.signature))

        confirmed = (_StillStored(self, key, manifest.size),) if confirm else ()
        try:
            appended = await self.log.append(
                entry,
                *confirmed,
                RecordItem(signed, row.item_id, key, now),
                QueueReviewCopy(row.item_id, now),
                _CompleteUpload(upload_id),
            )
        except DbIntegrityError:
            # The same manifest finished through another upload first: same item, no new entry.
            existing = await asyncio.to_thread(self._ingested_entry, row.item_id)
            if existing is None:
                raise
            await asyncio.to_thread(self._complete_upload, upload_id, existing)
            return existing
        log.info("item.ingested", item=row.item_id, index=appended.index, upload=upload_id)
        return appended.index

    def _confirm_stored(self, key: str, size: int) -> None:
        """Inside an append that records an item for `key`: the object is still there.

        Under the log's lock, no `_unstore` can remove it between this check
        and the commit; one that ran before it is caught here.
        """
        info = self.store.stat(key)
        if info is None or info.size != size:
            raise StorageUnavailable(f"object store: {key} went while it was recorded")

    def _complete_upload(self, upload_id: str, index: int) -> None:
        """Complete an upload whose item another request recorded first (same manifest)."""
        with self.db.write() as conn:
            state = conn.execute(
                sa.select(uploads.c.state).where(uploads.c.id == upload_id)
            ).scalar_one_or_none()
            if state != "complete":  # that request may have been this upload's own
                _complete(conn, upload_id, index)

    async def expire(self) -> int:
        """Abort every unfinished upload past its expiry; return how many."""
        now = self.clock()
        with self.db.read() as conn:
            expired = conn.execute(
                sa.select(uploads).where(
                    uploads.c.state == "receiving", uploads.c.expires_at <= now
                )
            ).all()
        for row in expired:
            await self._discard(row)
        return len(expired)

    # -- termination, receipts ----------------------------------------------------------

    async def terminate(self, device: Device, upload_id: str) -> None:
        row = await asyncio.to_thread(self._load, device, upload_id)
        if row.state == "complete":
            raise Conflict(f"upload {upload_id} is complete; its item stays")
        await self._discard(row)

    async def receipt(self, device: Device | None, upload_id: str) -> dict[str, Any]:
        row = await asyncio.to_thread(self._load_any, upload_id)
        if row is None or (device is not None and row.device_id != device.id):
            raise NotFound(f"no upload {upload_id}")
        row = await self._finish_if_ready(row)
        if row.state != "complete":
            raise Conflict(
                f"upload {upload_id} is not complete (offset {row.offset} of {row.length})"
            )
        return await self.item_receipt(row.item_id)

    def _load_any(self, upload_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()

    async def item_receipt(self, item: str) -> dict[str, Any]:
        """The receipt of an item: its item.ingested entry, proven in the latest checkpoint."""
        index = await asyncio.to_thread(self._ingested_entry, item)
        if index is None:
            raise NotFound(f"no item {item}")
        return await asyncio.to_thread(self._receipt_for, item, index)

    def _receipt_for(self, item: str, index: int) -> dict[str, Any]:
        checkpoint = self.log.checkpoint()
        proof = self.log.inclusion_proof(index, checkpoint.size)
        return make_receipt(item, index, self.log.entry(index), checkpoint.note, proof)

    # -- small items in one request ------------------------------------------------------

    async def ingest_small(
        self, device: Device, manifest_text: bytes, signature: bytes, content: bytes
    ) -> dict[str, Any]:
        """`POST /api/v1/items`: every check of an upload, the object, its entry, in one request.

        The bytes are all in memory (at most `Limits.max_item_size`), so
        nothing is staged and no upload row is kept. In order: the checks of
        `create`, the SHA-256 and the content check; the object written once
        under its content address, durable (and locked where the store locks)
        before anything refers to it; then one append, batched with whatever
        else is being appended, that commits `item.ingested` with the item's
        row and its review-copy job. The receipt is made
        from that batch: its signed checkpoint and the entry's inclusion proof
        in it. The same manifest again gets the receipt of the item it made.
        """
        item = mf.item_id(manifest_text)
        checked = await self._small(_Small(device, manifest_text, signature, content))
        signed, existing, key = checked.signed, checked.existing, checked.key
        if existing is not None:
            return await asyncio.to_thread(self._receipt_for, item, existing)
        now = self.clock()
        entry = _item_ingested(signed.manifest, item, now)
        try:
            # Without an upload row headed for the object, nothing else keeps
            # `_unstore` (a refused upload of the same bytes) from removing it
            # between the write and the append: it is confirmed under the lock.
            appended = await self.log.append(
                entry,
                _StillStored(self, key, signed.manifest.size),
                RecordItem(signed, item, key, now),
                QueueReviewCopy(item, now),
                prove=True,
            )
        except DbIntegrityError:
            # The same manifest was recorded by another request meanwhile: same item, no new entry.
            existing = await asyncio.to_thread(self._ingested_entry, item)
            if existing is None:
                raise
            return await asyncio.to_thread(self._receipt_for, item, existing)
        log.info("item.ingested", item=item, index=appended.index, device=device.id)
        assert appended.proof is not None  # asked for: prove=True
        return make_receipt(
            item, appended.index, appended.data, appended.checkpoint, appended.proof
        )

    def _check_and_store(self, smalls: Sequence[_Small]) -> list[_Checked | Exception]:
        """Small items checked as uploads are (one read of the database), then stored.

        For each: the checked manifest, the index of the item's `item.ingested`
        if the same manifest was ingested before (then nothing is stored), and
        the object's key; or the error that item's request gets.
        """
        checked: list[_Checked | Exception] = []
        allowed: set[tuple[str, str]] = set()  # (device, case) found allowed in this batch
        with self.db.read() as conn:
            for small in smalls:
                try:
                    checked.append(self._check_one(conn, small, allowed))
                except Exception as exc:  # this item's error; the others go on
                    checked.append(exc)
        for n, outcome in enumerate(checked):
            if isinstance(outcome, _Checked) and outcome.existing is None:
                try:
                    content = smalls[n].content
                    self.store.put(
                        outcome.key, content, outcome.signed.manifest.sha256, retain=True
                    )
                except Exception as exc:  # this item's error; the others go on
                    checked[n] = exc
        return checked

    def _check_one(
        self, conn: Connection, small: _Small, allowed: set[tuple[str, str]]
    ) -> _Checked:
        """One small item's checks (`_check_and_store`); `allowed` saves asking twice."""
        device, content = small.device, small.content
        manifest = self._check_signed(device, small.manifest_text, small.signature, len(content))
        if (device.id, manifest.case) not in allowed:
            _check_may_upload(conn, device, manifest)
            allowed.add((device.id, manifest.case))
        existing = ingested_index(conn, mf.item_id(small.manifest_text))
        _check_digest(hashlib.sha256(content).hexdigest(), manifest)
        probe.check_content(manifest.kind, manifest.media_type, io.BytesIO(content), len(content))
        signed = SignedManifest(manifest, small.manifest_text, small.signature)
        return _Checked(signed, existing, self.key_for(manifest.sha256))


@dataclass(frozen=True)
class _Small:
    """A small item as its request brought it (`Ingest.ingest_small`)."""

    device: Device
    manifest_text: bytes
    signature: bytes
    content: bytes


@dataclass(frozen=True)
class _Checked:
    """A small item that passed every check (`Ingest._check_and_store`)."""

    signed: SignedManifest
    existing: int | None  # the index of its `item.ingested` if it is in already
    key: str  # where its object is


def _carry(stream: _Stream | None, data: bytes | bytearray) -> _Stream | None:
    return None if stream is None else stream.after(data)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass(frozen=True)
class _StillStored:
    """Effect: the object an item is recorded for is still at `key` (`Ingest._confirm_stored`)."""

    ingest: Ingest
    key: str
    size: int

    def apply(self, conn: Connection, index: int) -> None:
        self.ingest._confirm_stored(self.key, self.size)


@dataclass(frozen=True)
class _CompleteUpload:
    """Effect of an upload's ``item.ingested`` append: the upload is complete (`_complete`)."""

    upload_id: str

    def apply(self, conn: Connection, index: int) -> None:
        _complete(conn, self.upload_id, index)


def _complete(conn: Connection, upload_id: str, index: int) -> None:
    """Mark the upload complete; `Conflict` if it was ended meanwhile (terminated, expired).

    Inside the append that records its item: an upload discarded while it was
    being finished (its object perhaps removed with it) never gets an item.
    """
    done = conn.execute(
        uploads.update()
        .where(uploads.c.id == upload_id, uploads.c.state == "receiving")
        .values(state="complete", entry=index, tail=b"", writer=None)
    ).rowcount
    if done != 1:
        raise Conflict(f"upload {upload_id} was ended (terminated or expired) as it finished")
    conn.execute(upload_parts.delete().where(upload_parts.c.upload_id == upload_id))


def _check_may_upload(conn: Connection, device: Device, manifest: mf.CaptureManifest) -> None:
    """The manifest's case exists and `device` may upload to it (its worker is assigned)."""
    if not case_exists(conn, manifest.case):
        raise InvalidInput(f"no case {manifest.case}")
    if not is_allowed(actor_for_device(conn, device.id), "item.upload", manifest.case):
        raise Forbidden(
            f"this device may not upload to case {manifest.case}: "
            "its worker is not assigned to it (or it has no worker)"
        )


def _item_ingested(manifest: mf.CaptureManifest, item: str, now: dt.datetime) -> ItemIngested:
    return ItemIngested(
        time=format_time(now),
        item=item,
        prev=None,
        case=manifest.case,
        device=manifest.device,
        seq=manifest.seq,
        kind=manifest.kind,
        sha256=manifest.sha256,
        size=manifest.size,
    )


def _check_digest(digest: str, manifest: mf.CaptureManifest) -> None:
    if digest != manifest.sha256:
        raise VerificationError(
            f"the SHA-256 of the received bytes is {digest}, the manifest says {manifest.sha256}"
        )
