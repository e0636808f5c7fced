"""The S3 object store: AWS S3, MinIO, Ceph RGW or any S3-compatible service, through boto3.

- Objects are written once: ``PutObject`` with ``If-None-Match: *``; a 412 means
  the key exists, and its bytes are compared (same: idempotent, other:
  `IntegrityError`). A store that answers 501 to conditional writes gets a
  HEAD before the PUT instead (see the decision record: with content
  addresses and our own hash check, the only thing a lost race can do is
  write identical bytes twice).
- Our own SHA-256 check is what counts; ``ChecksumSHA256`` is sent as well so
  that stores which check it reject bytes damaged on the way.
- Originals (``retain=True``) in a bucket with object lock enabled are locked
  in COMPLIANCE mode until now + `retention_days`: `put` sends the lock with
  the object; `stage_commit` copies, then locks the copy with
  ``PutObjectRetention``. Either way the lock is checked with a HEAD before
  the call returns (and applied then if the store dropped it), and a retried
  call on an object already there checks it again.
- Staging is an S3 multipart upload: parts are durable in the store, not on
  the server that received them, so an upload can resume on another server.
  Given the content key (`stage_begin(upload_id, key)`), the multipart upload
  is made at that key and `stage_finish` completes it there with
  ``If-None-Match: *``, once the caller knows the SHA-256 of every byte: no
  copy. Otherwise it is made at ``staging/<upload id>``, completed there
  (readable with `stage_read`), and committed by a server-side copy (boto3's
  managed copy: multipart above `copy_part_size`, so objects over 5 GB work),
  then the staging object is deleted.
- Deleting removes every version of the key (a lock-enabled bucket is
  versioned; a plain DELETE would only hide the object behind a delete
  marker). A version under retention or legal hold is refused: `Forbidden`.
- Connection failures, timeouts, 5xx, a missing bucket and refused
  credentials are `StorageUnavailable`; botocore retries a few times (standard
  mode) with short timeouts first, so a dead store is reported in seconds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
import structlog
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from evidence.errors import (
    Conflict,
    EvidenceError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from evidence.storage.common import (
    CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    S3_MAX_PART_SIZE,
    S3_MIN_PART_SIZE,
    ObjectInfo,
    ObjectStream,
    Retention,
    StagedUpload,
    check_key_for,
    check_part,
    check_range,
    check_upload_id,
    complete_then_commit,
    empty_stream,
    parse_content_key,
    part_lengths,
    receipts_count_matches,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        HeadObjectOutputTypeDef,
        ObjectLockRetentionTypeDef,
        PartTypeDef,
    )

log = structlog.get_logger(__name__)

# Seven years, a common retention period for children's social-care records.
DEFAULT_RETENTION_DAYS: Final = 2557
DEFAULT_REGION: Final = "us-east-1"
# A dead endpoint must be reported in seconds (health checks, 503 + Retry-After),
# not after botocore's defaults of 60 s timeouts and legacy retries.
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 60.0  # ample for a 64 MiB server-side part copy on a slow store
MAX_ATTEMPTS: Final = 3  # the first try and two retries, "standard" mode with backoff
# Server-side copies at commit: parts this big, a few at a time.
COPY_PART_SIZE: Final = 64 * 1024 * 1024
COPY_CONCURRENCY: Final = 4
# Requests in flight at once from one process (uploads and reads in worker threads).
MAX_POOL_CONNECTIONS: Final = 32
LOCK_MODE: Final = "COMPLIANCE"
STAGING_PREFIX: Final = "staging/"
RECEIPT_SHA256: Final = "sha256:"  # receipts: "sha256:<base64 SHA-256>:<ETag>"

_STAGING_KEY = re.compile(r"staging/(?P<id>[0-9a-f]{32})")
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload", "NoSuchVersion"})
_NO_LOCK_CODES = frozenset(
    {"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "NotImplemented"}
)
_ACCESS_DENIED_CODES = frozenset({"AccessDenied", "Forbidden", "403"})


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def _new_client(endpoint_url: str | None, region: str, config: Config) -> S3Client:
    """An S3 client from one boto3 session per process.

    Making a session loads botocore's service models from disk (a tenth of a
    second or more); boto3 sessions are not thread-safe, hence the lock.
    Credentials come from the usual places (``AWS_*`` variables, files, roles).
    """
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_not_found(exc: ClientError) -> bool:
    return _code(exc) in _NOT_FOUND_CODES or (_status(exc) == 404 and _code(exc) != "NoSuchBucket")


def _b64_sha256(data: bytes | bytearray) -> tuple[str, str]:
    """The hex and base64 forms of SHA-256(`data`)."""
    digest = hashlib.sha256(data).digest()
    return digest.hex(), base64.b64encode(digest).decode("ascii")


def _retention(head: HeadObjectOutputTypeDef) -> Retention | None:
    mode = head.get("ObjectLockMode")
    until = head.get("ObjectLockRetainUntilDate")
    if not mode or until is None:
        return None
    return Retention(mode=str(mode), until=until.astimezone(UTC))


class S3Store:
    """`StagingStore` in an S3 bucket (see the module docstring).

    `part_size` is the staging part size (5 MiB to 5 GiB: S3's limits);
    `copy_part_size` the part size of server-side copies at commit. Pass
    `client` to use a ready boto3 S3 client (its own configuration then
    applies, not `region` or the timeouts). Nothing is sent until first use.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        part_size: int = DEFAULT_PART_SIZE,
        client: S3Client | None = None,
        *,
        region: str = DEFAULT_REGION,
        copy_part_size: int = COPY_PART_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if not S3_MIN_PART_SIZE <= part_size <= S3_MAX_PART_SIZE:
            raise ValueError(
                f"part_size must be {S3_MIN_PART_SIZE} to {S3_MAX_PART_SIZE} bytes"
                " (S3's limits for every part but the last)"
            )
        if not S3_MIN_PART_SIZE <= copy_part_size <= S3_MAX_PART_SIZE:
            raise ValueError(f"copy_part_size must be {S3_MIN_PART_SIZE} to {S3_MAX_PART_SIZE}")
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.bucket = bucket
        self.part_size = part_size
        self.retention_days = retention_days
        self._copy_config = TransferConfig(
            multipart_threshold=copy_part_size,
            multipart_chunksize=copy_part_size,
            max_concurrency=COPY_CONCURRENCY,
            use_threads=True,
        )
        if client is None:
            config = Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                max_pool_connections=MAX_POOL_CONNECTIONS,
                # Checksums only where S3 requires them (we send SHA-256 ourselves):
                # botocore's default CRC32 trailers break older MinIO and Ceph.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # MinIO and Ceph behind a plain endpoint need path-style addressing.
                s3={"addressing_style": "path" if endpoint_url else "auto"},
            )
            client = _new_client(endpoint_url, region, config)
        self._client: S3Client = client
        self._lock_enabled: bool | None = None  # found out on first use
        self._conditional_writes = True  # until the store says it has none

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r})"

    # -- plumbing --------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Translate botocore's exceptions raised inside into `evidence.errors`."""
        try:
            yield
        except ClientError as exc:
            raise self._translate(exc, doing) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"object store: {doing} failed: {exc}") from exc

    def _translate(self, exc: ClientError, doing: str) -> EvidenceError:
        code, status = _code(exc), _status(exc)
        if code == "NoSuchBucket":
            return StorageUnavailable(f"object store: bucket {self.bucket!r} does not exist")
        if _is_not_found(exc):
            return NotFound(f"object store: {doing}: not found")
        if code in _ACCESS_DENIED_CODES or status == 403:
            return StorageUnavailable(
                f"object store: {doing}: access denied (check the credentials and the"
                f" policy of bucket {self.bucket!r})"
            )
        if code == "InvalidRange" or status == 416:
            return InvalidInput(f"object store: {doing}: byte range not satisfiable")
        return StorageUnavailable(f"object store: {doing} failed ({code or status})")

    def _head(self, key: str) -> HeadObjectOutputTypeDef | None:
        """The HEAD of `key`, None when there is no such object (inside `_errors`)."""
        try:
            return self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise

    def _is_lock_enabled(self) -> bool:
        """Whether the bucket has object lock enabled (asked once, then remembered)."""
        if self._lock_enabled is None:
            with self._errors("reading the bucket's object lock configuration"):
                try:
                    answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
                    config = answer.get("ObjectLockConfiguration", {})
                    enabled = config.get("ObjectLockEnabled") == "Enabled"
                except ClientError as exc:
                    if _code(exc) not in _NO_LOCK_CODES:
                        raise
                    enabled = False
            self._lock_enabled = enabled
            log.info("storage.s3.object_lock", bucket=self.bucket, enabled=enabled)
        return self._lock_enabled

    def _retain_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.retention_days)

    def _lock_args(self, retain: bool) -> dict[str, Any]:
        if not (retain and self._is_lock_enabled()):
            return {}
        return {"ObjectLockMode": LOCK_MODE, "ObjectLockRetainUntilDate": self._retain_until()}

    def _ensure_retention(self, key: str, head: HeadObjectOutputTypeDef | None = None) -> None:
        """Check that `key` is locked; lock it if the store dropped the lock (inside `_errors`).

        `head`: the object's HEAD if the caller has just read it (else it is read here).
        """
        head = head or self._head(key)
        if head is None:
            raise StorageUnavailable(f"object store: {key} vanished after it was written")
        if _retention(head) is not None:
            return
        version = head.get("VersionId")
        retention: ObjectLockRetentionTypeDef = {
            "Mode": LOCK_MODE,
            "RetainUntilDate": self._retain_until(),
        }
        try:
            if version:
                self._client.put_object_retention(
                    Bucket=self.bucket, Key=key, VersionId=version, Retention=retention
                )
            else:
                self._client.put_object_retention(Bucket=self.bucket, Key=key, Retention=retention)
        except ClientError as exc:
            raise StorageUnavailable(
                f"object store: object lock could not be applied to {key} ({_code(exc)})"
            ) from exc
        log.info("storage.s3.retention_applied", bucket=self.bucket, key=key)

    def _stream(self, key: str, start: int, end: int | None, what: str) -> ObjectStream:
        with self._errors(f"reading {what}"):
            head = self._head(key)
            if head is None:
                raise NotFound(f"{what} not found")
            size = head["ContentLength"]
            first, stop = check_range(start, end, size)
            if first == stop:
                return empty_stream()
            if (first, stop) == (0, size):
                answer = self._client.get_object(Bucket=self.bucket, Key=key)
            else:
                answer = self._client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={first}-{stop - 1}"
                )
        body = answer["Body"]
        return ObjectStream(_body_chunks(body.iter_chunks(CHUNK_SIZE), stop - first), body.close)

    def _versions(self, key: str) -> list[tuple[str, bool]]:
        """Every (version id, is a delete marker) stored under exactly `key`."""
        found: list[tuple[str, bool]] = []
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=key
        )
        for page in pages:
            for version in page.get("Versions", []):
                if version.get("Key") == key:
                    found.append((version.get("VersionId") or "null", False))
            for marker in page.get("DeleteMarkers", []):
                if marker.get("Key") == key:
                    found.append((marker.get("VersionId") or "null", True))
        return found

    def _delete_every_version(self, key: str) -> bool:
        """Remove every version of `key`; `Forbidden` (nothing removed) if one is retained."""
        versions = self._versions(key)
        now = datetime.now(UTC)
        for version_id, is_marker in versions:
            if is_marker:
                continue
            if version_id == "null":  # unversioned: moto refuses versionId=null on HEAD
                head = self._client.head_object(Bucket=self.bucket, Key=key)
            else:
                head = self._client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            retention = _retention(head)
            if retention is not None and retention.until > now:
                raise Forbidden(f"{key} is under retention until {retention.until.isoformat()}")
            if head.get("ObjectLockLegalHoldStatus") == "ON":
                raise Forbidden(f"{key} is under a legal hold")
        for version_id, _ in versions:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            except ClientError as exc:
                if _code(exc) in _ACCESS_DENIED_CODES or _status(exc) == 403:
                    raise Forbidden(f"the object store refused to delete {key}") from exc
                raise
        return any(not is_marker for _, is_marker in versions)

    def _multipart_uploads(self, key: str) -> list[tuple[str, datetime]]:
        """(multipart upload id, initiated) of the uploads in progress to exactly `key`."""
        found: list[tuple[str, datetime]] = []
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=key
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload.get("Key") == key and "UploadId" in upload:
                    initiated = upload.get("Initiated") or datetime.now(UTC)
                    found.append((upload["UploadId"], initiated.astimezone(UTC)))
        return found

    @staticmethod
    def _staging_key(upload_id: str) -> str:
        return STAGING_PREFIX + check_upload_id(upload_id)

    # -- objects ---------------------------------------------------------------

    def check(self) -> None:
        with self._errors(f"reaching bucket {self.bucket!r}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _status(exc) == 404:
                    raise StorageUnavailable(
                        f"object store: bucket {self.bucket!r} does not exist"
                    ) from exc
                raise
        self._is_lock_enabled()

    def put(self, key: str, data: bytes, sha256: str, *, retain: bool) -> bool:
        check_key_for(key, sha256)
        digest, checksum = _b64_sha256(data)
        if digest != sha256:
            raise IntegrityError("the data's SHA-256 is not the SHA-256 given for it")
        with self._errors("writing an object"):
            args: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": key,
                "Body": data,
                "ContentType": "application/octet-stream",
                # The algorithm header too: S3 requires it (or Content-MD5) with a lock.
                "ChecksumAlgorithm": "SHA256",
                "ChecksumSHA256": checksum,
                **self._lock_args(retain),
            }
            created = self._put_once(args)
            if not created:
                self._check_same_content(key, len(data), sha256)
            if args.get("ObjectLockMode"):
                self._ensure_retention(key)
        return created

    def _put_once(self, args: dict[str, Any]) -> bool:
        """PutObject unless the key exists; True when this call created it (inside `_errors`)."""
        if self._conditional_writes:
            try:
                self._client.put_object(**args, IfNoneMatch="*")
                return True
            except ClientError as exc:
                code, status = _code(exc), _status(exc)
                if status == 412 or code == "PreconditionFailed":
                    return False
                if code == "ConditionalRequestConflict":  # a concurrent write of the key
                    return False  # compared below, once it is there
                if status != 501 and code != "NotImplemented":
                    raise
                self._conditional_writes = False
                log.warning("storage.s3.conditional_writes_unsupported", bucket=self.bucket)
        if self._head(args["Key"]) is not None:
            return False
        self._client.put_object(**args)
        return True

    def _check_same_content(self, key: str, size: int, sha256: str) -> None:
        """`IntegrityError` unless the object at `key` has `size` bytes hashing to `sha256`."""
        head = self._head(key)
        if head is None:
            raise StorageUnavailable(f"object store: {key} is being written concurrently; retry")
        if head["ContentLength"] != size:
            raise IntegrityError(
                f"{key} already exists with {head['ContentLength']} bytes, not {size}"
            )
        digest = hashlib.sha256()
        with self._stream(key, 0, None, key) as chunks:
            for chunk in chunks:
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise IntegrityError(f"{key} already exists with other content")

    def stat(self, key: str) -> ObjectInfo | None:
        parse_content_key(key)
        with self._errors("reading object metadata"):
            head = self._head(key)
        if head is None:
            return None
        return ObjectInfo(size=head["ContentLength"], retention=_retention(head))

    def read(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        parse_content_key(key)
        return self._stream(key, start, end, key)

    def delete(self, key: str) -> bool:
        parse_content_key(key)
        with self._errors(f"deleting {key}"):
            return self._delete_every_version(key)

    def close(self) -> None:
        self._client.close()

    # -- staging ---------------------------------------------------------------

    def _target(self, upload_id: str | None, handle: str) -> tuple[str, str, bool]:
        """The S3 key and multipart upload id a handle names, and whether it is staged at its key.

        A handle is the multipart upload id for uploads staged at
        ``staging/<upload id>``, and ``<content key>#<multipart upload id>`` for
        uploads staged straight at their content address (content keys never
        hold a ``#``).
        """
        key, sep, multipart = handle.partition("#")
        if not sep:
            if upload_id is None:
                raise InvalidInput("an upload staged under staging/ is named by its upload id")
            return self._staging_key(upload_id), handle, False
        if upload_id is not None:
            check_upload_id(upload_id)
        parse_content_key(key)
        if not multipart:
            raise InvalidInput("a handle names its content key but no multipart upload")
        return key, multipart, True

    def stage_begin(self, upload_id: str, key: str | None = None) -> str:
        """Start a multipart upload at ``staging/<upload id>``, or at `key` itself when given.

        Staged at its key, the upload cannot be read before `stage_finish`, which
        completes it in place (no copy) and must only be called once the caller
        knows the SHA-256 of every staged byte: nothing unverified ever appears
        at a content address.
        """
        staging = self._staging_key(upload_id)
        target = staging if key is None else key
        if key is not None:
            parse_content_key(key)
        with self._errors("starting an upload"):
            if self._head(staging) is not None or self._multipart_uploads(staging):
                raise Conflict(f"upload {upload_id} is already staged")
            answer = self._client.create_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                ContentType="application/octet-stream",
                ChecksumAlgorithm="SHA256",
            )
        return answer["UploadId"] if key is None else f"{key}#{answer['UploadId']}"

    def stage_readable(self, handle: str) -> bool:
        return "#" not in handle

    def stage_part(
        self, upload_id: str, handle: str, part_number: int, data: bytes | bytearray
    ) -> str:
        check_part(part_number, data, self.part_size)
        if not handle:
            raise InvalidInput("an S3 upload part needs the handle that stage_begin returned")
        target, multipart, _ = self._target(upload_id, handle)
        # Sent as it is (botocore takes a bytearray): the caller keeps the buffer
        # untouched until this returns, retries included, and reuses it after.
        _, checksum = _b64_sha256(data)
        with self._errors("writing an upload part"):
            try:
                answer = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=multipart,
                    PartNumber=part_number + 1,
                    Body=data,  # type: ignore[arg-type]  # botocore takes bytearray; stubs say bytes
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
            except ClientError as exc:
                # Some stores (moto) answer 500 rather than 404 for an unknown upload.
                if _is_not_found(exc) or (
                    _status(exc) >= 500
                    and multipart not in {h for h, _ in self._multipart_uploads(target)}
                ):
                    raise NotFound(f"upload {upload_id} is not being staged") from exc
                raise
        # The receipt carries the part's SHA-256 as well as its ETag (an MD5, which
        # can be forged): completion checks both and sends the SHA-256 we computed.
        return f"{RECEIPT_SHA256}{checksum}:{answer['ETag']}"

    def _list_parts(self, staging: str, handle: str) -> list[PartTypeDef]:
        parts: list[PartTypeDef] = []
        pages = self._client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=staging, UploadId=handle
        )
        for page in pages:
            parts.extend(page.get("Parts", []))
        return sorted(parts, key=lambda part: part.get("PartNumber", 0))

    def stage_complete(
        self, upload_id: str, handle: str, receipts: Sequence[str], size: int
    ) -> None:
        staging = self._staging_key(upload_id)
        lengths = part_lengths(size, self.part_size)
        receipts_count_matches(receipts, lengths)
        if not handle:
            raise InvalidInput("completing an S3 upload needs the handle that stage_begin returned")
        if not self.stage_readable(handle):
            raise InvalidInput(f"upload {upload_id} is staged at its content key: use stage_finish")
        with self._errors("assembling an upload"):
            try:
                parts = self._list_parts(staging, handle)
            except ClientError as exc:
                if not _is_not_found(exc):
                    raise
                done = self._head(staging)
                if done is not None and done["ContentLength"] == size:
                    return  # completed before: a retry
                raise NotFound(f"upload {upload_id} is not being staged") from exc
            _check_parts(parts, lengths, receipts, size)
            if size == 0:  # S3 cannot complete a multipart upload of no parts
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=staging, UploadId=handle
                )
                self._client.put_object(Bucket=self.bucket, Key=staging, Body=b"")
            else:
                self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=staging,
                    UploadId=handle,
                    MultipartUpload={"Parts": _completed_parts(parts, receipts)},
                )
            done = self._head(staging)
            if done is None or done["ContentLength"] != size:
                raise IntegrityError(f"upload {upload_id} was not assembled to {size} bytes")

    def stage_read(self, upload_id: str, start: int = 0, end: int | None = None) -> ObjectStream:
        staging = self._staging_key(upload_id)
        return self._stream(staging, start, end, f"completed upload {upload_id}")

    def stage_commit(
        self, upload_id: str, key: str, sha256: str, size: int, *, retain: bool
    ) -> bool:
        staging = self._staging_key(upload_id)
        check_key_for(key, sha256)
        with self._errors("committing an upload"):
            staged, existing = self._head(staging), self._head(key)
            lock = retain and self._is_lock_enabled()
            if staged is None:
                if existing is None:
                    raise NotFound(f"upload {upload_id} is not staged complete")
                _check_same_size(key, existing["ContentLength"], size)
                created = False  # committed before: a retry
            elif staged["ContentLength"] != size:
                raise IntegrityError(
                    f"upload {upload_id} has {staged['ContentLength']} bytes, not {size}"
                )
            elif existing is not None:
                _check_same_size(key, existing["ContentLength"], size)
                created = False
            else:
                # Copied without lock headers (stores differ on what a locked copy
                # needs, and some drop the lock on multipart copies), then locked
                # with PutObjectRetention below, before this returns.
                self._client.copy(
                    {"Bucket": self.bucket, "Key": staging},
                    self.bucket,
                    key,
                    Config=self._copy_config,
                )
                copied = self._head(key)
                if copied is None or copied["ContentLength"] != size:
                    raise IntegrityError(f"{key} was not copied whole from upload {upload_id}")
                created = True
            if lock:
                self._ensure_retention(key)
            if staged is not None:
                self._delete_every_version(staging)
        return created

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
        if self.stage_readable(handle):
            return complete_then_commit(
                self, upload_id, handle, receipts, size, key, sha256, retain=retain
            )
        check_key_for(key, sha256)
        target, multipart, _ = self._target(upload_id, handle)
        if target != key:
            raise InvalidInput(f"upload {upload_id} is staged at {target}, not {key}")
        lengths = part_lengths(size, self.part_size)
        receipts_count_matches(receipts, lengths)
        with self._errors("completing an upload at its content key"):
            try:
                parts = self._list_parts(key, multipart)
            except ClientError as exc:
                if not _is_not_found(exc):
                    raise
                done = self._head(key)
                if done is None:
                    raise NotFound(f"upload {upload_id} is not being staged") from exc
                _check_same_size(key, done["ContentLength"], size)
                created = False  # completed before: a retry
            else:
                _check_parts(parts, lengths, receipts, size)
                completed = _completed_parts(parts, receipts)
                created = self._complete_once(key, multipart, completed, size)
            if retain and self._is_lock_enabled():
                self._ensure_retention(key)
        return created

    def _complete_once(
        self, key: str, multipart: str, parts: list[CompletedPartTypeDef], size: int
    ) -> bool:
        """Complete the multipart upload at `key` unless an object is there (inside `_errors`).

        True when this call created the object. When one was there already, the
        multipart upload is left open (`stage_abort` removes it) and False is
        returned if the object has `size` bytes. A store without conditional
        writes gets a HEAD first instead (see `_put_once`).
        """
        if size == 0:  # S3 cannot complete a multipart upload of no parts
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart)
            created = self._put_once({"Bucket": self.bucket, "Key": key, "Body": b""})
        else:
            completion: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": multipart,
                "MultipartUpload": {"Parts": parts},
            }
            created = True
            if self._conditional_writes:
                try:
                    self._client.complete_multipart_upload(**completion, IfNoneMatch="*")
                except ClientError as exc:
                    code, status = _code(exc), _status(exc)
                    if status == 412 or code == "PreconditionFailed":
                        created = False
                    elif status == 409 or code == "ConditionalRequestConflict":
                        # A concurrent write of the key won; S3 has dropped these parts.
                        if self._head(key) is None:
                            raise NotFound(
                                f"the parts staged for {key} were dropped by the store"
                            ) from exc
                        created = False
                    elif status == 501 or code == "NotImplemented":
                        self._conditional_writes = False
                        log.warning("storage.s3.conditional_writes_unsupported", bucket=self.bucket)
                    else:
                        raise
            if not self._conditional_writes:
                created = self._head(key) is None
                if created:
                    self._client.complete_multipart_upload(**completion)
        done = self._head(key)
        if done is None:
            raise StorageUnavailable(f"object store: {key} is being written concurrently; retry")
        _check_same_size(key, done["ContentLength"], size)
        return created

    def retain(self, key: str) -> None:
        parse_content_key(key)
        with self._errors(f"retaining {key}"):
            head = self._head(key)
            if head is None:
                raise NotFound(f"no object {key}")
            if self._is_lock_enabled():
                self._ensure_retention(key, head)

    def stage_abort(self, upload_id: str | None, handle: str) -> None:
        if handle and not self.stage_readable(handle):
            # Staged at its content key: only the multipart upload goes, never the object.
            target, multipart, _ = self._target(upload_id, handle)
            with self._errors("aborting an upload"):
                try:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=target, UploadId=multipart
                    )
                except ClientError as exc:
                    if not _is_not_found(exc):
                        raise
            return
        if upload_id is None:
            raise InvalidInput("an upload staged under staging/ is named by its upload id")
        staging = self._staging_key(upload_id)
        with self._errors("aborting an upload"):
            handles = [handle] if handle else [h for h, _ in self._multipart_uploads(staging)]
            for each in handles:
                try:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=staging, UploadId=each
                    )
                except ClientError as exc:
                    if not _is_not_found(exc):
                        raise
            self._delete_every_version(staging)

    def stage_list(self) -> list[StagedUpload]:
        found: list[StagedUpload] = []
        with self._errors("listing staged uploads"):
            for page in self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=STAGING_PREFIX
            ):
                for upload in page.get("Uploads", []):
                    match = _STAGING_KEY.fullmatch(upload.get("Key", ""))
                    if match is None or "UploadId" not in upload:
                        continue
                    initiated = upload.get("Initiated") or datetime.now(UTC)
                    found.append(
                        StagedUpload(
                            upload_id=match["id"],
                            handle=upload["UploadId"],
                            complete=False,
                            since=initiated.astimezone(UTC),
                        )
                    )
            # Uploads staged at their content key: only their handle names them.
            for page in self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix="originals/"
            ):
                for upload in page.get("Uploads", []):
                    key = upload.get("Key", "")
                    if "UploadId" not in upload:
                        continue
                    try:
                        parse_content_key(key)
                    except InvalidInput:
                        continue
                    initiated = upload.get("Initiated") or datetime.now(UTC)
                    found.append(
                        StagedUpload(
                            upload_id=None,
                            handle=f"{key}#{upload['UploadId']}",
                            complete=False,
                            since=initiated.astimezone(UTC),
                        )
                    )
            for listing in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=STAGING_PREFIX
            ):
                for item in listing.get("Contents", []):
                    match = _STAGING_KEY.fullmatch(item.get("Key", ""))
                    if match is None:
                        continue
                    modified = item.get("LastModified") or datetime.now(UTC)
                    found.append(
                        StagedUpload(
                            upload_id=match["id"],
                            handle="",
                            complete=True,
                            since=modified.astimezone(UTC),
                        )
                    )
        return sorted(found, key=lambda u: (u.upload_id or "", u.handle, u.complete))


