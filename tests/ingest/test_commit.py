"""Committing an upload: straight at its content address, resumed without reading back.

Runs on every store of conftest.py: local, S3 staged at the content key (the
hash saved with each part), and S3 staged under staging/ (no saved hash).
Uploads here are larger than a part, so they go through staged parts, not
the in-memory path of small items.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from ingesthelpers import Kit, create, patch
from media import mp4_video

from evidence.cases.tables import items
from evidence.errors import Conflict, Forbidden, StorageUnavailable
from evidence.ingest.tables import upload_parts, uploads
from evidence.storage import content_key
from evidence.web.keys import DB, INGEST, LOG, STORE


def _text(size: int, seed: int = 0) -> bytes:
    line = f"visit note {seed}: child seen alone, room warm, food in the fridge.\n".encode()
    return (line * (size // len(line) + 1))[:size]


class _Reads:
    """Counts the reads of staged or stored bytes the ingest makes (wraps its store)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.staged = 0
        self.stored = 0
        store = client.app[STORE]
        stage_read, read = store.stage_read, store.read

        def counted_stage_read(*args: Any, **kwargs: Any) -> Any:
            self.staged += 1
            return stage_read(*args, **kwargs)

        def counted_read(*args: Any, **kwargs: Any) -> Any:
            self.stored += 1
            return read(*args, **kwargs)

        monkeypatch.setattr(store, "stage_read", counted_stage_read)
        monkeypatch.setattr(store, "read", counted_read)


async def test_a_resumed_upload_carries_its_saved_hash_on_without_reading_back(
    client: Any, kit: Kit, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = _text(2 * _part(client) + 777, seed=1)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    ingest = client.app[INGEST]
    reads = _Reads(client, monkeypatch)
    offset = 0
    for end in (_part(client) + 5, 2 * _part(client) + 100, len(content)):
        ingest._streams.clear()  # each request as if on another server process
        response = await patch(client, kit, location, offset, content[offset:end])
        assert response.status == 204, await response.text()
        offset = end
    with client.app[DB].read() as conn:
        row = conn.execute(sa.select(uploads)).one()
    assert row.state == "complete"
    if store_kind == "s3-no-saved-hash":  # the fallback: the staged object is read once
        assert row.stream_state is None
        assert reads.staged > 0
    else:
        assert reads.staged == reads.stored == 0  # hash and UTF-8 check carried over


async def test_footage_larger_than_a_part_is_checked_and_committed(
    client: Any, kit: Kit, objects: Callable[[], list[str]]
) -> None:
    video = mp4_video()
    content = video + b"\0" * (_part(client) + 1000 - len(video))  # trailing bytes: still readable
    manifest, signature = kit.manifest(content)
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    assert response.status == 204, await response.text()
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    assert objects() == [key]  # no staging object, no multipart upload, nothing else


async def test_footage_that_is_not_video_is_refused_and_nothing_stays(
    client: Any, kit: Kit, objects: Callable[[], list[str]]
) -> None:
    content = _text(_part(client) + 1000, seed=2)  # larger than a part: not checked in memory
    manifest, signature = kit.manifest(content)  # declared video/mp4
    before = client.app[LOG].size()
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    assert response.status == 422, await response.text()
    assert "not readable media" in (await response.json())["detail"]
    assert objects() == []  # S3: completed at its key, checked, removed again
    assert client.app[LOG].size() == before
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(uploads)).all() == []


async def test_refused_footage_never_removes_the_same_bytes_held_by_an_item(
    client: Any, kit: Kit, objects: Callable[[], list[str]]
) -> None:
    content = _text(_part(client) + 1000, seed=3)
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    as_text = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, *as_text)).headers["Location"]
    assert (await patch(client, kit, location, 0, content)).status == 204
    as_video = kit.manifest(content)  # the same bytes, now claimed to be footage
    location = (await create(client, kit, *as_video)).headers["Location"]
    assert (await patch(client, kit, location, 0, content)).status == 422
    assert objects() == [key]


