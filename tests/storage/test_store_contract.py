"""The `ObjectStore` and `StagingStore` contract: every test runs on every store, none opts out.

Stores: the local directory store, and the S3 store over HTTP against moto's
S3 server with a plain bucket and with an object-lock bucket (see conftest.py).
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator

import pytest
from storehelpers import (
    PART,
    Backend,
    blob,
    derived_key,
    original_key,
    read_all,
    sha,
    split,
    stage,
    upload_id,
)

from evidence.errors import Conflict, Forbidden, IntegrityError, InvalidInput, NotFound
from evidence.storage import (
    CHUNK_SIZE,
    MAX_PARTS,
    ObjectInfo,
    StagingStore,
    content_key,
    parse_content_key,
)

SMALL = blob(1000, seed=1)
THREE_PARTS = blob(2 * PART + 1234, seed=2)  # two full parts and a short last one

# -- keys -------------------------------------------------------------------------

HEX = sha(b"x")

BAD_KEYS = [
    "",
    "../x",
    "originals/../../etc/passwd",
    f"originals/sha256/{HEX[0:2]}/{HEX[2:4]}/../../../../x",
    f"originals/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX}/..",
    f"/originals/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX}",
    f"originals/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX.upper()}",
    f"originals/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX[:-1]}",
    f"originals/sha256/00/00/{HEX}",  # fan-out that does not match the hash
    f"uploads/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX}",
    f"originals/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX}\n",
    f"staging/{'0' * 32}",
]


def test_content_key_fans_out_by_the_first_two_bytes() -> None:
    assert content_key("originals", HEX) == f"originals/sha256/{HEX[0:2]}/{HEX[2:4]}/{HEX}"
    assert parse_content_key(content_key("derived", HEX)) == ("derived", HEX)


@pytest.mark.parametrize(
    ("prefix", "digest"),
    [
        ("uploads", HEX),
        ("", HEX),
        ("../originals", HEX),
        ("originals", HEX.upper()),
        ("originals", HEX[:-1]),
        ("originals", "../" + HEX[3:]),
        ("originals", "g" * 64),
    ],
)
def test_content_key_refuses_bad_prefix_or_hex(prefix: str, digest: str) -> None:
    with pytest.raises(InvalidInput):
        content_key(prefix, digest)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_are_not_content_addresses_are_refused(backend: Backend, key: str) -> None:
    store = backend.store
    with pytest.raises(InvalidInput):
        store.put(key, b"x", HEX, retain=False)
    with pytest.raises(InvalidInput):
        store.stat(key)
    with pytest.raises(InvalidInput):
        store.read(key)
    with pytest.raises(InvalidInput):
        store.delete(key)


@pytest.mark.parametrize("bad", ["", "../" + "0" * 29, "0" * 31, "0" * 33, "A" * 32, "g" * 32])
def test_upload_ids_that_are_not_32_hex_digits_are_refused(backend: Backend, bad: str) -> None:
    store = backend.store
    key = original_key(SMALL)
    for call in (
        lambda: store.stage_begin(bad),
        lambda: store.stage_part(bad, "h", 0, b"x"),
        lambda: store.stage_complete(bad, "h", ["r"], 1),
        lambda: store.stage_read(bad),
        lambda: store.stage_commit(bad, key, sha(SMALL), len(SMALL), retain=True),
        lambda: store.stage_abort(bad, "h"),
    ):
        with pytest.raises(InvalidInput):
            call()


# -- put, stat, read, delete ------------------------------------------------------


def test_put_creates_the_object_under_its_content_address(backend: Backend) -> None:
    key = original_key(SMALL)
    assert backend.store.stat(key) is None
    assert backend.store.put(key, SMALL, sha(SMALL), retain=True) is True
    info = backend.store.stat(key)
    assert info is not None
    assert info.size == len(SMALL)
    assert read_all(backend.store.read(key)) == SMALL


def test_put_of_the_same_bytes_again_is_idempotent(backend: Backend) -> None:
    key = derived_key(SMALL)
    assert backend.store.put(key, SMALL, sha(SMALL), retain=False) is True
    assert backend.store.put(key, SMALL, sha(SMALL), retain=False) is False
    assert backend.copies(key) == 1
    assert read_all(backend.store.read(key)) == SMALL


def test_put_over_an_object_with_other_bytes_is_refused_and_leaves_it(backend: Backend) -> None:
    key = original_key(SMALL)
    impostor = blob(len(SMALL), seed=99)  # same size, other bytes
    backend.plant(key, impostor)
    with pytest.raises(IntegrityError):
        backend.store.put(key, SMALL, sha(SMALL), retain=True)
    assert read_all(backend.store.read(key)) == impostor


def test_put_over_an_object_of_another_size_is_refused(backend: Backend) -> None:
    key = derived_key(SMALL)
    backend.plant(key, b"short")
    with pytest.raises(IntegrityError):
        backend.store.put(key, SMALL, sha(SMALL), retain=False)
    assert read_all(backend.store.read(key)) == b"short"


def test_put_with_a_wrong_hash_stores_nothing(backend: Backend) -> None:
    other = blob(10, seed=3)
    key = original_key(other)
    with pytest.raises(IntegrityError):
        backend.store.put(key, SMALL, sha(other), retain=True)
    assert backend.store.stat(key) is None


def test_put_under_the_address_of_another_hash_is_refused(backend: Backend) -> None:
    with pytest.raises(InvalidInput):
        backend.store.put(original_key(b"other"), SMALL, sha(SMALL), retain=True)
    assert backend.store.stat(original_key(b"other")) is None


def test_put_of_an_empty_object(backend: Backend) -> None:
    key = derived_key(b"")
    assert backend.store.put(key, b"", sha(b""), retain=False) is True
    assert backend.store.stat(key) == ObjectInfo(size=0)
    assert read_all(backend.store.read(key)) == b""


def test_stat_of_a_missing_object_is_none(backend: Backend) -> None:
    assert backend.store.stat(original_key(b"nothing")) is None


def test_read_of_a_missing_object_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.read(original_key(b"nothing"))


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 1000), (5, None), (0, 10), (3, 7), (999, None), (1000, None), (4, 4), (0, 0)],
)
def test_read_returns_the_byte_range(backend: Backend, start: int, end: int | None) -> None:
    key = derived_key(SMALL)
    backend.store.put(key, SMALL, sha(SMALL), retain=False)
    assert read_all(backend.store.read(key, start, end)) == SMALL[start:end]


@pytest.mark.parametrize(
    ("start", "end"), [(-1, None), (0, 1001), (1001, None), (5, 4), (0, -1), (2000, 3000)]
)
def test_read_of_a_range_outside_the_object_is_invalid(
    backend: Backend, start: int, end: int | None
) -> None:
    key = derived_key(SMALL)
    backend.store.put(key, SMALL, sha(SMALL), retain=False)
    with pytest.raises(InvalidInput):
        backend.store.read(key, start, end)


def test_read_streams_in_chunks_of_at_most_one_mib(backend: Backend) -> None:
    data = blob(3 * CHUNK_SIZE + 17, seed=4)
    key = derived_key(data)
    backend.store.put(key, data, sha(data), retain=False)
    chunks = list(backend.store.read(key))
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
    assert len(chunks) >= 4
    assert b"".join(chunks) == data
    ranged = list(backend.store.read(key, 10, 2 * CHUNK_SIZE + 20))
    assert max(len(chunk) for chunk in ranged) <= CHUNK_SIZE
    assert b"".join(ranged) == data[10 : 2 * CHUNK_SIZE + 20]


def test_a_stream_closed_early_can_be_dropped(backend: Backend) -> None:
    data = blob(2 * CHUNK_SIZE, seed=5)
    key = derived_key(data)
    backend.store.put(key, data, sha(data), retain=False)
    with backend.store.read(key) as chunks:
        assert next(chunks) == data[:CHUNK_SIZE]
    unread = backend.store.read(key)  # never iterated: closed when dropped
    del unread
    assert read_all(backend.store.read(key)) == data


def test_delete_removes_the_object(backend: Backend) -> None:
    key = derived_key(SMALL)
    backend.store.put(key, SMALL, sha(SMALL), retain=False)
    assert backend.store.delete(key) is True
    assert backend.store.stat(key) is None
    assert backend.copies(key) == 0
    with pytest.raises(NotFound):
        backend.store.read(key)
    assert backend.store.delete(key) is False
    assert backend.store.put(key, SMALL, sha(SMALL), retain=False) is True


def test_check_passes_on_a_working_store(backend: Backend) -> None:
    backend.store.check()


# -- staging ----------------------------------------------------------------------


def test_staged_parts_in_order_commit_to_the_content_address(backend: Backend) -> None:
    store, uid = backend.store, upload_id(1)
    stage(store, uid, THREE_PARTS)
    assert read_all(store.stage_read(uid)) == THREE_PARTS
    key = original_key(THREE_PARTS)
    assert store.stage_commit(uid, key, sha(THREE_PARTS), len(THREE_PARTS), retain=True) is True
    assert read_all(store.read(key)) == THREE_PARTS
    info = store.stat(key)
    assert info is not None
    assert info.size == len(THREE_PARTS)
    assert store.stage_list() == []
    with pytest.raises(NotFound):
        store.stage_read(uid)


def test_a_completed_upload_can_be_read_in_ranges(backend: Backend) -> None:
    store, uid = backend.store, upload_id(24)
    stage(store, uid, THREE_PARTS)
    for start, end in ((0, 10), (PART - 3, PART + 3), (len(THREE_PARTS) - 1, None), (7, 7)):
        assert read_all(store.stage_read(uid, start, end)) == THREE_PARTS[start:end]
    for start, end in ((-1, None), (0, len(THREE_PARTS) + 1), (9, 8)):
        with pytest.raises(InvalidInput):
            store.stage_read(uid, start, end)


def test_staged_parts_out_of_order(backend: Backend) -> None:
    store, uid = backend.store, upload_id(2)
    stage(store, uid, THREE_PARTS, order=[2, 0, 1])
    assert hashlib.sha256(read_all(store.stage_read(uid))).hexdigest() == sha(THREE_PARTS)
    key = derived_key(THREE_PARTS)
    assert store.stage_commit(uid, key, sha(THREE_PARTS), len(THREE_PARTS), retain=False)
    assert read_all(store.read(key, PART - 5, PART + 5)) == THREE_PARTS[PART - 5 : PART + 5]


def test_a_retried_part_gives_the_same_receipt(backend: Backend) -> None:
    store, uid = backend.store, upload_id(3)
    parts = split(THREE_PARTS)
    handle = store.stage_begin(uid)
    receipts = [store.stage_part(uid, handle, n, part) for n, part in enumerate(parts)]
    assert store.stage_part(uid, handle, 1, parts[1]) == receipts[1]
    store.stage_complete(uid, handle, receipts, len(THREE_PARTS))
    assert read_all(store.stage_read(uid)) == THREE_PARTS


def test_a_part_sent_again_with_other_bytes_replaces_it(backend: Backend) -> None:
    store, uid = backend.store, upload_id(4)
    first = blob(PART + 500, seed=6)
    final = first[:PART] + blob(300, seed=7)  # the last part resent, shorter
    handle = store.stage_begin(uid)
    receipts = [store.stage_part(uid, handle, 0, first[:PART])]
    store.stage_part(uid, handle, 1, first[PART:])
    receipts.append(store.stage_part(uid, handle, 1, final[PART:]))
    store.stage_complete(uid, handle, receipts, len(final))
    assert read_all(store.stage_read(uid)) == final


def test_complete_with_a_wrong_size_is_refused_and_the_parts_stay(backend: Backend) -> None:
    store, uid = backend.store, upload_id(5)
    parts = split(THREE_PARTS)
    handle = store.stage_begin(uid)
    receipts = [store.stage_part(uid, handle, n, part) for n, part in enumerate(parts)]
    for size in (len(THREE_PARTS) + 1, len(THREE_PARTS) - 1, 3 * PART + 1, 0):
        with pytest.raises(InvalidInput):
            store.stage_complete(uid, handle, receipts, size)
    with pytest.raises(NotFound):
        store.stage_read(uid)
    store.stage_complete(uid, handle, receipts, len(THREE_PARTS))
    assert read_all(store.stage_read(uid)) == THREE_PARTS


def test_complete_with_a_part_missing_is_refused(backend: Backend) -> None:
    store, uid = backend.store, upload_id(6)
    parts = split(THREE_PARTS)
    handle = store.stage_begin(uid)
    receipts = [store.stage_part(uid, handle, n, parts[n]) for n in (0, 2)]
    with pytest.raises(InvalidInput):  # too few receipts
        store.stage_complete(uid, handle, receipts, len(THREE_PARTS))
    guessed = [receipts[0], receipts[0].replace("0:", "1:"), receipts[1]]
    with pytest.raises(InvalidInput):  # a receipt for a part that never came
        store.stage_complete(uid, handle, guessed, len(THREE_PARTS))
    receipt = store.stage_part(uid, handle, 1, parts[1])
    store.stage_complete(uid, handle, [receipts[0], receipt, receipts[1]], len(THREE_PARTS))
    assert read_all(store.stage_read(uid)) == THREE_PARTS


def test_complete_again_after_completing_is_harmless(backend: Backend) -> None:
    store, uid = backend.store, upload_id(7)
    handle, receipts = stage(store, uid, THREE_PARTS)
    store.stage_complete(uid, handle, receipts, len(THREE_PARTS))
    assert read_all(store.stage_read(uid)) == THREE_PARTS


def test_bad_parts_are_refused(backend: Backend) -> None:
    store, uid = backend.store, upload_id(8)
    handle = store.stage_begin(uid)
    for number, data in ((-1, b"x"), (MAX_PARTS, b"x"), (0, b""), (0, b"x" * (PART + 1))):
        with pytest.raises(InvalidInput):
            store.stage_part(uid, handle, number, data)


def test_parts_of_an_upload_never_begun_are_not_found(backend: Backend) -> None:
    store = backend.store
    with pytest.raises(NotFound):
        store.stage_part(upload_id(10), "no-such-handle", 0, b"x")
    with pytest.raises(NotFound):
        store.stage_read(upload_id(10))


def test_beginning_an_upload_twice_is_a_conflict(backend: Backend) -> None:
    store, uid = backend.store, upload_id(11)
    store.stage_begin(uid)
    with pytest.raises(Conflict):
        store.stage_begin(uid)


def test_an_empty_upload_commits(backend: Backend) -> None:
    store, uid = backend.store, upload_id(12)
    stage(store, uid, b"")
    assert read_all(store.stage_read(uid)) == b""
    key = derived_key(b"")
    assert store.stage_commit(uid, key, sha(b""), 0, retain=False) is True
    assert store.stat(key) == ObjectInfo(size=0)


def test_the_same_bytes_from_another_upload_are_stored_once(backend: Backend) -> None:
    store = backend.store
    key = original_key(THREE_PARTS)
    first, second = upload_id(13), upload_id(14)
    stage(store, first, THREE_PARTS)
    stage(store, second, THREE_PARTS)
    assert store.stage_commit(first, key, sha(THREE_PARTS), len(THREE_PARTS), retain=True)
    assert not store.stage_commit(second, key, sha(THREE_PARTS), len(THREE_PARTS), retain=True)
    assert backend.copies(key) == 1
    assert backend.copies(f"staging/{second}") == 0
    assert store.stage_list() == []
    with pytest.raises(NotFound):
        store.stage_read(second)
    assert read_all(store.read(key)) == THREE_PARTS


def test_a_retried_commit_reports_the_object_already_there(backend: Backend) -> None:
    store, uid = backend.store, upload_id(15)
    key = derived_key(THREE_PARTS)
    stage(store, uid, THREE_PARTS)
    assert store.stage_commit(uid, key, sha(THREE_PARTS), len(THREE_PARTS), retain=False)
    assert not store.stage_commit(uid, key, sha(THREE_PARTS), len(THREE_PARTS), retain=False)


def test_a_commit_never_overwrites_an_object_of_another_size(backend: Backend) -> None:
    store, uid = backend.store, upload_id(16)
    key = original_key(THREE_PARTS)
    backend.plant(key, b"something else")
    stage(store, uid, THREE_PARTS)
    with pytest.raises(IntegrityError):
        store.stage_commit(uid, key, sha(THREE_PARTS), len(THREE_PARTS), retain=True)
    assert read_all(store.read(key)) == b"something else"
    assert read_all(store.stage_read(uid)) == THREE_PARTS  # kept, for a look or an abort


def test_a_commit_of_the_wrong_size_is_refused(backend: Backend) -> None:
    store, uid = backend.store, upload_id(17)
    key = original_key(THREE_PARTS)
    stage(store, uid, THREE_PARTS)
    with pytest.raises(IntegrityError):
        store.stage_commit(uid, key, sha(THREE_PARTS), len(THREE_PARTS) - 1, retain=True)
    assert store.stat(key) is None


def test_a_commit_under_the_address_of_another_hash_is_refused(backend: Backend) -> None:
    store, uid = backend.store, upload_id(18)
    stage(store, uid, SMALL)
    with pytest.raises(InvalidInput):
        store.stage_commit(uid, original_key(b"other"), sha(SMALL), len(SMALL), retain=True)


def test_a_commit_of_nothing_staged_is_not_found(backend: Backend) -> None:
    store, uid = backend.store, upload_id(19)
    store.stage_begin(uid)  # begun, never completed
    with pytest.raises(NotFound):
        store.stage_commit(uid, original_key(SMALL), sha(SMALL), len(SMALL), retain=True)


def test_abort_removes_everything_staged_and_is_idempotent(backend: Backend) -> None:
    store = backend.store
    running, done = upload_id(20), upload_id(21)
    handle = store.stage_begin(running)
    store.stage_part(running, handle, 0, SMALL)
    done_handle, _ = stage(store, done, SMALL)
    listed = {(u.upload_id, u.complete) for u in store.stage_list()}
    assert listed == {(running, False), (done, True)}
    store.stage_abort(running, handle)
    store.stage_abort(done, done_handle)
    assert store.stage_list() == []
    assert backend.copies(f"staging/{done}") == 0
    with pytest.raises(NotFound):
        store.stage_part(running, handle, 0, SMALL)
    with pytest.raises(NotFound):
        store.stage_read(done)
    store.stage_abort(running, handle)
    store.stage_abort(done, done_handle)
    store.stage_begin(running)  # the id is free again


def test_stage_list_gives_the_handle_needed_to_abort(backend: Backend) -> None:
    store, uid = backend.store, upload_id(22)
    handle = store.stage_begin(uid)
    store.stage_part(uid, handle, 0, SMALL)
    (found,) = store.stage_list()
    assert (found.upload_id, found.handle, found.complete) == (uid, handle, False)
    store.stage_abort(found.upload_id, found.handle)
    assert store.stage_list() == []


# -- memory -----------------------------------------------------------------------

BIG = 64 * 1024 * 1024


def test_a_64_mib_object_streams_in_bounded_memory(backend: Backend) -> None:
    store, uid = backend.store, upload_id(23)
    handle = store.stage_begin(uid)
    digest = hashlib.sha256()
    receipts = []
    for number in range(-(-BIG // PART)):
        part = bytes([number]) * min(PART, BIG - number * PART)
        digest.update(part)
        receipts.append(store.stage_part(uid, handle, number, part))
        del part
    store.stage_complete(uid, handle, receipts, BIG)
    key = content_key("derived", digest.hexdigest())

    def stream_peak(chunks: Iterator[bytes]) -> tuple[str, int, int]:
        rehash = hashlib.sha256()
        largest = 0
        tracemalloc.start()
        try:
            for chunk in chunks:
                largest = max(largest, len(chunk))
                rehash.update(chunk)
                del chunk
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return rehash.hexdigest(), largest, peak

    staged_hash, largest, peak = stream_peak(store.stage_read(uid))
    assert staged_hash == digest.hexdigest()
    assert largest <= CHUNK_SIZE
    assert peak < 8 * CHUNK_SIZE, f"streaming {BIG} bytes peaked at {peak} bytes"

    assert store.stage_commit(uid, key, digest.hexdigest(), BIG, retain=False)
    object_hash, largest, peak = stream_peak(store.read(key))
    assert object_hash == digest.hexdigest()
    assert largest <= CHUNK_SIZE
    assert peak < 8 * CHUNK_SIZE, f"streaming {BIG} bytes peaked at {peak} bytes"


# -- finishing in one step, staged at the content key where the store can ----------


def stage_at_key(store: StagingStore, uid: str, data: bytes) -> tuple[str, list[str], str]:
    """Stage `data` as upload `uid` toward its original's content key; (handle, receipts, key)."""
    key = original_key(data)
    handle = store.stage_begin(uid, key)
    receipts = [
        store.stage_part(uid, handle, number, part)
        for number, part in enumerate(split(data, store.part_size))
    ]
    return handle, receipts, key


