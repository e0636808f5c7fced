"""Committing an upload: straight at its content address, resumed without reading back.

Runs on every store of conftest.py: local, S3 staged at the content key (the
hash saved with each part), and S3 staged under staging/ (no saved hash).
Uploads here are larger than a part, so they go through staged parts, not
the in-memory path of small items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from ingesthelpers import Kit, create, patch
from media import mp4_video

from evidence.app import DB, LOG
from evidence.db.schema import items, uploads
from evidence.ingest.tus import INGEST
from evidence.storage import content_key


def _text(size: int, seed: int = 0) -> bytes:
    line = f"visit note {seed}: child seen alone, room warm, food in the fridge.\n".encode()
    return (line * (size // len(line) + 1))[:size]


class _Reads:
    """Counts the reads of staged or stored bytes the ingest makes (wraps its store)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.staged = 0
        self.stored = 0
        store = client.app[INGEST].store
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


async def test_an_object_removed_while_a_second_upload_adopts_it_is_committed_again(
    client: Any,
    kit: Kit,
    objects: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    store_kind: str,
) -> None:
    """The race `_unstore` guards: the first upload refuses and removes the object that a
    second upload of the same bytes found there. The second records only once the
    object is confirmed there, in the append's transaction; else it answers 503 and
    its retry commits its own parts."""
    content = _text(_part(client) + 3000, seed=5)
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    ingest = client.app[INGEST]
    store = ingest.store
    store.put(key, content, hashlib.sha256(content).hexdigest(), retain=False)  # the first's
    stage_finish, stage_commit = store.stage_finish, store.stage_commit

    def then_removed(finish: Callable[..., bool]) -> Callable[..., bool]:
        def run(*args: Any, **kwargs: Any) -> bool:
            created = finish(*args, **kwargs)
            if not created:  # as the first upload's refusal would, right now
                ingest._unstore(key)
            return created

        return run

    monkeypatch.setattr(store, "stage_finish", then_removed(stage_finish))
    monkeypatch.setattr(store, "stage_commit", then_removed(stage_commit))
    before = client.app[LOG].size()
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    response = await patch(client, kit, location, 0, content)
    if not store.stage_readable(_handle(client)):
        assert response.status == 503, await response.text()  # the object went: retry
        assert client.app[LOG].size() == before
        monkeypatch.setattr(store, "stage_finish", stage_finish)
        head = await client.head(location, headers={"Tus-Resumable": "1.0.0", **kit.auth})
        assert head.status == 200
    elif store_kind == "local":
        # Content is checked before the commit here, so no upload on such a server
        # ever removes an object. Still, no item is recorded for an object not there.
        assert response.status == 503, await response.text()  # confirmed gone when recorded
        assert client.app[LOG].size() == before
        with client.app[DB].read() as conn:
            assert conn.execute(sa.select(items)).all() == []
        return
    else:  # committed over staging/: the object was locked first, so it could not go
        assert response.status == 204, await response.text()
    receipt = await client.get(location + "/receipt", headers=kit.auth)
    assert receipt.status == 200, await receipt.text()
    assert objects() == [key]
    assert b"".join(store.read(key)) == content


def _part(client: Any) -> int:
    size: int = client.app[INGEST].store.part_size
    return size


def _handle(client: Any) -> str:
    with client.app[DB].read() as conn:
        handle: str = conn.execute(sa.select(uploads.c.stage_handle)).scalar_one()
    return handle


async def test_unstore_keeps_an_object_an_item_holds(client: Any, kit: Kit) -> None:
    content = _text(1000, seed=6)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    assert (await patch(client, kit, location, 0, content)).status == 204
    key = content_key("originals", hashlib.sha256(content).hexdigest())
    client.app[INGEST]._unstore(key)
    assert b"".join(client.app[INGEST].store.read(key)) == content
