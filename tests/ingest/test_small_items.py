"""Small items in one request (`POST /api/v1/items`): every guarantee of an upload, and
the direct path that keeps them without the tus machinery (no upload row, no staging,
one write transaction: the append)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from ingesthelpers import Kit, enrolled
from media import mp4_video

from evidence.cases.tables import items
from evidence.chain.manifest import item_id
from evidence.chain.receipt import verify_receipt
from evidence.devices.registry import revoke_device
from evidence.ingest.tables import upload_parts, uploads
from evidence.people.accounts import unassign_case
from evidence.review.tables import jobs
from evidence.storage import content_key
from evidence.web.keys import CLOCK, DB, INGEST, LOG, STORE

NOTE = b"Visit at 10:00. Child seen, seen alone. Room warm, food in the fridge.\n"


def form(manifest: bytes, signature: bytes, content: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("manifest", manifest, filename="manifest.json", content_type="application/json")
    data.add_field("signature", base64.b64encode(signature).decode())
    data.add_field("content", content, filename="note.txt", content_type="text/plain")
    return data


async def post(client: Any, kit: Kit, manifest: bytes, signature: bytes, content: bytes) -> Any:
    return await client.post(
        "/api/v1/items", data=form(manifest, signature, content), headers=kit.auth
    )


async def post_note(client: Any, kit: Kit, content: bytes = NOTE, **kw: Any) -> Any:
    kw.setdefault("kind", "document")
    kw.setdefault("media_type", "text/plain")
    manifest, signature = kit.manifest(content, **kw)
    return await post(client, kit, manifest, signature, content)


def rows(client: Any, table: sa.Table) -> list[Any]:
    with client.app[DB].read() as conn:
        return list(conn.execute(sa.select(table)).all())


def log_size(client: Any) -> int:
    return int(client.app[LOG].size())


@pytest.fixture
def write_transactions(client: Any) -> Iterator[list[int]]:
    """Counts the write transactions begun on the app's database (one element each)."""
    begun: list[int] = []

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("evidence_write", False):
            begun.append(1)

    engine = client.app[DB].engine
    sa.event.listen(engine, "begin", on_begin)
    yield begun
    sa.event.remove(engine, "begin", on_begin)


async def test_a_small_item_is_one_append_and_no_upload(
    client: Any, kit: Kit, objects: Any, write_transactions: list[int]
) -> None:
    manifest, signature = kit.manifest(NOTE, kind="document", media_type="text/plain")
    response = await post(client, kit, manifest, signature, NOTE)
    assert response.status == 201, await response.text()
    receipt = await response.json()
    verified = verify_receipt(receipt, client.app[LOG].vkey)
    assert verified.item == item_id(manifest)
    assert len(write_transactions) == 1  # the append: entry, item row and job together
    assert rows(client, uploads) == []
    assert rows(client, upload_parts) == []
    key = content_key("originals", verified.entry.sha256)
    assert objects() == [key]  # no staging left behind
    (item,) = rows(client, items)
    assert (item.id, item.object_key, item.ingested_entry) == (verified.item, key, verified.index)
    assert bytes(item.manifest) == manifest
    assert bytes(item.signature) == signature
    assert [(j.kind, j.item_id, j.state) for j in rows(client, jobs)] == [
        ("review-copy", verified.item, "queued")
    ]