@pytest.mark.parametrize("data", [SMALL, THREE_PARTS], ids=["one part", "three parts"])
def test_finish_assembles_the_parts_at_the_content_key(backend: Backend, data: bytes) -> None:
    store, uid = backend.store, upload_id(40)
    handle, receipts, key = stage_at_key(store, uid, data)
    assert store.stat(key) is None  # nothing at the content key before it is finished
    assert store.stage_finish(uid, handle, receipts, len(data), key, sha(data), retain=True)
    assert read_all(store.read(key)) == data
    assert backend.copies(key) == 1
    # A retry (say after a crash before the caller recorded it) reports it there.
    assert not store.stage_finish(uid, handle, receipts, len(data), key, sha(data), retain=True)
    store.stage_abort(uid, handle)
    assert read_all(store.read(key)) == data  # an abort never removes a finished object
    assert store.stage_list() == []


def test_finish_of_the_same_bytes_again_keeps_the_first_until_aborted(backend: Backend) -> None:
    store = backend.store
    first, second = upload_id(41), upload_id(42)
    handle1, receipts1, key = stage_at_key(store, first, THREE_PARTS)
    handle2, receipts2, _ = stage_at_key(store, second, THREE_PARTS)
    size, digest = len(THREE_PARTS), sha(THREE_PARTS)
    assert store.stage_finish(first, handle1, receipts1, size, key, digest, retain=False)
    assert not store.stage_finish(second, handle2, receipts2, size, key, digest, retain=False)
    store.stage_abort(second, handle2)
    assert backend.copies(key) == 1
    assert read_all(store.read(key)) == THREE_PARTS


