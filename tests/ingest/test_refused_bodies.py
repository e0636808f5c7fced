"""Bodies that cannot be read as what they claim: a 4xx with the JSON error, and nothing left.

Malformed multipart, a Content-Encoding the bytes do not bear out, a
creation-with-upload refused half way, JSON that RFC 8259 does not allow:
each is the client's fault, never a 500, and a refused creation leaves no
upload, no part and no staged byte behind (on each store).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from ingesthelpers import OFFSET_STREAM, TUS, Kit, create, patch
from media import wav_audio

from evidence.cases.tables import items
from evidence.ingest.tables import upload_parts, uploads
from evidence.web.keys import DB

NOT_COMPRESSED = b"these bytes were never compressed by anything" * 4
# Content-Encodings a client may name, with bytes that are not in them: those
# aiohttp decodes, and those it does not (refused before the body is read).
BAD_ENCODINGS = ["gzip", "deflate", "x-unknown", "compress", "gzip, gzip"]


def rows(client: Any, table: sa.Table) -> list[Any]:
    with client.app[DB].read() as conn:
        return list(conn.execute(sa.select(table)).all())


async def assert_json_4xx(response: Any, *statuses: int) -> dict[str, Any]:
    text = await response.text()
    assert response.status in (statuses or range(400, 500)), (response.status, text)
    body = json.loads(text)
    assert set(body) == {"error", "detail"}, body
    return dict(body)


def assert_nothing_left(client: Any, objects: Any) -> None:
    assert rows(client, uploads) == []
    assert rows(client, upload_parts) == []
    assert rows(client, items) == []
    assert objects() == []


def _small_item_parts(kit: Kit, record: bytes) -> list[tuple[str, bytes]]:
    manifest, signature = kit.manifest(record, kind="visit-record", media_type="application/json")
    return [
        ("manifest", manifest),
        ("signature", base64.b64encode(signature)),
        ("content", record),
    ]


def _multipart(parts: list[tuple[str, bytes]], boundary: str = "xyzzy") -> bytes:
    body = b""
    for name, value in parts:
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode()


RECORD = json.dumps({"child_seen": True}).encode()


@pytest.mark.parametrize(
    ("flaw", "content_type", "body_of"),
    [
        ("no boundary", "multipart/form-data", lambda parts: _multipart(parts)),
        ("empty body", "multipart/form-data; boundary=xyzzy", lambda parts: b""),
        (
            "truncated part",
            "multipart/form-data; boundary=xyzzy",
            lambda parts: _multipart(parts)[:60],
        ),
        (
            "another boundary than the header's",
            "multipart/form-data; boundary=other",
            lambda parts: _multipart(parts),
        ),
        (
            "a boundary too long",
            "multipart/form-data; boundary=" + "b" * 200,
            lambda parts: _multipart(parts, "b" * 200),
        ),
        (
            "no closing boundary",
            "multipart/form-data; boundary=xyzzy",
            lambda parts: _multipart(parts)[: -len("--xyzzy--\r\n")],
        ),
        ("garbage", "multipart/form-data; boundary=xyzzy", lambda parts: b"\x00\xff" * 100),
        ("not multipart", "application/json", lambda parts: RECORD),
        ("no content type", "", lambda parts: _multipart(parts)),
    ],
)
async def test_a_malformed_multipart_small_item_gets_a_4xx(
    client: Any, kit: Kit, objects: Any, flaw: str, content_type: str, body_of: Any
) -> None:
    body = body_of(_small_item_parts(kit, RECORD))
    headers = {**kit.auth, "Content-Type": content_type}
    response = await client.post("/api/v1/items", data=body, headers=headers)
    await assert_json_4xx(response)
    assert_nothing_left(client, objects)


@pytest.mark.parametrize("encoding", BAD_ENCODINGS)
async def test_a_small_item_whose_body_is_not_in_its_content_encoding_gets_a_4xx(
    client: Any, kit: Kit, objects: Any, encoding: str
) -> None:
    headers = {
        **kit.auth,
        "Content-Type": "multipart/form-data; boundary=xyzzy",
        "Content-Encoding": encoding,
    }
    response = await client.post("/api/v1/items", data=NOT_COMPRESSED, headers=headers)
    await assert_json_4xx(response)
    assert_nothing_left(client, objects)


@pytest.mark.parametrize("encoding", BAD_ENCODINGS)
async def test_a_patch_whose_body_is_not_in_its_content_encoding_gets_a_4xx(
    client: Any, kit: Kit, encoding: str
) -> None:
    audio = wav_audio()
    created = await create(client, kit, *kit.manifest(audio, kind="audio", media_type="audio/wav"))
    location = created.headers["Location"]
    response = await patch(
        client, kit, location, 0, NOT_COMPRESSED, **{"Content-Encoding": encoding}
    )
    await assert_json_4xx(response)
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert head.status == 200
    # The upload goes on: the right bytes, sent plainly, finish it.
    offset = int(head.headers["Upload-Offset"])
    assert offset == 0
    done = await patch(client, kit, location, offset, audio)
    assert done.status == 204, await done.text()


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/v1/items"), ("POST", "/api/v1/uploads")]
)
async def test_a_body_in_brotli_is_refused_with_a_4xx(
    client: Any, kit: Kit, method: str, path: str
) -> None:
    """Without the Brotli library aiohttp's parser refuses br itself, before any handler
    (so its answer is aiohttp's plain 400); with it, a body not in br is any other bad body."""
    headers = {**TUS, **kit.auth, "Content-Type": OFFSET_STREAM, "Content-Encoding": "br"}
    response = await client.request(method, path, data=NOT_COMPRESSED, headers=headers)
    assert 400 <= response.status < 500


# -- creation-with-upload refused: nothing left ----------------------------------------


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


AUDIO = wav_audio()
REFUSED_CREATIONS = {
    # flaw: (body sent, extra headers, status)
    "body longer than Upload-Length": (AUDIO + b"more", {}, 413),
    "wrong Upload-Checksum": (AUDIO, {"Upload-Checksum": f"sha256 {_sha256_b64(b'x')}"}, 460),
    "unsupported checksum algorithm": (
        AUDIO,
        {"Upload-Checksum": f"md5 {_sha256_b64(AUDIO)}"},
        400,
    ),
    "malformed checksum": (AUDIO, {"Upload-Checksum": "sha256 !!!"}, 400),
    "body not gzip": (NOT_COMPRESSED, {"Content-Encoding": "gzip"}, 400),
    "body not deflate": (NOT_COMPRESSED, {"Content-Encoding": "deflate"}, 400),
    "content not what the manifest says": (b"\x00" * len(AUDIO), {}, 422),
}


@pytest.mark.parametrize("flaw", list(REFUSED_CREATIONS))
async def test_a_refused_creation_with_upload_leaves_nothing(
    client: Any, kit: Kit, objects: Any, flaw: str
) -> None:
    body, extra, status = REFUSED_CREATIONS[flaw]
    manifest, signature = kit.manifest(AUDIO, kind="audio", media_type="audio/wav")
    response = await create(client, kit, manifest, signature, body, **extra)
    await assert_json_4xx(response, status)
    assert "Location" not in response.headers
    assert_nothing_left(client, objects)


# -- JSON that RFC 8259 does not allow -------------------------------------------------

NOT_RFC_8259 = [
    b'{"a": NaN}',
    b'{"a": -Infinity}',
    b'{"a": Infinity}',
    b'{"a": [1, {"b": NaN}]}',
    b'{"a": 1e999}',
    b'{"a": -1e400}',
]


@pytest.mark.parametrize("record", NOT_RFC_8259)
async def test_a_visit_record_with_a_number_json_does_not_have_is_refused_over_tus(
    client: Any, kit: Kit, objects: Any, record: bytes
) -> None:
    manifest, signature = kit.manifest(record, kind="visit-record", media_type="application/json")
    created = await create(client, kit, manifest, signature)
    response = await patch(client, kit, created.headers["Location"], 0, record)
    await assert_json_4xx(response, 422)
    assert_nothing_left(client, objects)


@pytest.mark.parametrize("record", NOT_RFC_8259)
async def test_a_visit_record_with_a_number_json_does_not_have_is_refused_as_a_small_item(
    client: Any, kit: Kit, objects: Any, record: bytes
) -> None:
    body = _multipart(_small_item_parts(kit, record))
    headers = {**kit.auth, "Content-Type": "multipart/form-data; boundary=xyzzy"}
    response = await client.post("/api/v1/items", data=body, headers=headers)
    await assert_json_4xx(response, 422)
    assert_nothing_left(client, objects)


async def test_a_visit_record_with_large_but_finite_numbers_is_accepted(
    client: Any, kit: Kit
) -> None:
    record = b'{"a": 1e308, "b": -2.5e-300, "c": 12345678901234567890}'
    body = _multipart(_small_item_parts(kit, record))
    headers = {**kit.auth, "Content-Type": "multipart/form-data; boundary=xyzzy"}
    response = await client.post("/api/v1/items", data=body, headers=headers)
    assert response.status == 201, await response.text()
