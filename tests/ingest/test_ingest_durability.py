"""An item's object is durable before its entry is appended: fsyncs at the port, in order.

Every way an item arrives (tus in one piece, tus larger than a part, one
POST /api/v1/items) on the local store: `os.fsync` is recorded, by the inode
and device of what it was called on, and so is every append to the log. The
object's own bytes and the directory holding its name must both be fsync'd
before the item's entry is appended: a power cut after the append can then
never leave an entry whose object is lost.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ingesthelpers import Kit, create, patch

from evidence.settings import Settings
from evidence.storage import content_key
from evidence.web.keys import LOG, STORE

pytestmark = pytest.mark.parametrize("store_kind", ["local"])  # the store that fsyncs itself


class Events:
    """What happened, in order: ("fsync", (device, inode), is a directory) and ("append",)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[Any, ...]] = []
        real_fsync = os.fsync
        log = client.app[LOG]
        real_append = log.append

        def fsync(fd: int) -> None:
            st = os.fstat(fd)
            real_fsync(fd)
            self.seen.append(("fsync", (st.st_dev, st.st_ino), stat.S_ISDIR(st.st_mode)))

        async def append(*args: Any, **kwargs: Any) -> Any:
            self.seen.append(("append",))
            return await real_append(*args, **kwargs)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(log, "append", append)

    def check_durable_before_the_append(self, path: Path) -> None:
        """`path`'s bytes, then its directory, fsync'd before the one append."""
        appends = [i for i, event in enumerate(self.seen) if event[0] == "append"]
        assert len(appends) == 1, self.seen
        before = self.seen[: appends[0]]
        file_id = (path.stat().st_dev, path.stat().st_ino)
        dir_id = (path.parent.stat().st_dev, path.parent.stat().st_ino)
        file_syncs = [i for i, event in enumerate(before) if event[1:] == (file_id, False)]
        dir_syncs = [i for i, event in enumerate(before) if event[1:] == (dir_id, True)]
        assert file_syncs, f"{path} was not fsync'd before its entry was appended"
        assert dir_syncs, f"{path.parent} was not fsync'd before the entry was appended"
        assert max(dir_syncs) > min(file_syncs)  # the name made durable after the bytes


def _object_path(settings: Settings, content: bytes) -> Path:
    return (
        settings.data_dir
        / "objects"
        / content_key("originals", hashlib.sha256(content).hexdigest())
    )


def _text(size: int) -> bytes:
    line = b"visit note: child seen alone, durable before it is logged.\n"
    return (line * (size // len(line) + 1))[:size]


@pytest.mark.parametrize("parts", [0, 2], ids=["in memory", "staged in parts"])
async def test_a_tus_upload_is_fsynced_with_its_directory_before_its_entry(
    client: Any, kit: Kit, settings: Settings, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    content = _text(parts * client.app[STORE].part_size + 500)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    events = Events(client, monkeypatch)
    response = await patch(client, kit, location, 0, content)
    assert response.status == 204, await response.text()
    events.check_durable_before_the_append(_object_path(settings, content))


async def test_a_small_item_is_fsynced_with_its_directory_before_its_entry(
    client: Any, kit: Kit, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = _text(700)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    form = aiohttp.FormData()
    form.add_field("manifest", manifest, filename="m.json", content_type="application/json")
    form.add_field("signature", base64.b64encode(signature).decode())
    form.add_field("content", content, filename="c.txt", content_type="text/plain")
    events = Events(client, monkeypatch)
    response = await client.post("/api/v1/items", data=form, headers=kit.auth)
    assert response.status == 201, await response.text()
    events.check_durable_before_the_append(_object_path(settings, content))
