"""Edges of the tus handlers: malformed headers, expiry, text checked as it streams."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from ingesthelpers import TUS, Kit, create, patch, stores_nothing

from evidence.ingest.tables import uploads
from evidence.web.keys import DB, INGEST, LOG


async def test_malformed_headers_get_400_never_500(client: Any, kit: Kit, objects: Any) -> None:
    content = b"plain text\n" * 10
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    created = await create(client, kit, manifest, signature)
    location = created.headers["Location"]
    with stores_nothing(client, objects):
        await _malformed(client, kit, location, content, manifest, signature)
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(uploads.c.offset)).scalar_one() == 0


async def _malformed(
    client: Any, kit: Kit, location: str, content: bytes, manifest: bytes, signature: bytes
) -> None:
    for offset in ("abc", "-1", "+5", "1e3", "0x10", "9" * 30):
        response = await patch(client, kit, location, 0, content, **{"Upload-Offset": offset})
        assert response.status == 400, offset
        assert (await response.json())["error"] == "invalid_input"
    for length in ("", "x", "-3"):
        response = await create(client, kit, manifest, signature, **{"Upload-Length": length})
        assert response.status == 400, length
    for metadata in ("manifest", "manifest !!!,signature x", "manifest YQ==,manifest YQ=="):
        response = await client.post(
            "/api/v1/uploads",
            headers={**TUS, **kit.auth, "Upload-Length": "1", "Upload-Metadata": metadata},
        )
        assert response.status == 400, metadata
    deferred = await client.post(
        "/api/v1/uploads", headers={**TUS, **kit.auth, "Upload-Defer-Length": "1"}
    )
    assert deferred.status == 400
    no_auth = await client.head(location, headers=TUS)
    assert no_auth.status == 401


async def test_text_that_is_not_utf8_is_refused(client: Any, kit: Kit, objects: Any) -> None:
    before = client.app[LOG].size()
    latin1 = "Café, niño\n".encode("latin-1") * 100
    manifest, signature = kit.manifest(latin1, kind="document", media_type="text/plain")
    with stores_nothing(client, objects):
        created = await create(client, kit, manifest, signature)
        response = await patch(client, kit, created.headers["Location"], 0, latin1)
    assert response.status == 422
    assert "not UTF-8" in (await response.json())["detail"]
    assert client.app[LOG].size() == before


async def test_text_checked_after_a_restart_is_read_from_the_store(client: Any, kit: Kit) -> None:
    """A process that did not see every byte re-reads them: hash and UTF-8 both."""
    text = b"Visit: child seen alone, room warm.\n" * 50
    bad = text[:-2] + b"\xff\n"
    ingest = client.app[INGEST]
    for content, status in ((text, 204), (bad, 422)):
        manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
        location = (await create(client, kit, manifest, signature)).headers["Location"]
        assert (await patch(client, kit, location, 0, content[:100])).status == 204
        ingest._streams.clear()  # what a restart or another server process would not have
        response = await patch(client, kit, location, 100, content[100:])
        assert response.status == status


async def test_expired_uploads_are_gone_and_cleaned_up(client: Any, kit: Kit) -> None:
    content = b"notes\n" * 100
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    created = await create(client, kit, manifest, signature)
    location = created.headers["Location"]
    await patch(client, kit, location, 0, content[:50])
    ingest = client.app[INGEST]
    real_clock = ingest.clock
    later = real_clock() + ingest.limits.upload_ttl + dt.timedelta(minutes=1)
    ingest.clock = lambda: later
    try:
        head = await client.head(location, headers={**TUS, **kit.auth})
        assert head.status == 404
        assert await ingest.expire() == 1
    finally:
        ingest.clock = real_clock
    with client.app[DB].read() as conn:
        assert conn.execute(sa.select(uploads)).all() == []
    assert await ingest.expire() == 0


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "HEAD"])
async def test_another_devices_upload_is_not_found(
    client: Any, kit: Kit, method: str, objects: Any
) -> None:
    from ingesthelpers import enrolled

    content = b"x\n" * 10
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    other = enrolled(client.app[LOG], client.app[DB], "camera-3")
    headers = {
        **TUS,
        **other.auth,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    with stores_nothing(client, objects):
        response = await client.request(method, location, headers=headers, data=content)
    assert response.status == 404
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert (head.status, head.headers["Upload-Offset"]) == (200, "0")  # still there, untouched


async def test_a_small_item_over_the_configured_size_is_413(
    client: Any, kit: Kit, objects: Any
) -> None:
    import base64
    import io

    import aiohttp

    limit = client.app[INGEST].limits.max_item_size
    content = b"a" * (limit + 1)
    manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
    form = aiohttp.FormData()
    form.add_field("manifest", manifest, filename="m.json", content_type="application/json")
    form.add_field("signature", base64.b64encode(signature).decode())
    form.add_field("content", io.BytesIO(content), filename="c.txt", content_type="text/plain")
    with stores_nothing(client, objects):
        response = await client.post("/api/v1/items", data=form, headers=kit.auth)
    assert response.status == 413
    assert client.app[LOG].size() == 2  # log.created and the enrolment only


async def test_an_upload_committed_but_not_yet_logged_is_finished_by_head(
    client: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log was unavailable just after the object was committed: HEAD finishes the job."""
    from verify import verify_receipt_for

    from evidence.errors import StorageUnavailable

    content = b"statement taken at the door\n" * 20
    manifest, signature = kit.manifest(content, kind="statement", media_type="text/plain")
    location = (await create(client, kit, manifest, signature)).headers["Location"]
    log = client.app[LOG]
    real_append = log.append

    async def unavailable(*args: Any, **kwargs: Any) -> int:
        raise StorageUnavailable("the database is unavailable; retry later")

    monkeypatch.setattr(log, "append", unavailable)
    refused = await patch(client, kit, location, 0, content)
    assert refused.status == 503
    assert refused.headers["Retry-After"]
    monkeypatch.setattr(log, "append", real_append)
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert (head.status, head.headers["Upload-Offset"]) == (200, str(len(content)))
    receipt = await client.get(location + "/receipt", headers=kit.auth)
    assert receipt.status == 200
    verify_receipt_for(await receipt.json(), log.vkey, manifest)