def _check_same_size(key: str, existing: int, size: int) -> None:
    if existing != size:
        raise IntegrityError(
            f"{key} already exists with {existing} bytes, not {size}: not overwritten"
        )


def _receipt(receipt: str) -> tuple[str, str | None]:
    """The ETag and SHA-256 (base64) a part's receipt holds (no SHA-256 in older receipts)."""
    if receipt.startswith(RECEIPT_SHA256):
        checksum, _, etag = receipt[len(RECEIPT_SHA256) :].partition(":")
        return etag, checksum
    return receipt, None


def _check_parts(
    parts: list[PartTypeDef], lengths: list[int], receipts: Sequence[str], size: int
) -> None:
    """`InvalidInput` unless the listed parts are exactly the upload's, as the receipts say."""
    total = sum(part.get("Size", 0) for part in parts)
    if total != size:
        raise InvalidInput(f"the staged parts make {total} bytes, not {size}")
    if len(parts) != len(lengths):
        raise InvalidInput(f"{len(parts)} parts are staged, not the {len(lengths)} expected")
    for number, (part, length, receipt) in enumerate(zip(parts, lengths, receipts, strict=True)):
        if part.get("PartNumber") != number + 1 or part.get("Size") != length:
            raise InvalidInput(f"part {number} is missing or not {length} bytes")
        etag, checksum = _receipt(receipt)
        listed = part.get("ChecksumSHA256")
        if part.get("ETag") != etag or (checksum and listed and listed != checksum):
            raise InvalidInput(f"receipt {number} does not match the staged part {number}")


def _completed_parts(
    parts: list[PartTypeDef], receipts: Sequence[str]
) -> list[CompletedPartTypeDef]:
    """The parts to complete, each with the SHA-256 we computed when staging it (so that a
    store which checks it refuses a part replaced since), or else the one it listed."""
    completed: list[CompletedPartTypeDef] = []
    for part, receipt in zip(parts, receipts, strict=True):
        entry: CompletedPartTypeDef = {
            "PartNumber": part.get("PartNumber", 0),
            "ETag": part.get("ETag", ""),
        }
        checksum = _receipt(receipt)[1] or part.get("ChecksumSHA256")
        if checksum:  # required by stores that kept the part checksums
            entry["ChecksumSHA256"] = checksum
        completed.append(entry)
    return completed


def _body_chunks(chunks: Iterator[bytes], expected: int) -> Iterator[bytes]:
    received = 0
    try:
        for chunk in chunks:
            received += len(chunk)
            yield chunk
    except (BotoCoreError, OSError) as exc:
        raise StorageUnavailable(f"object store: reading an object failed: {exc}") from exc
    if received != expected:
        raise StorageUnavailable(
            f"object store: an object ended after {received} of {expected} bytes"
        )