def test_finish_never_overwrites_an_object_of_another_size(backend: Backend) -> None:
    store, uid = backend.store, upload_id(43)
    handle, receipts, key = stage_at_key(store, uid, THREE_PARTS)
    backend.plant(key, b"something else")
    with pytest.raises(IntegrityError):
        store.stage_finish(
            uid, handle, receipts, len(THREE_PARTS), key, sha(THREE_PARTS), retain=True
        )
    assert read_all(store.read(key)) == b"something else"
    store.stage_abort(uid, handle)
    assert read_all(store.read(key)) == b"something else"


def test_finish_with_a_part_missing_or_the_wrong_key_is_refused(backend: Backend) -> None:
    store, uid = backend.store, upload_id(44)
    handle, receipts, key = stage_at_key(store, uid, THREE_PARTS)
    size, digest = len(THREE_PARTS), sha(THREE_PARTS)
    with pytest.raises(InvalidInput):
        store.stage_finish(uid, handle, receipts[:-1], size, key, digest, retain=True)
    with pytest.raises(InvalidInput):
        store.stage_finish(uid, handle, receipts, size, original_key(b"x"), digest, retain=True)
    assert store.stat(key) is None
    store.stage_abort(uid, handle)
    with pytest.raises(NotFound):
        store.stage_finish(uid, handle, receipts, size, key, digest, retain=True)
    assert store.stat(key) is None


