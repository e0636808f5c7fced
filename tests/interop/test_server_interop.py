"""A running server's checkpoint and proofs, as fetched over HTTP, verify with Go's sumdb code.

Nothing of `evidence.chain` is used to check them: the Go verifier
(golang.org/x/mod/sumdb/note and sumdb/tlog) gets the bytes exactly as the
server's five /log/ endpoints return them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from gotools import GoVerifier, go_result, verifier_doc

from evidence.app import create_app
from evidence.chain import note
from evidence.chain.entries import DeviceEnrolled, ItemAccessed
from evidence.settings import Settings
from evidence.web.keys import LOG


def entries(count: int) -> list[Any]:
    made: list[Any] = []
    for i in range(count):
        item = hashlib.sha256(f"item-{i}".encode()).hexdigest()
        if i % 5 == 0:
            key = note.new_signer(f"device.example/d{i}", bytes([i]) * 32).verifier.vkey
            made.append(DeviceEnrolled(time="2026-11-24T10:00:00Z", device=f"d{i}", key=key))
        else:
            made.append(
                ItemAccessed(
                    time="2026-11-24T10:00:00Z", item=item, prev=None, actor="r1", action="view"
                )
            )
    return made


@pytest.fixture
async def server(aiohttp_client: Any, tmp_path: Path) -> Any:
    settings = Settings.load(
        {"EVIDENCE_DATA_DIR": str(tmp_path / "data"), "EVIDENCE_LOG_FORMAT": "json"},
        stderr_is_tty=False,
    )
    return await aiohttp_client(create_app(settings))


async def fetch(server: Any, path: str) -> bytes:
    response = await server.get(path)
    assert response.status == 200, await response.text()
    body: bytes = await response.read()
    return body


async def fetch_json(server: Any, path: str) -> Any:
    response = await server.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_served_checkpoint_and_proofs_verify_with_go(
    server: Any, go_verifier: GoVerifier
) -> None:
    custody = server.app[LOG]
    old_checkpoint = (await fetch(server, "/log/checkpoint")).decode()
    old_root = base64.b64decode(old_checkpoint.split("\n")[2])
    await asyncio.gather(*(custody.append(e) for e in entries(3)))
    middle = (await fetch(server, "/log/checkpoint")).decode()
    await asyncio.gather(*(custody.append(e) for e in entries(42)))

    vkey = (await fetch(server, "/log/vkey")).decode().strip()
    checkpoint = (await fetch(server, "/log/checkpoint")).decode()
    size = int(checkpoint.split("\n")[1])
    assert size == 46

    inclusions = []
    for index in range(size):
        entry = await fetch(server, f"/log/entries/{index}")
        proof = await fetch_json(server, f"/log/proof/inclusion?index={index}&size={size}")
        inclusions.append((index, entry, [base64.b64decode(h) for h in proof["proof"]]))
    consistencies = []
    for old_size, root in ((1, old_root), (4, base64.b64decode(middle.split("\n")[2]))):
        proof = await fetch_json(server, f"/log/proof/consistency?old={old_size}&new={size}")
        consistencies.append((old_size, root, [base64.b64decode(h) for h in proof["proof"]]))

    doc = verifier_doc(vkey, checkpoint, inclusions, consistencies)
    result = go_result(go_verifier(doc))
    assert result["ok"] is True
    assert result["size"] == size
    assert result["inclusions"] == size
    assert result["consistencies"] == 2

    # The same verifier rejects the server's answers once any of them is altered.
    tampered_entry = dict(doc, inclusions=[dict(doc["inclusions"][7])])
    raw = base64.b64decode(tampered_entry["inclusions"][0]["entry"]).replace(b"r1", b"r2")
    tampered_entry["inclusions"][0]["entry"] = base64.b64encode(raw).decode()
    assert go_result(go_verifier(tampered_entry))["ok"] is False
    tampered_note = dict(doc, checkpoint=checkpoint.replace("\n46\n", "\n45\n"))
    assert go_result(go_verifier(tampered_note))["ok"] is False
    wrong_old_root = dict(
        doc,
        consistencies=[dict(doc["consistencies"][1], old_root=doc["consistencies"][0]["old_root"])],
    )
    assert go_result(go_verifier(wrong_old_root))["ok"] is False