async def test_the_receipt_is_proven_in_the_checkpoint_of_its_batch(client: Any, kit: Kit) -> None:
    """Concurrent items share appends; each receipt verifies offline with the log's key alone."""
    kits = [kit, *(enrolled(client.app[LOG], client.app[DB], f"camera-{n}") for n in range(2, 6))]
    contents = [NOTE + b"%d %d\n" % (n, m) for n in range(len(kits)) for m in range(4)]
    responses = await asyncio.gather(
        *(post_note(client, kits[n // 4], content) for n, content in enumerate(contents))
    )
    receipts = []
    for response in responses:
        assert response.status == 201, await response.text()
        receipts.append(await response.json())
    vkey = client.app[LOG].vkey
    verified = [verify_receipt(r, vkey) for r in receipts]
    assert len({v.index for v in verified}) == len(contents)
    log = client.app[LOG]
    for v, r in zip(verified, receipts, strict=True):
        assert base64.b64decode(r["entry"]) == log.entry(v.index)  # what the log holds
        assert v.checkpoint.root_hash == log.root(v.checkpoint.size)


async def test_the_same_manifest_twice_is_one_item(client: Any, kit: Kit, objects: Any) -> None:
    manifest, signature = kit.manifest(NOTE, kind="document", media_type="text/plain")
    first, second = await asyncio.gather(
        post(client, kit, manifest, signature, NOTE), post(client, kit, manifest, signature, NOTE)
    )
    assert (first.status, second.status) == (201, 201)
    a, b = await first.json(), await second.json()
    assert a["index"] == b["index"]
    assert a["item"] == b["item"] == item_id(manifest)
    again = await post(client, kit, manifest, signature, NOTE)
    assert again.status == 201
    assert (await again.json())["index"] == a["index"]
    assert len(rows(client, items)) == 1
    assert len(rows(client, jobs)) == 1
    assert log_size(client) == 3  # log.created, the enrolment, one item.ingested
    assert len(objects()) == 1


async def test_the_same_bytes_under_two_manifests_are_stored_once(
    client: Any, kit: Kit, objects: Any
) -> None:
    first = await post_note(client, kit)
    second = await post_note(client, kit)
    assert (first.status, second.status) == (201, 201)
    assert (await first.json())["item"] != (await second.json())["item"]
    assert len(rows(client, items)) == 2
    assert objects() == [content_key("originals", rows(client, items)[0].sha256)]


async def test_the_device_chain_is_recorded(client: Any, kit: Kit) -> None:
    one, two = b"first note\n", b"second note\n"
    m1, s1 = kit.manifest(one, kind="document", media_type="text/plain")
    m2, s2 = kit.manifest(two, kind="document", media_type="text/plain")
    assert (await post(client, kit, m2, s2, two)).status == 201  # seq 2 before seq 1
    assert (await post(client, kit, m1, s1, one)).status == 201
    chain = {row.seq: json.loads(row.chain) for row in rows(client, items)}
    assert chain[2] == ["gap: seq 1 of this device has not arrived"]
    assert chain[1] == ["late: arrived after seq 2 of this device"]


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        ("sha256", 422),
        ("size", 400),
        ("content", 422),
        ("declared type", 422),
        ("signature", 422),
        ("another device", 403),
        ("unknown case", 400),
        ("not assigned", 403),
        ("revoked", 403),
    ],
)
async def test_a_refused_small_item_leaves_nothing(
    client: Any, kit: Kit, objects: Any, refusal: str, status: int
) -> None:
    content, kw = NOTE, {"kind": "document", "media_type": "text/plain"}
    if refusal == "sha256":
        kw["sha256"] = "0" * 64
    elif refusal == "size":
        kw["size"] = len(NOTE) + 1
    elif refusal == "content":
        content = b"\xff\xfe not UTF-8"
    elif refusal == "declared type":
        kw.update(kind="footage", media_type="text/plain")
    elif refusal == "unknown case":
        kw["case"] = "f" * 32
    manifest, signature = kit.manifest(content, **kw)
    if refusal == "signature":
        signature = bytes(64)
    elif refusal == "another device":
        other = enrolled(client.app[LOG], client.app[DB], "camera-2")
        manifest, signature = other.manifest(content, **kw)
    elif refusal == "not assigned":
        unassign_case(client.app[DB], kit.case, kit.worker)
    elif refusal == "revoked":
        revoke_device(client.app[LOG], client.app[DB], kit.device, now=client.app[CLOCK]())
    size = log_size(client)
    response = await post(client, kit, manifest, signature, content)
    assert response.status == status, await response.text()
    assert set(await response.json()) == {"error", "detail"}
    assert log_size(client) == size
    assert rows(client, items) == []
    assert rows(client, jobs) == []
    assert rows(client, uploads) == []
    assert objects() == []


async def test_footage_is_probed_on_the_direct_path_too(client: Any, kit: Kit) -> None:
    video = mp4_video()
    manifest, signature = kit.manifest(video)  # footage, video/mp4
    assert (await post(client, kit, manifest, signature, video)).status == 201
    not_video = b"\x00" * 2048
    manifest, signature = kit.manifest(not_video)
    assert (await post(client, kit, manifest, signature, not_video)).status == 422


async def test_an_object_removed_before_the_append_is_never_logged(
    client: Any, kit: Kit, objects: Any, monkeypatch: pytest.MonkeyPatch, store_kind: str
) -> None:
    """Without an upload row, nothing else protects the object between its write and the
    append (a refused upload of the same bytes may remove it): the append checks it is there.
    On S3 the original is locked in compliance mode as it is written: it cannot be removed."""
    ingest = client.app[INGEST]
    store = ingest.store
    real_put = store.put

    def put_then_lose(key: str, data: bytes, sha256: str, *, retain: bool) -> bool:
        created: bool = real_put(key, data, sha256, retain=retain)
        client.app[LOG].exclusive(lambda conn: ingest._unstore(conn, key, "0" * 32))
        return created

    monkeypatch.setattr(store, "put", put_then_lose)
    size = log_size(client)
    response = await post_note(client, kit)
    if store_kind != "local":  # locked: it stayed, and the item is recorded
        assert response.status == 201, await response.text()
        assert len(objects()) == 1
        return
    assert response.status == 503, await response.text()
    assert log_size(client) == size
    assert rows(client, items) == []
    monkeypatch.undo()
    again = await post_note(client, kit)  # the device tries again, with a new manifest
    assert again.status == 201, await again.text()
    assert objects() == [content_key("originals", rows(client, items)[0].sha256)]


async def test_the_entry_is_never_appended_when_the_object_cannot_be_stored(
    client: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evidence.errors import StorageUnavailable

    def down(*args: Any, **kwargs: Any) -> bool:
        raise StorageUnavailable("object store: down")

    monkeypatch.setattr(client.app[STORE], "put", down)
    size = log_size(client)
    response = await post_note(client, kit)
    assert response.status == 503
    assert log_size(client) == size
    assert rows(client, items) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--b\r\n\r\n"),  # no boundary parameter
        ("text/plain", b"manifest=x"),
        ("multipart/form-data; boundary=b", b"garbage without a boundary"),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="x"'),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nv\r\n--b--\r\n',
        ),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{}\r\n'
            b'--b\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{}\r\n--b--\r\n',
        ),
        (  # cut short: the closing boundary never comes
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{}',
        ),
    ],
)
async def test_a_malformed_small_item_body_is_400(
    client: Any, kit: Kit, content_type: str, body: bytes
) -> None:
    response = await client.post(
        "/api/v1/items", data=body, headers={**kit.auth, "Content-Type": content_type}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] == "invalid_input"
    assert rows(client, items) == []