def test_retain_puts_a_checked_object_under_retention(backend: Backend) -> None:
    store, uid = backend.store, upload_id(45)
    handle, receipts, key = stage_at_key(store, uid, SMALL)
    assert store.stage_finish(uid, handle, receipts, len(SMALL), key, sha(SMALL), retain=False)
    store.retain(key)
    store.retain(key)  # idempotent
    info = store.stat(key)
    assert info is not None
    if backend.name == "s3-locked":
        assert info.retention is not None
        assert info.retention.mode == "COMPLIANCE"
        with pytest.raises(Forbidden):
            store.delete(key)
    with pytest.raises(NotFound):
        store.retain(original_key(b"never stored"))


def test_finish_of_an_upload_staged_without_a_key_completes_and_commits(backend: Backend) -> None:
    store, uid = backend.store, upload_id(46)
    handle = store.stage_begin(uid)
    assert store.stage_readable(handle)
    receipts = [store.stage_part(uid, handle, n, part) for n, part in enumerate(split(THREE_PARTS))]
    key, size, digest = original_key(THREE_PARTS), len(THREE_PARTS), sha(THREE_PARTS)
    assert store.stage_finish(uid, handle, receipts, size, key, digest, retain=True)
    assert not store.stage_finish(uid, handle, receipts, size, key, digest, retain=True)
    assert read_all(store.read(key)) == THREE_PARTS
    assert store.stage_list() == []
