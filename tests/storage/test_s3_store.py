"""The S3 store beyond the contract: object lock, refused deletes, a store that is down.

Against moto's S3 server over HTTP (see conftest.py). moto does not check
``ChecksumSHA256`` and its GetObjectRetention is broken, so locks are read
with HEAD, and nothing here relies on the store checking a checksum.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from storehelpers import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    PART,
    Backend,
    blob,
    closed_port,
    derived_key,
    new_bucket,
    original_key,
    read_all,
    sha,
    stage,
    upload_id,
)

from evidence.errors import Forbidden, InvalidInput, NotFound, StorageUnavailable
from evidence.storage import S3_MIN_PART_SIZE
from evidence.storage.s3 import CONNECT_TIMEOUT, DEFAULT_RETENTION_DAYS, MAX_ATTEMPTS, S3Store

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SMALL = blob(500, seed=20)
LARGE = blob(2 * PART + 10, seed=21)  # more than one copy part at copy_part_size=PART


def _assert_locked_for(s3: S3Client, bucket: str, key: str, days: int) -> None:
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head.get("ObjectLockMode") == "COMPLIANCE"
    until = head.get("ObjectLockRetainUntilDate")
    assert until is not None
    expected = datetime.now(UTC) + timedelta(days=days)
    assert abs(until - expected) < timedelta(hours=1), until


def _versions(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    return [entry.get("Key", "") for entry in entries]


@pytest.fixture
def locked_store(s3_admin: S3Client, moto_url: str) -> Iterator[tuple[S3Store, str]]:
    """A store on a lock-enabled bucket, 30 days of retention, small copy parts."""
    bucket = new_bucket(s3_admin, lock=True)
    store = S3Store(bucket, moto_url, 30, PART, copy_part_size=PART)
    yield store, bucket
    store.close()


def test_originals_put_in_a_lock_bucket_are_locked_in_compliance_mode(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    key = original_key(SMALL)
    assert store.put(key, SMALL, sha(SMALL), retain=True)
    _assert_locked_for(s3_admin, bucket, key, 30)
    info = store.stat(key)
    assert info is not None
    assert info.retention is not None
    assert info.retention.mode == "COMPLIANCE"
    assert info.retention.until > datetime.now(UTC) + timedelta(days=29)


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["copy", "multipart-copy"])
def test_committed_originals_are_locked_and_staging_leaves_nothing(
    locked_store: tuple[S3Store, str], s3_admin: S3Client, data: bytes
) -> None:
    store, bucket = locked_store
    uid, key = upload_id(1), original_key(data)
    stage(store, uid, data)
    assert store.stage_commit(uid, key, sha(data), len(data), retain=True)
    _assert_locked_for(s3_admin, bucket, key, 30)
    assert read_all(store.read(key)) == data
    assert _versions(s3_admin, bucket, "staging/") == []  # no versions, no delete markers


def test_a_retried_commit_locks_an_original_left_unlocked(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    uid, key = upload_id(2), original_key(SMALL)
    s3_admin.put_object(Bucket=bucket, Key=key, Body=SMALL)  # a crash before the lock
    stage(store, uid, SMALL)
    assert store.stage_commit(uid, key, sha(SMALL), len(SMALL), retain=True) is False
    _assert_locked_for(s3_admin, bucket, key, 30)


def test_derived_objects_are_not_locked_and_delete_leaves_no_version(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    key = derived_key(SMALL)
    store.put(key, SMALL, sha(SMALL), retain=False)
    info = store.stat(key)
    assert info is not None
    assert info.retention is None
    assert store.delete(key) is True
    assert _versions(s3_admin, bucket, key) == []


def test_deleting_a_locked_original_is_forbidden_and_removes_nothing(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    key = original_key(SMALL)
    store.put(key, SMALL, sha(SMALL), retain=True)
    with pytest.raises(Forbidden, match="retention"):
        store.delete(key)
    assert read_all(store.read(key)) == SMALL
    assert _versions(s3_admin, bucket, key) == [key]


def _client(moto_url: str) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )


def test_a_delete_the_store_refuses_is_forbidden(s3_admin: S3Client, moto_url: str) -> None:
    """S3 has the last word: its refusal (here of a lock our HEAD did not see) is Forbidden."""
    bucket = new_bucket(s3_admin, lock=True)
    client = _client(moto_url)
    store = S3Store(bucket, client=client, part_size=PART)
    key = original_key(SMALL)
    store.put(key, SMALL, sha(SMALL), retain=True)

    def hide_lock(parsed: dict[str, Any], **kwargs: Any) -> None:
        parsed.pop("ObjectLockMode", None)
        parsed.pop("ObjectLockRetainUntilDate", None)

    client.meta.events.register("after-call.s3.HeadObject", hide_lock)
    with pytest.raises(Forbidden, match="refused"):
        store.delete(key)
    client.meta.events.unregister("after-call.s3.HeadObject", hide_lock)
    assert read_all(store.read(key)) == SMALL
    store.close()


def test_without_object_lock_originals_are_stored_unlocked(plain: Backend) -> None:
    key = original_key(SMALL)
    assert plain.store.put(key, SMALL, sha(SMALL), retain=True)
    info = plain.store.stat(key)
    assert info is not None
    assert info.retention is None


def _unavailable_after_few_attempts(
    store: S3Store, call: Callable[[], object], attempts: int = MAX_ATTEMPTS
) -> None:
    """`call` raises StorageUnavailable after at most `attempts` HTTP requests, each bounded
    by the store's short timeouts: so within seconds, counted without a clock."""
    sent: list[str] = []

    def count(request: Any, **kwargs: Any) -> None:
        sent.append(request.url)

    store._client.meta.events.register("before-send.s3", count)
    try:
        with pytest.raises(StorageUnavailable):
            call()
    finally:
        store._client.meta.events.unregister("before-send.s3", count)
    assert 1 <= len(sent) <= attempts, sent