async def test_a_device_uploads_only_to_its_workers_cases(
    client: Any, kit: Kit, objects: Any
) -> None:
    import datetime as dt

    from evidence.cases.registry import add_case
    from evidence.devices.assignments import assign_device
    from evidence.people.accounts import add_user, unassign_case

    db = client.app[DB]
    content = b"note\n"
    other_case = add_case(db, "CASE/not-theirs", now=dt.datetime.now(dt.UTC))["case"]
    manifest, signature = kit.manifest(
        content, kind="document", media_type="text/plain", case=other_case
    )
    with stores_nothing(client, objects):
        refused = await create(client, kit, manifest, signature)
    assert refused.status == 403
    assert "not assigned" in (await refused.json())["detail"]
    # A device whose worker is no longer on the case, or who is not a worker, cannot either.
    unassign_case(db, kit.case, kit.worker)
    with stores_nothing(client, objects):
        again = await create(
            client, kit, *kit.manifest(content, kind="document", media_type="text/plain")
        )
    assert again.status == 403
    with db.read() as conn:
        assert conn.execute(sa.select(uploads)).all() == []
    reviewer = add_user(db, "a reviewer", ["reviewer"], now=dt.datetime.now(dt.UTC))["user"]
    with pytest.raises(Exception, match="not a worker"):
        assign_device(db, kit.device, reviewer)


async def test_a_visit_record_nested_absurdly_deep_is_refused_not_a_crash(
    client: Any, kit: Kit, objects: Any
) -> None:
    record = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    manifest, signature = kit.manifest(record, kind="visit-record", media_type="application/json")
    with stores_nothing(client, objects):
        created = await create(client, kit, manifest, signature)
        response = await patch(client, kit, created.headers["Location"], 0, record)
    assert response.status == 422
    assert "nested too deeply" in (await response.json())["detail"]