async def test_the_same_bytes_twice_commit_once_and_the_second_staging_goes(
    client: Any, kit: Kit, objects: Callable[[], list[str]]
) -> None:
    content = _text(_part(client) + 2000, seed=4)
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    for _ in range(2):  # two manifests (seq 1 and 2), one object
        manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
        location = (await create(client, kit, manifest, signature)).headers["Location"]
        assert (await patch(client, kit, location, 0, content)).status == 204
    assert objects() == [key]
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one() == 2


async def test_an_object_removed_from_outside_as_an_upload_adopts_it_is_never_recorded(
    client: Any,
    kit: Kit,
    objects: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    store_kind: str,
) -> None:
    """Someone with access to the store deletes the object just after a second upload of
    the same bytes found it there. No item may be recorded for a missing object: the
    upload answers 503; staged at its key, its retry commits its own parts."""
    content = _text(_part(client) + 3000, seed=5)
    digest = hashlib.sha256(content).hexdigest()
    key = content_key("originals", digest)
    ingest = client.app[INGEST]
    store = ingest.store
    store.put(key, content, digest, retain=False)  # there before, not locked
    stage_finish, stage_commit = store.stage_finish, store.stage_commit

    refused: list[str] = []

    def then_deleted(finish: Callable[..., bool]) -> Callable[..., bool]:
        def run(*args: Any, **kwargs: Any) -> bool:
            created = finish(*args, **kwargs)
            if not created:
                try:
                    store.delete(key)  # behind the service's back
                except Forbidden:
                    refused.append(key)
            return created

        return run

    monkeypatch.setattr(store, "stage_finish", then_deleted(stage_finish))
    monkeypatch.setattr(store, "stage_commit", then_deleted(stage_commit))
    before = client.app[LOG].size()
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    if store_kind == "s3-no-saved-hash":  # committed over staging/: locked as it was adopted
        assert response.status == 204, await response.text()
        assert refused == [key]
        return
    assert response.status == 503, await response.text()
    assert client.app[LOG].size() == before
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(items)).all() == []
    if store_kind == "local":
        return  # committed beside its key: the staging went with the commit
    monkeypatch.setattr(store, "stage_finish", stage_finish)
    head = await client.head(location, headers={"Tus-Resumable": "1.0.0", **kit.auth})
    assert head.status == 200
    receipt = await client.get(location + "/receipt", headers=kit.auth)
    assert receipt.status == 200, await receipt.text()
    assert objects() == [key]
    assert b"".join(store.read(key)) == content


async def _fail_once(monkeypatch: pytest.MonkeyPatch, ingest: Any, name: str) -> list[int]:
    """Make `ingest.<name>` raise StorageUnavailable on its first call only."""
    calls: list[int] = []
    real = getattr(ingest, name)

    def once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise StorageUnavailable("the store went away for a moment")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, name, once)
    return calls


@pytest.mark.parametrize("extra", [0, 777], ids=["whole parts", "short last part"])
async def test_a_retry_after_the_commit_checks_the_content_again_and_refuses(
    client: Any,
    kit: Kit,
    objects: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    extra: int,
) -> None:
    """A failure after the bytes reached their key (S3), before the content check: the
    retry must still check, refuse, and remove what the upload put there."""
    content = _text(2 * _part(client) + extra, seed=7)
    ingest = client.app[INGEST]
    for name in ("_probe_stored", "_probe_staged"):
        await _fail_once(monkeypatch, ingest, name)
    manifest, signature = kit.manifest(content)  # declared video/mp4: text is not
    before = client.app[LOG].size()
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    first = await patch(client, kit, location, 0, content)
    assert first.status == 503, await first.text()
    head = await client.head(location, headers={"Tus-Resumable": "1.0.0", **kit.auth})
    assert head.status == 422
    assert client.app[LOG].size() == before
    assert objects() == []
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(uploads)).all() == []
        assert conn.execute(sa.select(items)).all() == []


