"""The public log read API, through the real app on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from apphelpers import access_entries, reference_root

from evidence.app import create_app
from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note
from evidence.chain.entries import LogCreated, parse_entry
from evidence.settings import Settings
from evidence.web.keys import LOG

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
async def backend_client(aiohttp_client: Any, backend_settings: Settings) -> Any:
    return await aiohttp_client(create_app(backend_settings))


async def _vkey(client: Any) -> str:
    resp = await client.get("/log/vkey")
    assert resp.status == 200
    text: str = await resp.text()
    return text.removesuffix("\n")


async def _entries(client: Any, size: int) -> list[bytes]:
    out = []
    for i in range(size):
        resp = await client.get(f"/log/entries/{i}")
        assert resp.status == 200
        out.append(await resp.read())
    return out


def _proof(obj: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(h, validate=True) for h in obj["proof"]]


async def test_fresh_log_has_one_entry_log_created_under_a_verifying_checkpoint(
    backend_client: Any,
) -> None:
    vkey = await _vkey(backend_client)
    verifier = note.parse_vkey(vkey)

    resp = await backend_client.get("/log/checkpoint")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    checkpoint = cp.verify_checkpoint(await resp.text(), vkey)
    assert checkpoint.size == 1
    assert checkpoint.origin == verifier.name

    resp = await backend_client.get("/log/entries/0")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == IMMUTABLE
    entry_bytes = await resp.read()
    created = parse_entry(entry_bytes)
    assert isinstance(created, LogCreated)
    assert (created.origin, created.key) == (verifier.name, vkey)
    assert created.to_bytes() == entry_bytes  # canonical, served verbatim

    resp = await backend_client.get("/log/proof/inclusion", params={"index": "0", "size": "1"})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == IMMUTABLE
    body = await resp.json()
    assert body == {"index": 0, "size": 1, "proof": []}
    merkle.verify_inclusion(merkle.leaf_hash(entry_bytes), 0, 1, [], checkpoint.root_hash)

    resp = await backend_client.get("/log/proof/consistency", params={"old": "1", "new": "1"})
    assert resp.status == 200
    assert await resp.json() == {"old": 1, "new": 1, "proof": []}


async def test_vkey_is_one_line_naming_the_log(backend_client: Any) -> None:
    resp = await backend_client.get("/log/vkey")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = await resp.text()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert note.parse_vkey(text).vkey == backend_client.app[LOG].vkey


async def test_every_inclusion_and_consistency_proof_verifies_after_appends(
    backend_client: Any,
) -> None:
    log = backend_client.app[LOG]
    for entry in access_entries(6):
        await log.append(entry)
    vkey = await _vkey(backend_client)
    checkpoint = cp.verify_checkpoint(
        await (await backend_client.get("/log/checkpoint")).text(), vkey
    )
    assert checkpoint.size == 7
    entries = await _entries(backend_client, 7)
    assert [parse_entry(e).to_bytes() for e in entries[1:]] == [
        e.to_bytes() for e in access_entries(6)
    ]
    roots = {size: reference_root(entries[:size]) for size in range(8)}
    assert roots[7] == checkpoint.root_hash

    for size in range(1, 8):
        for index in range(size):
            resp = await backend_client.get(
                "/log/proof/inclusion", params={"index": str(index), "size": str(size)}
            )
            assert resp.status == 200
            body = await resp.json()
            assert (body["index"], body["size"]) == (index, size)
            merkle.verify_inclusion(
                merkle.leaf_hash(entries[index]), index, size, _proof(body), roots[size]
            )
    for new in range(8):
        for old in range(new + 1):
            resp = await backend_client.get(
                "/log/proof/consistency", params={"old": str(old), "new": str(new)}
            )
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == IMMUTABLE
            body = await resp.json()
            assert (body["old"], body["new"]) == (old, new)
            merkle.verify_consistency(old, new, _proof(body), roots[old], roots[new])


async def test_entry_beyond_the_log_is_a_json_404(backend_client: Any) -> None:
    resp = await backend_client.get("/log/entries/1")
    assert resp.status == 404
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Cache-Control" not in resp.headers  # an entry that may exist later is not cached
    body = await resp.json()
    assert body["error"] == "not_found"


async def test_unknown_route_is_a_json_404(client: Any) -> None:
    resp = await client.get("/log/nothing-here")
    assert resp.status == 404
    assert await resp.json() == {"error": "not_found", "detail": "Not Found"}


async def test_wrong_method_is_a_json_405_that_names_the_allowed_ones(client: Any) -> None:
    resp = await client.post("/log/checkpoint", data=b"x")
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert (await resp.json())["error"] == "method_not_allowed"


async def test_responses_tell_browsers_not_to_sniff_content_types(client: Any) -> None:
    for path in ("/log/checkpoint", "/log/entries/0", "/log/entries/9", "/nowhere"):
        resp = await client.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