def test_a_stopped_store_is_unavailable_within_seconds() -> None:
    store = S3Store("evidence-down", f"http://127.0.0.1:{closed_port()}", part_size=PART)
    config = store._client.meta.config
    assert (config.connect_timeout, config.retries) == (
        CONNECT_TIMEOUT,
        {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )
    _unavailable_after_few_attempts(store, store.check)
    key = original_key(b"x")
    _unavailable_after_few_attempts(store, lambda: store.put(key, b"x", sha(b"x"), retain=True))
    _unavailable_after_few_attempts(store, lambda: store.stage_part(upload_id(3), "h", 0, b"x"))
    _unavailable_after_few_attempts(store, lambda: store.stat(key))
    _unavailable_after_few_attempts(store, lambda: store.read(key))
    store.close()


def test_a_store_that_accepts_but_never_answers_is_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = S3Store("evidence-hung", url, part_size=PART, read_timeout=0.5, max_attempts=1)
        assert store._client.meta.config.read_timeout == 0.5  # the bound of the one attempt
        _unavailable_after_few_attempts(store, store.check, attempts=1)
        store.close()


def test_a_missing_bucket_is_unavailable_and_named(moto_url: str) -> None:
    store = S3Store("evidence-no-such-bucket", moto_url, part_size=PART)
    with pytest.raises(StorageUnavailable, match="evidence-no-such-bucket"):
        store.check()
    store.close()


def _without_conditional_writes(client: S3Client, operation: str) -> list[str]:
    """Make `client` answer 501 to `operation` with If-None-Match, as older stores do.

    Returns the list of the paths refused so (to count how often it was asked)."""
    refused: list[str] = []

    class NotImplementedAnswer:
        status_code = 501

    def no_conditional(params: dict[str, Any], **kwargs: Any) -> object:
        if params["headers"].get("If-None-Match") is None:
            return None
        refused.append(params["url_path"])
        error = {"Code": "NotImplemented", "Message": "A header you provided implies"}
        return NotImplementedAnswer(), {"Error": error, "ResponseMetadata": {}}

    client.meta.events.register(
        f"before-call.s3.{operation}",
        no_conditional,  # type: ignore[arg-type]  # botocore: a handler may answer
    )
    return refused


def test_a_store_without_conditional_writes_falls_back_to_head_then_put(
    s3_admin: S3Client, moto_url: str
) -> None:
    """Older S3-compatible stores answer 501 to If-None-Match on PUT."""
    bucket = new_bucket(s3_admin, lock=False)
    client = _client(moto_url)
    refused = _without_conditional_writes(client, "PutObject")
    store = S3Store(bucket, client=client, part_size=PART)
    key = original_key(SMALL)
    assert store.put(key, SMALL, sha(SMALL), retain=True) is True
    assert store.put(key, SMALL, sha(SMALL), retain=True) is False
    assert store.put(derived_key(SMALL), SMALL, sha(SMALL), retain=False) is True
    assert len(refused) == 1  # asked once, then remembered
    assert read_all(store.read(key)) == SMALL
    store.close()


def test_s3_parts_respect_s3_limits() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Store("evidence-x", "http://127.0.0.1:1", part_size=S3_MIN_PART_SIZE - 1)
    store = S3Store("evidence-x", "http://127.0.0.1:1")
    assert (store.part_size, store.retention_days) == (8 * 1024 * 1024, DEFAULT_RETENTION_DAYS)
    with pytest.raises(InvalidInput):
        store.stage_part(upload_id(4), "", 0, b"x")  # no handle: checked before any request
    store.close()


# -- staged at the content key ------------------------------------------------------------


def _stage_at_key(store: S3Store, uid: str, data: bytes) -> tuple[str, list[str], str]:
    key = original_key(data)
    handle = store.stage_begin(uid, key)
    parts = [data[i : i + store.part_size] for i in range(0, len(data), store.part_size)]
    return handle, [store.stage_part(uid, handle, n, p) for n, p in enumerate(parts)], key


def test_an_upload_staged_at_its_key_is_unreadable_until_finished_and_then_locked(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    uid = upload_id(60)
    handle, receipts, key = _stage_at_key(store, uid, LARGE)
    assert not store.stage_readable(handle)
    assert _versions(s3_admin, bucket, "") == []  # nothing under staging/, nothing at the key
    with pytest.raises(NotFound):
        read_all(store.stage_read(uid))
    with pytest.raises(InvalidInput, match="stage_finish"):
        store.stage_complete(uid, handle, receipts, len(LARGE))
    assert store.stage_finish(uid, handle, receipts, len(LARGE), key, sha(LARGE), retain=True)
    _assert_locked_for(s3_admin, bucket, key, 30)
    assert _versions(s3_admin, bucket, "") == [key]  # no copy, no staging object
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_finishing_where_an_object_is_leaves_the_parts_for_the_abort(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    first, second = upload_id(61), upload_id(62)
    handle1, receipts1, key = _stage_at_key(store, first, SMALL)
    handle2, receipts2, _ = _stage_at_key(store, second, SMALL)
    assert store.stage_finish(first, handle1, receipts1, len(SMALL), key, sha(SMALL), retain=False)
    assert not store.stage_finish(
        second, handle2, receipts2, len(SMALL), key, sha(SMALL), retain=False
    )
    assert len(s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    store.stage_abort(second, handle2)
    store.stage_abort(second, handle2)  # idempotent
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _versions(s3_admin, bucket, "") == [key]
    assert "ObjectLockMode" not in s3_admin.head_object(Bucket=bucket, Key=key)  # retain=False
    store.retain(key)
    _assert_locked_for(s3_admin, bucket, key, 30)


@pytest.mark.parametrize(
    "handle",
    ["originals/sha256/00/00/x#abc", f"{original_key(SMALL)}#", f"staging/{'0' * 32}#abc"],
)
def test_a_handle_naming_something_other_than_a_content_key_is_refused(
    locked_store: tuple[S3Store, str], handle: str
) -> None:
    store, _ = locked_store
    with pytest.raises(InvalidInput):
        store.stage_part(upload_id(63), handle, 0, SMALL)
    with pytest.raises(InvalidInput):
        store.stage_abort(upload_id(63), handle)


def test_finishing_at_the_key_without_conditional_writes_heads_first(
    s3_admin: S3Client, moto_url: str
) -> None:
    """A store that answers 501 to If-None-Match on CompleteMultipartUpload."""
    bucket = new_bucket(s3_admin, lock=False)
    client = _client(moto_url)
    refused = _without_conditional_writes(client, "CompleteMultipartUpload")
    store = S3Store(bucket, client=client, part_size=PART)
    handle1, receipts1, key = _stage_at_key(store, upload_id(64), LARGE)
    handle2, receipts2, _ = _stage_at_key(store, upload_id(65), LARGE)
    size, digest = len(LARGE), sha(LARGE)
    first, second = upload_id(64), upload_id(65)
    assert store.stage_finish(first, handle1, receipts1, size, key, digest, retain=False)
    assert not store.stage_finish(second, handle2, receipts2, size, key, digest, retain=False)
    assert len(refused) == 1  # asked once, then remembered
    assert read_all(store.read(key)) == LARGE
    store.stage_abort(upload_id(65), handle2)
    store.close()


def _answer_409(client: S3Client) -> None:
    """Make CompleteMultipartUpload answer 409 ConditionalRequestConflict, as S3 does when a
    concurrent write of the key wins (it then drops the parts)."""

    class Conflict409:
        status_code = 409

    def conflict(params: dict[str, Any], **kwargs: Any) -> object:
        error = {"Code": "ConditionalRequestConflict", "Message": "A conflicting operation"}
        return Conflict409(), {"Error": error, "ResponseMetadata": {}}

    client.meta.events.register(
        "before-call.s3.CompleteMultipartUpload",
        conflict,  # type: ignore[arg-type]  # botocore: a handler may answer
    )


def test_a_conflict_on_completion_is_the_object_there_or_parts_lost(
    s3_admin: S3Client, moto_url: str
) -> None:
    bucket = new_bucket(s3_admin, lock=False)
    client = _client(moto_url)
    _answer_409(client)
    store = S3Store(bucket, client=client, part_size=PART)
    handle, receipts, key = _stage_at_key(store, upload_id(66), LARGE)
    size, digest = len(LARGE), sha(LARGE)
    with pytest.raises(NotFound, match="dropped"):  # nothing there: the caller starts again
        store.stage_finish(upload_id(66), handle, receipts, size, key, digest, retain=False)
    s3_admin.put_object(Bucket=bucket, Key=key, Body=LARGE)  # the concurrent write that won
    assert not store.stage_finish(upload_id(66), handle, receipts, size, key, digest, retain=False)
    store.close()


def test_stage_list_names_uploads_staged_at_their_key_by_handle(
    locked_store: tuple[S3Store, str], s3_admin: S3Client
) -> None:
    store, bucket = locked_store
    handle, _, _ = _stage_at_key(store, upload_id(67), SMALL)
    (found,) = store.stage_list()
    assert (found.upload_id, found.handle, found.complete) == (None, handle, False)
    store.stage_abort(None, found.handle)
    assert store.stage_list() == []
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(InvalidInput):
        store.stage_abort(None, "0123")  # a handle under staging/ needs its upload id


def test_a_receipt_whose_sha256_is_not_the_staged_part_is_refused(
    locked_store: tuple[S3Store, str],
) -> None:
    """AWS lists each part's SHA-256 (moto does not): the receipt must match it."""
    store, _ = locked_store
    uid = upload_id(68)
    handle, receipts, key = _stage_at_key(store, uid, SMALL)
    true_checksum = base64.b64encode(hashlib.sha256(SMALL).digest()).decode()

    def list_checksums_as_aws_does(parsed: dict[str, Any], **kwargs: Any) -> None:
        for part in parsed.get("Parts", []):
            part.setdefault("ChecksumSHA256", true_checksum)

    store._client.meta.events.register("after-call.s3.ListParts", list_checksums_as_aws_does)
    assert receipts[0].startswith("sha256:")
    etag = receipts[0].split(":", 2)[2]
    forged = f"sha256:{base64.b64encode(hashlib.sha256(b'other').digest()).decode()}:{etag}"
    with pytest.raises(InvalidInput, match="receipt 0"):
        store.stage_finish(uid, handle, [forged], len(SMALL), key, sha(SMALL), retain=True)
    assert store.stat(key) is None
    assert store.stage_finish(uid, handle, receipts, len(SMALL), key, sha(SMALL), retain=True)
