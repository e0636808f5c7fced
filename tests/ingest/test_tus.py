"""Uploads over tus 1.0.0: the happy path, resumption, and every refusal leaving nothing behind."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from ingesthelpers import TUS, Kit, create, enrolled, patch, stores_nothing
from media import mp4_video, png_image, wav_audio

from evidence.cases.tables import items
from evidence.chain.entries import ItemIngested, parse_entry
from evidence.chain.manifest import item_id
from evidence.chain.receipt import verify_receipt
from evidence.devices.registry import revoke_device
from evidence.ingest.tables import uploads
from evidence.review.tables import jobs
from evidence.web.keys import DB, LOG


async def upload(client: Any, kit: Kit, content: bytes, chunks: int = 3, **kw: Any) -> Any:
    """Create, then PATCH `content` in `chunks` pieces; the last response."""
    manifest, signature = kit.manifest(content, **kw)
    created = await create(client, kit, manifest, signature)
    assert created.status == 201, await created.text()
    location = created.headers["Location"]
    step = max(1, -(-len(content) // chunks))
    response = created
    for offset in range(0, len(content), step):
        response = await patch(client, kit, location, offset, content[offset : offset + step])
        if response.status != 204:
            return response
    return response


def log_size(client: Any) -> int:
    return int(client.app[LOG].size())


def rows(client: Any, table: sa.Table) -> list[Any]:
    with client.app[DB].read() as conn:
        return list(conn.execute(sa.select(table)).all())


async def test_options_announce_version_extensions_and_limit(client: Any) -> None:
    response = await client.options("/api/v1/uploads")
    assert response.status == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    }
    assert int(response.headers["Tus-Max-Size"]) > 0
    assert response.headers["Tus-Checksum-Algorithm"] == "sha256"


async def test_footage_uploads_in_pieces_and_gets_a_receipt_that_verifies_offline(
    client: Any, kit: Kit
) -> None:
    video = mp4_video()
    before = log_size(client)
    manifest, signature = kit.manifest(video)
    created = await create(client, kit, manifest, signature)
    assert created.status == 201
    location = created.headers["Location"]
    assert created.headers["Upload-Expires"].endswith("GMT")
    first = await patch(client, kit, location, 0, video[:700])
    assert first.status == 204
    assert first.headers["Upload-Offset"] == "700"
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert (head.status, head.headers["Upload-Offset"]) == (200, "700")
    assert head.headers["Upload-Length"] == str(len(video))
    assert head.headers["Cache-Control"] == "no-store"
    last = await patch(client, kit, location, 700, video[700:])
    assert (last.status, last.headers["Upload-Offset"]) == (204, str(len(video)))

    response = await client.get(location + "/receipt", headers=kit.auth)
    assert response.status == 200
    receipt = await response.json()
    verified = verify_receipt(receipt, client.app[LOG].vkey)
    assert verified.item == item_id(manifest)
    assert verified.entry.sha256 == hashlib.sha256(video).hexdigest()
    assert verified.entry.device == kit.device
    assert verified.index == before  # the next entry after enrolment
    assert log_size(client) == before + 1

    [item] = rows(client, items)
    assert (item.id, item.size, item.kind, item.last_entry) == (
        verified.item,
        len(video),
        "footage",
        before,
    )
    assert json.loads(item.chain) == []
    assert bytes(item.manifest) == manifest
    [job] = rows(client, jobs)
    assert (job.kind, job.item_id, job.state) == ("review-copy", verified.item, "queued")
    by_item = await client.get(f"/api/v1/items/{verified.item}/receipt", headers=kit.auth)
    assert verify_receipt(await by_item.json(), client.app[LOG].vkey).index == before


async def test_creation_with_upload_sends_the_bytes_in_the_post(client: Any, kit: Kit) -> None:
    audio = wav_audio()
    manifest, signature = kit.manifest(audio, kind="audio", media_type="audio/wav")
    response = await create(client, kit, manifest, signature, audio)
    assert response.status == 201, await response.text()
    assert response.headers["Upload-Offset"] == str(len(audio))
    receipt = await (
        await client.get(response.headers["Location"] + "/receipt", headers=kit.auth)
    ).json()
    assert verify_receipt(receipt, client.app[LOG].vkey).entry.kind == "audio"


async def test_the_same_manifest_twice_is_one_item_and_one_entry(client: Any, kit: Kit) -> None:
    photo = png_image()
    manifest, signature = kit.manifest(photo, kind="photo", media_type="image/png")
    first = await create(client, kit, manifest, signature)
    await patch(client, kit, first.headers["Location"], 0, photo)
    size = log_size(client)
    again = await create(client, kit, manifest, signature)
    assert again.status == 201
    assert again.headers["Upload-Offset"] == str(len(photo))  # nothing more to send
    r1 = await (await client.get(first.headers["Location"] + "/receipt", headers=kit.auth)).json()
    r2 = await (await client.get(again.headers["Location"] + "/receipt", headers=kit.auth)).json()
    assert (r1["item"], r1["index"]) == (r2["item"], r2["index"])
    assert log_size(client) == size
    assert len(rows(client, items)) == 1


async def test_the_same_bytes_under_another_manifest_are_a_new_item_stored_once(
    client: Any, kit: Kit, objects: Any
) -> None:
    photo = png_image()
    for _ in range(2):
        response = await upload(client, kit, photo, kind="photo", media_type="image/png")
        assert response.status == 204
    assert len(rows(client, items)) == 2
    assert len({r.object_key for r in rows(client, items)}) == 1
    assert len(objects()) == 1


@pytest.mark.parametrize("chunks", [1, 4])
async def test_a_wrong_sha256_is_refused_at_completion_and_leaves_nothing(
    client: Any, kit: Kit, objects: Any, chunks: int
) -> None:
    video = mp4_video()
    before = log_size(client)
    with stores_nothing(client, objects):
        response = await upload(client, kit, video, chunks, sha256="00" * 32)
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "verification_failed"
    assert "SHA-256" in body["detail"]
    assert log_size(client) == before
    assert rows(client, items) == []
    assert rows(client, uploads) == []
    assert objects() == []


async def test_content_that_is_not_what_the_manifest_says_is_refused(
    client: Any, kit: Kit, objects: Any
) -> None:
    before = log_size(client)
    not_video = b"this is not a video, whatever the manifest says" * 40
    with stores_nothing(client, objects):
        response = await upload(client, kit, not_video)
    assert response.status == 422
    assert "not readable media" in (await response.json())["detail"]
    with stores_nothing(client, objects):
        photo_as_audio = await upload(
            client, kit, png_image(), kind="audio", media_type="audio/wav"
        )
    assert photo_as_audio.status == 422
    assert log_size(client) == before
    assert rows(client, items) == []
    assert rows(client, uploads) == []
    assert objects() == []


async def test_refusals_at_creation(client: Any, kit: Kit, objects: Any) -> None:
    video = mp4_video()
    manifest, signature = kit.manifest(video)
    bad_signature = bytes([signature[0] ^ 1]) + signature[1:]
    cases = [
        ({"Authorization": "Bearer nope"}, manifest, signature, 401, "unauthorized"),
        ({}, manifest, bad_signature, 422, "verification_failed"),
        (
            {"Upload-Length": str(len(video))},
            manifest + b" ",
            signature,
            422,
            "verification_failed",
        ),
        ({"Upload-Length": str(len(video) + 1)}, manifest, signature, 400, "invalid_input"),
        ({"Tus-Resumable": "0.2.2"}, manifest, signature, 412, None),
    ]
    for headers, m, s, status, code in cases:
        with stores_nothing(client, objects):
            response = await create(client, kit, m, s, **headers)
        assert response.status == status, (headers, await response.text())
        if code:
            assert (await response.json())["error"] == code
    with stores_nothing(client, objects):
        no_case = await create(client, kit, *kit.manifest(video, case="no-such-case"))
    assert no_case.status == 400
    with stores_nothing(client, objects):
        wrong_kind = await create(
            client, kit, *kit.manifest(video, kind="photo", media_type="video/mp4")
        )
    assert wrong_kind.status == 422
    assert rows(client, uploads) == []


async def test_a_manifest_of_another_device_is_forbidden(
    client: Any, kit: Kit, objects: Any
) -> None:
    other = enrolled(client.app[LOG], client.app[DB], "camera-2")
    manifest, signature = other.manifest(png_image(), kind="photo", media_type="image/png")
    with stores_nothing(client, objects):
        response = await create(client, kit, manifest, signature)
    assert response.status == 403
    assert rows(client, uploads) == []


async def test_a_revoked_device_is_refused_everywhere(client: Any, kit: Kit, objects: Any) -> None:
    video = mp4_video()
    manifest, signature = kit.manifest(video)
    created = await create(client, kit, manifest, signature)
    revoke_device(client.app[LOG], client.app[DB], kit.device, now=client.app[LOG].clock())
    with stores_nothing(client, objects):  # beyond what the upload begun before holds
        assert (await create(client, kit, manifest, signature)).status == 403
        assert (await patch(client, kit, created.headers["Location"], 0, video)).status == 403
        head = await client.head(created.headers["Location"], headers={**TUS, **kit.auth})
        assert head.status == 403
    assert rows(client, items) == []
    [begun] = rows(client, uploads)
    assert begun.offset == 0  # the refused PATCH's bytes were not taken


async def test_offset_and_content_type_rules(client: Any, kit: Kit) -> None:
    video = mp4_video()
    created = await create(client, kit, *kit.manifest(video))
    location = created.headers["Location"]
    wrong = await patch(client, kit, location, 5, video[5:])
    assert wrong.status == 409
    plain = await patch(client, kit, location, 0, video, **{"Content-Type": "text/plain"})
    assert plain.status == 415
    past_the_end = await patch(client, kit, location, 0, video + b"extra")
    assert past_the_end.status == 413
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert head.headers["Upload-Offset"] == "0"  # the refused bytes were not kept
    missing = await client.head("/api/v1/uploads/" + "0" * 32, headers={**TUS, **kit.auth})
    assert missing.status == 404


async def test_checksum_extension(client: Any, kit: Kit) -> None:
    video = mp4_video()
    created = await create(client, kit, *kit.manifest(video))
    location = created.headers["Location"]
    good = base64.b64encode(hashlib.sha256(video[:500]).digest()).decode()
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    refused = await patch(
        client, kit, location, 0, video[:500], **{"Upload-Checksum": f"sha256 {bad}"}
    )
    assert refused.status == 460
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert head.headers["Upload-Offset"] == "0"
    accepted = await patch(
        client, kit, location, 0, video[:500], **{"Upload-Checksum": f"sha256 {good}"}
    )
    assert (accepted.status, accepted.headers["Upload-Offset"]) == (204, "500")
    unknown = await patch(
        client, kit, location, 500, video[500:], **{"Upload-Checksum": f"md5 {good}"}
    )
    assert unknown.status == 400


async def test_termination_removes_the_upload_and_its_staging(
    client: Any, kit: Kit, objects: Any
) -> None:
    video = mp4_video()
    created = await create(client, kit, *kit.manifest(video))
    location = created.headers["Location"]
    await patch(client, kit, location, 0, video[:100])
    deleted = await client.delete(location, headers={**TUS, **kit.auth})
    assert deleted.status == 204
    assert (await client.head(location, headers={**TUS, **kit.auth})).status == 404
    assert rows(client, uploads) == []
    assert objects() == []


async def test_small_item_in_one_request(client: Any, kit: Kit) -> None:
    record = json.dumps({"child_seen": True, "seen_alone": True}).encode()
    manifest, signature = kit.manifest(record, kind="visit-record", media_type="application/json")
    form = aiohttp.FormData()
    form.add_field("manifest", manifest, filename="manifest.json", content_type="application/json")
    form.add_field("signature", base64.b64encode(signature).decode())
    form.add_field("content", record, filename="record.json", content_type="application/json")
    response = await client.post("/api/v1/items", data=form, headers=kit.auth)
    assert response.status == 201, await response.text()
    verified = verify_receipt(await response.json(), client.app[LOG].vkey)
    assert verified.entry.kind == "visit-record"
    entry = parse_entry(client.app[LOG].entry(verified.index))
    assert isinstance(entry, ItemIngested)
    assert entry.item == item_id(manifest)


async def test_a_gap_and_a_late_arrival_are_recorded_on_the_items(client: Any, kit: Kit) -> None:
    first = png_image(2, 2)
    second = png_image(3, 3)
    m1, s1 = kit.manifest(first, kind="photo", media_type="image/png")
    m2, s2 = kit.manifest(second, kind="photo", media_type="image/png")
    for manifest, signature, content in ((m2, s2, second), (m1, s1, first)):  # 2 before 1
        created = await create(client, kit, manifest, signature)
        assert (await patch(client, kit, created.headers["Location"], 0, content)).status == 204
    chain = {row.seq: json.loads(row.chain) for row in rows(client, items)}
    assert chain[2] == ["gap: seq 1 of this device has not arrived"]
    assert chain[1] == ["late: arrived after seq 2 of this device"]


async def test_every_missing_seq_is_named_in_compact_ranges(client: Any, kit: Kit) -> None:
    """seq 1-2, 4 and 6-9 never arrive: each later item names every seq still missing."""
    images = {seq: png_image(seq, 2) for seq in range(1, 12)}
    signed = {
        seq: kit.manifest(images[seq], kind="photo", media_type="image/png") for seq in images
    }
    for seq in (3, 5, 10, 11):
        manifest, signature = signed[seq]
        created = await create(client, kit, manifest, signature)
        response = await patch(client, kit, created.headers["Location"], 0, images[seq])
        assert response.status == 204
    chain = {row.seq: json.loads(row.chain) for row in rows(client, items)}
    assert chain[3] == ["gap: seq 1-2 of this device have not arrived"]
    assert chain[5] == ["gap: seq 1-2, 4 of this device have not arrived"]
    assert chain[10] == ["gap: seq 1-2, 4, 6-9 of this device have not arrived"]
    assert chain[11] == ["gap: seq 1-2, 4, 6-9 of this device have not arrived"]