async def test_an_oversized_manifest_part_is_413(client: Any, kit: Kit) -> None:
    manifest, signature = kit.manifest(NOTE, kind="document", media_type="text/plain")
    response = await post(client, kit, manifest + b" " * 9000, signature, NOTE)
    assert response.status == 413
    assert rows(client, items) == []


async def test_items_checked_in_one_batch_each_get_their_own_answer(
    client: Any, kit: Kit, objects: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent small items are checked and stored together (evidence.batching): a
    refused one fails alone, and the others in its batch are kept."""
    batcher = client.app[INGEST]._small
    sizes: list[int] = []
    run = batcher._run

    def recorded(smalls: Any) -> Any:
        sizes.append(len(smalls))
        return run(smalls)

    monkeypatch.setattr(batcher, "_run", recorded)
    other = enrolled(client.app[LOG], client.app[DB], "camera-2")
    requests, expected = [], []
    for n in range(12):
        content = NOTE + b"%d\n" % n
        kw: dict[str, Any] = {"kind": "document", "media_type": "text/plain"}
        status = 201
        if n % 4 == 1:
            kw["sha256"], status = "0" * 64, 422
        elif n % 4 == 2:
            kw["case"], status = "f" * 32, 400
        manifest, signature = kit.manifest(content, **kw)
        if n % 4 == 3:
            manifest, signature = other.manifest(content, **kw)
            status = 403  # signed by another device than the token's
        requests.append(post(client, kit, manifest, signature, content))
        expected.append(status)
    responses = await asyncio.gather(*requests)
    assert [r.status for r in responses] == expected
    assert max(sizes) > 1  # they did share batches
    kept = [await r.json() for r, s in zip(responses, expected, strict=True) if s == 201]
    assert {verify_receipt(r, client.app[LOG].vkey).item for r in kept} == {
        row.id for row in rows(client, items)
    }
    assert len(objects()) == len(kept) == 3