async def test_a_retry_after_the_commit_of_good_footage_records_it_locked(
    client: Any, kit: Kit, objects: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    content, location = await _footage_checked_after_a_failure(
        client, kit, monkeypatch, 2 * _part(client) + 5
    )
    receipt = await client.get(location + "/receipt", headers=kit.auth)
    assert receipt.status == 200, await receipt.text()
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    assert objects() == [key]  # and locked: conftest checks every original at the end


async def test_an_expired_upload_takes_the_object_it_left_at_its_key_with_it(
    client: Any, kit: Kit, objects: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _footage_checked_after_a_failure(client, kit, monkeypatch, _part(client) + 99)
    ingest = client.app[INGEST]
    real_clock = ingest.clock
    later = real_clock() + ingest.limits.upload_ttl + dt.timedelta(minutes=1)
    monkeypatch.setattr(ingest, "clock", lambda: later)
    assert await ingest.expire() == 1
    assert objects() == []  # never recorded, never locked: nothing stays


async def _footage_checked_after_a_failure(
    client: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch, size: int
) -> tuple[bytes, str]:
    """Footage of `size` bytes whose first content check fails with the store (503)."""
    video = mp4_video()
    content = video + b"\0" * (size - len(video))
    ingest = client.app[INGEST]
    for name in ("_probe_stored", "_probe_staged"):
        await _fail_once(monkeypatch, ingest, name)
    manifest, signature = kit.manifest(content)
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    assert (await patch(client, kit, location, 0, content)).status == 503
    return content, location


def _part(client: Any) -> int:
    size: int = client.app[STORE].part_size
    return size


async def test_unstore_keeps_an_object_an_item_or_another_upload_holds(
    client: Any, kit: Kit
) -> None:
    ingest = client.app[INGEST]
    store = ingest.store
    held = _text(1000, seed=6)
    manifest, signature = kit.manifest(held, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    assert (await patch(client, kit, location, 0, held)).status == 204
    held_key = content_key("originals", hashlib.sha256(held).hexdigest())

    def unstore(key: str, upload: str) -> bool:
        removed: bool = ingest.log.exclusive(lambda conn: ingest._unstore(conn, key, upload))
        return removed

    assert unstore(held_key, "0" * 32) is False  # an item holds it
    assert b"".join(store.read(held_key)) == held

    pending = _text(2000, seed=8)
    digest = hashlib.sha256(pending).hexdigest()
    key = content_key("originals", digest)
    store.put(key, pending, digest, retain=False)
    manifest, signature = kit.manifest(pending, kind="document", media_type="text/plain")
    created = await create(client, kit, manifest, signature)  # headed for it, not finished
    upload = created.headers["Location"].rsplit("/", 1)[1]
    assert unstore(key, "0" * 32) is False
    assert store.stat(key) is not None
    assert unstore(key, upload) is True  # only that upload itself was headed there
    assert store.stat(key) is None


async def test_a_patch_at_the_end_after_a_failed_finish_finishes_it(
    client: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tus client that saw a 503 on its last PATCH may send an empty PATCH at the end."""
    content, location = await _footage_checked_after_a_failure(
        client, kit, monkeypatch, 2 * _part(client) + 777
    )
    response = await patch(client, kit, location, len(content), b"")
    assert response.status == 204, await response.text()
    assert response.headers["Upload-Offset"] == str(len(content))
    head = await client.head(location, headers={"Tus-Resumable": "1.0.0", **kit.auth})
    assert head.headers["Upload-Offset"] == str(len(content))
    too_much = await patch(client, kit, location, len(content), b"x")
    assert too_much.status == 409  # complete: nothing more is taken


async def test_a_store_failing_on_the_last_parts_leaves_a_tail_that_still_finishes(
    client: Any, kit: Kit, objects: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    part = _part(client)
    content = _text(3 * part + 500, seed=9)
    store = client.app[STORE]
    # parts 1 and 2 fail once each: the tail grows past one part
    location = await _upload_with_parts_failing_once(client, kit, monkeypatch, content, {1, 2})
    with client.app[DB].read() as conn:
        row = conn.execute(sa.select(uploads)).one()
    assert row.offset == len(content)  # every byte durable: one part, the rest as tail
    assert len(row.tail) > part
    receipt = await client.get(location + "/receipt", headers=kit.auth)
    assert receipt.status == 200, await receipt.text()
    assert objects() == [content_key("originals", hashlib.sha256(content).hexdigest())]
    assert b"".join(store.read(objects()[0])) == content


async def test_an_upload_terminated_while_it_finishes_gets_no_item(
    client: Any,
    kit: Kit,
    objects: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    store_kind: str,
) -> None:
    ingest = client.app[INGEST]
    record_item = ingest._record_item

    async def terminated_first(row: Any, *args: Any, **kwargs: Any) -> int:
        await ingest._discard(row)  # as a DELETE or the expiry would, right now
        return await record_item(row, *args, **kwargs)

    monkeypatch.setattr(ingest, "_record_item", terminated_first)
    content = _text(_part(client) + 10, seed=10)
    before = client.app[LOG].size()
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    assert response.status == 409, await response.text()
    assert client.app[LOG].size() == before
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(items)).all() == []
        assert conn.execute(sa.select(uploads)).all() == []
    if store_kind == "local":
        assert objects() == []
    else:  # locked already (compliance mode): it stays, unreferenced, and a warning says so
        assert objects() == [content_key("originals", hashlib.sha256(content).hexdigest())]


@pytest.mark.parametrize("store_kind", ["s3"])  # only uploads staged at their key
async def test_an_upload_whose_parts_the_store_dropped_starts_again_at_zero(
    client: Any, kit: Kit, store_kind: str, objects: Callable[[], list[str]]
) -> None:
    """S3 answers 409 to a completion when a concurrent write of the key won, and drops
    the parts; with no object there, the upload must be sent again."""
    store = client.app[STORE]
    answered: list[int] = []

    class Conflict409:
        status_code = 409

    def conflict_once(params: dict[str, Any], **kwargs: Any) -> object:
        if answered:
            return None
        answered.append(1)
        error = {"Code": "ConditionalRequestConflict", "Message": "A conflicting operation"}
        return Conflict409(), {"Error": error, "ResponseMetadata": {}}

    store._client.meta.events.register("before-call.s3.CompleteMultipartUpload", conflict_once)
    content = _text(_part(client) + 10, seed=11)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    assert response.status == 503, await response.text()
    head = await client.head(location, headers={"Tus-Resumable": "1.0.0", **kit.auth})
    assert head.headers["Upload-Offset"] == "0"
    again = await patch(client, kit, location, 0, content)
    assert again.status == 204, await again.text()
    assert objects() == [content_key("originals", hashlib.sha256(content).hexdigest())]


async def test_each_part_is_recorded_once_and_the_rows_go_with_the_upload(
    client: Any, kit: Kit
) -> None:
    """Part receipts are rows, one per part, written once (not a list rewritten per part)."""
    part = _part(client)
    content = _text(3 * part + 10, seed=12)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    inserted: list[int] = []

    @sa.event.listens_for(client.app[DB].engine, "before_cursor_execute")
    def count_inserts(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO upload_parts"):
            inserted.append(1)

    try:
        for start, end in ((0, part + 1), (part + 1, 2 * part + 7), (2 * part + 7, 3 * part)):
            assert (await patch(client, kit, location, start, content[start:end])).status == 204
        with client.app[DB].read() as conn:
            numbers = conn.execute(sa.select(upload_parts.c.number)).scalars().all()
        assert sorted(numbers) == [0, 1, 2]
        assert len(inserted) == 3  # one statement per part, each written once
        last = await patch(client, kit, location, 3 * part, content[3 * part :])
        assert last.status == 204
    finally:
        sa.event.remove(client.app[DB].engine, "before_cursor_execute", count_inserts)
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(upload_parts)).all() == []  # gone once complete


async def test_a_finish_from_a_stale_row_reads_what_an_earlier_finish_recorded(
    client: Any, kit: Kit, objects: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finisher A records one piece of a long tail, then fails; finisher B had read the row
    before that. B must pair the parts A recorded with the tail A left, not its old one."""
    part = _part(client)
    content = _text(3 * part + 500, seed=13)
    ingest = client.app[INGEST]
    store = ingest.store
    # 1 and 2 in the PATCH (a long tail), then 3 in A's finish
    await _upload_with_parts_failing_once(client, kit, monkeypatch, content, {1, 2, 3})
    with client.app[DB].read() as conn:
        stale = conn.execute(sa.select(uploads)).one()  # B reads the row now
    with pytest.raises(StorageUnavailable):
        await ingest._finish_if_ready(stale)  # A: stages and records part 1 and 2, fails on 3
    with client.app[DB].read() as conn:
        assert len(conn.execute(sa.select(upload_parts)).all()) == 3
    finished = await ingest._finish_if_ready(stale)  # B, from the row it read before
    assert finished.state == "complete"
    assert b"".join(store.read(objects()[0])) == content


async def test_a_restart_that_lost_the_race_changes_nothing(client: Any, kit: Kit) -> None:
    part = _part(client)
    content = _text(2 * part + 5, seed=14)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    assert (await patch(client, kit, location, 0, content[: 2 * part])).status == 204
    ingest = client.app[INGEST]
    with client.app[DB].read() as conn:
        row = conn.execute(sa.select(uploads)).one()
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    with pytest.raises(Conflict):
        await ingest._restart(row, "not-the-writer", key)
    with client.app[DB].read() as conn:
        assert len(conn.execute(sa.select(upload_parts)).all()) == 2
        assert conn.execute(sa.select(uploads.c.offset)).scalar_one() == 2 * part
    rest = await patch(client, kit, location, 2 * part, content[2 * part :])
    assert rest.status == 204, await rest.text()


async def test_two_requests_finishing_one_upload_both_get_its_receipt(
    client: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, location = await _footage_checked_after_a_failure(
        client, kit, monkeypatch, _part(client) + 123
    )
    upload = location.rsplit("/", 1)[1]
    ingest = client.app[INGEST]
    results = await asyncio.gather(
        ingest.receipt(None, upload), ingest.receipt(None, upload), return_exceptions=True
    )
    receipts = [r for r in results if isinstance(r, dict)]
    assert receipts, results
    # A request that lost the claim may be told to look again; none may fail otherwise.
    assert all(isinstance(r, dict | Conflict) for r in results), results
    assert all(r == receipts[0] for r in receipts)
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(uploads.c.state)).scalar_one() == "complete"


async def test_complete_upload_of_an_upload_already_complete_is_harmless(
    client: Any, kit: Kit
) -> None:
    content = _text(1000, seed=15)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    assert (await patch(client, kit, location, 0, content)).status == 204
    with client.app[DB].read() as conn:
        upload, entry = conn.execute(sa.select(uploads.c.id, uploads.c.entry)).one()
    client.app[INGEST]._complete_upload(upload, entry)  # as the loser of a race would
    with pytest.raises(Conflict):
        client.app[INGEST]._complete_upload("f" * 32, entry)  # gone: no item for it


async def _upload_with_parts_failing_once(
    client: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch, content: bytes, failing: set[int]
) -> str:
    """PATCH all of `content` as a text document while staging each part in `failing`
    fails once with the store unavailable (503); its location."""
    store = client.app[STORE]
    real_stage_part = store.stage_part

    def flaky(upload_id: str, handle: str, number: int, data: Any) -> str:
        if number in failing:
            failing.discard(number)
            raise StorageUnavailable("the store went away for a moment")
        return real_stage_part(upload_id, handle, number, data)

    monkeypatch.setattr(store, "stage_part", flaky)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location: str = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    assert response.status == 503, await response.text()
    return location
