"""A running service whose database went back in time refuses to sign over it.

Through `create_app`, as `evidence serve` builds it: the SQLite file is copied,
the service appends (an item), then the copy is restored, as a backup restore
would. The service started again on the restored database keeps the machine's
high-water mark (evidence.log.highwater) in its data dir and must refuse to
append and sign: the upload fails with the JSON error, the log stays as the
copy had it, and the checkpoint served is still the last one signed over it.
Without the mark (a new machine), the same upload is signed: the mark is what
refuses.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from ingesthelpers import Kit, enrolled

from evidence.app import create_app
from evidence.cases.tables import items
from evidence.chain.checkpoint import verify_checkpoint
from evidence.log.custody import HIGH_WATER_FILE
from evidence.settings import Settings
from evidence.web.keys import DB, LOG

SQLITE_SIDE_FILES = ("-wal", "-shm")


class _Service:
    """The app of `settings`, started and stopped as a server process would be."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def started(self) -> TestClient[Any, Any]:
        return TestClient(TestServer(create_app(self.settings)))


async def _small_item(client: TestClient[Any, Any], kit: Kit, text: bytes) -> Any:
    manifest, signature = kit.manifest(text, kind="document", media_type="text/plain")
    form = aiohttp.FormData()
    form.add_field("manifest", manifest, filename="m.json", content_type="application/json")
    form.add_field("signature", base64.b64encode(signature).decode())
    form.add_field("content", text, filename="c.txt", content_type="text/plain")
    return await client.post("/api/v1/items", data=form, headers=kit.auth)


async def _checkpoint_size(client: TestClient[Any, Any]) -> int:
    text = await (await client.get("/log/checkpoint")).text()
    return verify_checkpoint(text, client.app[LOG].vkey).size  # type: ignore[index]


def _copy(database: Path, to: Path) -> None:
    for suffix in ("", *SQLITE_SIDE_FILES):
        source = database.with_name(database.name + suffix)
        if source.exists():
            shutil.copy2(source, to.with_name(to.name + suffix))


def _restore(copy: Path, database: Path) -> None:
    for suffix in SQLITE_SIDE_FILES:
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    _copy(copy, database)


@pytest.fixture
async def rolled_back(settings: Settings, tmp_path: Path) -> Kit:
    """A service that signed size 3, whose database was then restored to size 2."""
    database = settings.sqlite_path
    assert database is not None
    async with _Service(settings).started() as first:
        kit = enrolled(first.app[LOG], first.app[DB], "camera-rollback")  # size 2
    _copy(database, tmp_path / "backup.db")
    async with _Service(settings).started() as second:
        reply = await _small_item(second, kit, b"signed before the restore\n")
        assert reply.status == 201, await reply.text()
        assert await _checkpoint_size(second) == 3
    _restore(tmp_path / "backup.db", database)
    return kit


async def test_a_service_started_on_a_rolled_back_database_refuses_to_sign(
    rolled_back: Kit, settings: Settings
) -> None:
    async with _Service(settings).started() as again:
        assert again.app[LOG].size() == 2  # the restored database
        reply = await _small_item(again, rolled_back, b"after the restore\n")
        assert reply.status == 500, await reply.text()
        body = await reply.json()
        assert body["error"] == "integrity_error"
        assert "went back in time" in body["detail"]
        assert again.app[LOG].size() == 2
        assert await _checkpoint_size(again) == 2  # nothing signed over the restored state
        with again.app[DB].read() as conn:
            assert conn.execute(sa.select(items)).all() == []


async def test_without_the_high_water_mark_the_same_upload_is_signed(
    rolled_back: Kit, settings: Settings
) -> None:
    (settings.data_dir / HIGH_WATER_FILE).unlink()  # another machine: no memory of size 3
    async with _Service(settings).started() as again:
        reply = await _small_item(again, rolled_back, b"after the restore\n")
        assert reply.status == 201, await reply.text()
        assert await _checkpoint_size(again) == 3
