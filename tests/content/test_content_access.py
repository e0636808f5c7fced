"""Every read of content is a custody entry, logged before the bytes go out.

A request starts a viewing (and appends ``item.accessed``) unless it is a
range after byte 0 by someone whose last logged access to the item is under
`VIEWING_WINDOW` old; every download is logged. The custody endpoint gives
the item's whole chain with proofs that verify offline with the log's key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from accesshelpers import (
    World,
    accesses,
    add_person,
    build_world,
    entry_at,
    last_entry_of,
    log_size,
    make_settings,
    upload,
    verify_custody,
)

from evidence.app import create_app
from evidence.chain.entries import ItemAccessed
from evidence.content.tables import item_viewings
from evidence.content.viewings import VIEWING_WINDOW, starts_viewing
from evidence.errors import StorageUnavailable
from evidence.settings import Settings
from evidence.storage import CHUNK_SIZE, ObjectStream
from evidence.storage.local import LocalStore
from evidence.web.keys import DB, LOG


async def _content(client: Any, world: World, caller: str, **headers: str) -> Any:
    response = await client.get(
        f"/api/v1/items/{world.item.item}/content", headers={**world.auth(caller), **headers}
    )
    await response.read()
    return response


async def _custody(client: Any, world: World, caller: str) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/items/{world.item.item}/custody", headers=world.auth(caller)
    )
    assert response.status == 200, await response.text()
    history: dict[str, Any] = await response.json()
    return history


async def _vkey(client: Any) -> str:
    return (await (await client.get("/log/vkey")).text()).strip()


async def test_a_viewing_is_one_entry_a_continuation_none_and_a_download_another(
    client: Any, world: World
) -> None:
    log, db, item = client.app[LOG], client.app[DB], world.item.item
    ingested = last_entry_of(db, item)
    before = log_size(log)

    first = await _content(client, world, "reviewer")
    assert first.status == 200
    assert await first.read() == world.item.content
    assert first.headers["Accept-Ranges"] == "bytes"
    assert first.headers["Content-Type"] == "video/mp4"
    assert first.headers["Cache-Control"] == "private, no-store"
    assert first.headers["Content-Disposition"] == f'inline; filename="{item}.mp4"'
    assert log_size(log) == before + 1
    view = entry_at(log, before)
    assert isinstance(view, ItemAccessed)
    assert (view.item, view.prev, view.actor, view.action) == (
        item,
        ingested,
        world.users["reviewer"],
        "view",
    )
    assert last_entry_of(db, item) == before

    more = await _content(client, world, "reviewer", Range="bytes=100-")
    assert more.status == 206
    assert await more.read() == world.item.content[100:]
    assert log_size(log) == before + 1  # continues the viewing: not logged again

    again = await _content(client, world, "reviewer", Range="bytes=0-99")
    assert again.status == 206
    assert log_size(log) == before + 2  # from byte 0: a new viewing (a replay)

    response = await client.get(
        f"/api/v1/items/{item}/content?download=1", headers=world.auth("reviewer")
    )
    assert response.status == 200
    assert await response.read() == world.item.content
    assert response.headers["Content-Disposition"] == f'attachment; filename="{item}.mp4"'
    download = entry_at(log, before + 2)
    assert isinstance(download, ItemAccessed)
    assert (download.action, download.prev) == ("download", before + 1)
    assert log_size(log) == before + 3

    history = await _custody(client, world, "reviewer")
    assert history["item"] == item
    assert history["vkey"] == await _vkey(client)
    verified = verify_custody(history, await _vkey(client), item)
    assert [index for index, _ in verified] == [ingested, before, before + 1, before + 2]
    assert [(a.actor, a.action) for a in accesses(verified)] == [
        (world.users["reviewer"], "view"),
        (world.users["reviewer"], "view"),
        (world.users["reviewer"], "download"),
    ]
    assert history["actors"] == {world.users["reviewer"]: "reviewer"}


async def test_a_reviewer_sees_who_else_looked_and_an_auditor_reads_history_but_not_content(
    client: Any, world: World
) -> None:
    db, item = client.app[DB], world.item.item
    auditor, auditor_token = add_person(db, "auditor", ["auditor"], [])
    world.tokens["auditor"], world.users["auditor"] = auditor_token, auditor
    assert (await _content(client, world, "supervisor")).status == 200
    assert (await _content(client, world, "disclosure", Range="bytes=10-20")).status == 206
    assert (await _content(client, world, "auditor")).status == 403

    history = await _custody(client, world, "reviewer")
    looked = accesses(verify_custody(history, await _vkey(client), item))
    assert [a.actor for a in looked] == [world.users["supervisor"], world.users["disclosure"]]
    assert history["actors"] == {
        world.users["supervisor"]: "supervisor",
        world.users["disclosure"]: "disclosure",
    }
    assert (await _custody(client, world, "auditor"))["entries"] == history["entries"]


async def test_a_continuation_after_the_viewing_window_is_a_new_viewing(
    client: Any, world: World
) -> None:
    log, db, item = client.app[LOG], client.app[DB], world.item.item
    assert (await _content(client, world, "reviewer", Range="bytes=0-9")).status == 206
    before = log_size(log)
    assert (await _content(client, world, "reviewer", Range="bytes=10-19")).status == 206
    assert log_size(log) == before
    # Someone else's continuation is their own first access: logged.
    assert (await _content(client, world, "supervisor", Range="bytes=10-19")).status == 206
    assert log_size(log) == before + 1
    # The reviewer comes back after the window: what the database says decides.
    with db.write() as conn:
        conn.execute(
            item_viewings.update()
            .where(item_viewings.c.actor_id == world.users["reviewer"])
            .values(accessed_at=dt.datetime.now(dt.UTC) - VIEWING_WINDOW)
        )
    assert (await _content(client, world, "reviewer", Range="bytes=20-29")).status == 206
    assert log_size(log) == before + 2
    assert (await _content(client, world, "reviewer", Range="bytes=30-39")).status == 206
    assert log_size(log) == before + 2
    with db.read() as conn:
        viewings = {
            row.actor_id: (row.action, row.entry)
            for row in conn.execute(sa.select(item_viewings).where(item_viewings.c.item_id == item))
        }
    assert viewings == {
        world.users["supervisor"]: ("view", before),
        world.users["reviewer"]: ("view", before + 1),
    }


def test_the_viewing_rule() -> None:
    now = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    recent, old = now - VIEWING_WINDOW + dt.timedelta(seconds=1), now - VIEWING_WINDOW
    assert starts_viewing(download=False, span=None, last_access=recent, now=now)
    assert starts_viewing(download=False, span=(0, 10), last_access=recent, now=now)
    assert starts_viewing(download=True, span=(5, 10), last_access=recent, now=now)
    assert starts_viewing(download=False, span=(5, 10), last_access=None, now=now)
    assert starts_viewing(download=False, span=(5, 10), last_access=old, now=now)
    assert not starts_viewing(download=False, span=(5, 10), last_access=recent, now=now)


async def test_concurrent_viewers_make_one_chain_without_forks(client: Any, world: World) -> None:
    db, log, item = client.app[DB], client.app[LOG], world.item.item
    for n in range(3):
        world.users[f"viewer{n}"], world.tokens[f"viewer{n}"] = add_person(
            db, f"viewer {n}", ["reviewer"], [world.assigned.case]
        )
    viewers = ["reviewer", "supervisor", "disclosure", "viewer0", "viewer1", "viewer2"]
    ingested = last_entry_of(db, item)
    before = log_size(log)
    responses = await asyncio.gather(
        *(_content(client, world, viewer) for viewer in viewers),
        *(_content(client, world, viewer, Range="bytes=0-99") for viewer in viewers),
        *(_content(client, world, viewer) for viewer in viewers[:3]),
    )
    assert [r.status for r in responses] == [200] * 6 + [206] * 6 + [200] * 3
    assert log_size(log) == before + 15

    verified = verify_custody(await _custody(client, world, "reviewer"), await _vkey(client), item)
    # item.ingested, then every access in one unbroken chain (verify_custody checks each
    # entry's prev is the one before it): the walk finds all of them, so nothing forked.
    assert [index for index, _ in verified] == [ingested, *range(before, before + 15)]
    prevs = [getattr(entry, "prev", None) for _, entry in verified]
    assert len(set(prevs)) == len(prevs)
    assert Counter(a.actor for a in accesses(verified)) == Counter(
        world.users[v] for v in viewers * 2 + viewers[:3]
    )
    assert last_entry_of(db, item) == before + 14


async def test_nothing_is_sent_when_the_log_cannot_record_the_access(
    client: Any, world: World
) -> None:
    log, db, item = client.app[LOG], client.app[DB], world.item.item
    before, last = log_size(log), last_entry_of(db, item)
    await log.close()  # the log takes no more appends, as when its database is gone
    response = await _content(client, world, "reviewer")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "storage_unavailable"
    assert world.item.content[:64] not in await response.read()
    assert "Content-Range" not in response.headers
    assert (log_size(log), last_entry_of(db, item)) == (before, last)
    with db.read() as conn:
        assert conn.execute(sa.select(item_viewings)).first() is None
    # Metadata and history do not depend on appending: still served.
    assert (await _custody(client, world, "reviewer"))["size"] == before


class FailingStore(LocalStore):
    """The real local store, whose reads can be made to fail: at once, or after a chunk."""

    fail: str = ""  # "" (never), "open" or "midway"

    def read(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        if self.fail == "open":
            raise StorageUnavailable("local object store: the disk is gone")
        stream = super().read(key, start, end)
        if self.fail != "midway":
            return stream

        def chunks() -> Iterator[bytes]:
            yield next(stream)
            raise StorageUnavailable("local object store: the disk went away")

        return ObjectStream(chunks(), stream.close)


@pytest.fixture
async def failing_store(aiohttp_client: Any, tmp_path: Path) -> tuple[Any, FailingStore]:
    """The real app on a `FailingStore` (working until told otherwise), on SQLite."""
    settings: Settings = make_settings(tmp_path / "data")
    store = FailingStore(tmp_path / "objects")
    return await aiohttp_client(create_app(settings, store=store)), store


async def test_a_store_that_cannot_open_the_object_is_503_and_nothing_is_logged(
    failing_store: tuple[Any, FailingStore],
) -> None:
    client, store = failing_store
    world = await build_world(client, ("reviewer",), extras=False)
    before = log_size(client.app[LOG])
    store.fail = "open"
    response = await _content(client, world, "reviewer")
    assert response.status == 503
    assert (await response.json())["error"] == "storage_unavailable"
    assert log_size(client.app[LOG]) == before


async def test_a_store_failing_midway_cuts_the_connection_after_logging_the_access(
    failing_store: tuple[Any, FailingStore],
) -> None:
    client, store = failing_store
    world = await build_world(client, ("reviewer",), extras=False)
    big = bytes(48 + n % 10 for n in range(CHUNK_SIZE + 1000))  # two chunks
    text = await upload(client, world.assigned, big, kind="document", media_type="text/plain")
    before = log_size(client.app[LOG])
    store.fail = "midway"
    response = await client.get(
        f"/api/v1/items/{text.item}/content", headers=world.auth("reviewer")
    )
    assert response.status == 200  # the headers went before the store failed
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    assert log_size(client.app[LOG]) == before + 1  # logged before the first byte
    store.fail = ""
    again = await _content(client, world, "reviewer")  # the server goes on serving
    assert (again.status, await again.read()) == (200, world.item.content)
