"""`evidence log verify` (evidence.log.monitor) against the real app over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from apphelpers import access_entries, make_settings

from evidence.app import create_app
from evidence.chain import merkle, note
from evidence.errors import EvidenceError, InvalidInput, Unreachable, VerificationError
from evidence.log.monitor import default_state_path, http_get, verify_log
from evidence.settings import Settings
from evidence.web.keys import LOG


class Server:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = str(server.make_url("/")).rstrip("/")
        self.log = server.app[LOG]

    async def append(self, count: int) -> None:
        for entry in access_entries(count, start=await asyncio.to_thread(self.log.size)):
            await self.log.append(entry)


@pytest.fixture
async def server(aiohttp_server: Any, settings: Settings) -> Server:
    return Server(await aiohttp_server(create_app(settings)))


async def verify(server: Server, state: Path, **kwargs: Any) -> Any:
    return await asyncio.to_thread(verify_log, server.url, state, **kwargs)


async def test_first_run_pins_the_key_and_records_the_checkpoint(
    server: Server, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "monitor.json"
    result = await verify(server, state)
    assert result.checkpoint.size == 1
    assert result.previous is None
    summary = result.summary()
    assert summary.startswith(f"checkpoint 1 verified (origin {server.log.origin})")
    assert f"key pinned from first use: {server.log.vkey}" in summary
    saved = json.loads(state.read_text())
    assert saved["vkey"] == server.log.vkey
    assert saved["origin"] == server.log.origin
    assert saved["checkpoint"]["size"] == 1


async def test_later_runs_check_consistency_with_what_was_seen(
    server: Server, tmp_path: Path
) -> None:
    state = tmp_path / "monitor.json"
    first = await verify(server, state)
    again = await verify(server, state)
    assert again.summary().endswith(f"unchanged since seen at {first.checkpoint.seen_at}")
    await server.append(5)
    grown = await verify(server, state)
    assert grown.checkpoint.size == 6
    assert grown.summary() == (
        f"checkpoint 6 verified (origin {server.log.origin}),"
        f" consistent with 1 seen at {first.checkpoint.seen_at}"
    )
    await server.append(3)
    assert (await verify(server, state)).summary().startswith("checkpoint 9 verified")
    assert json.loads(state.read_text())["checkpoint"]["size"] == 9


def _forge(state: Path, **changes: Any) -> bytes:
    saved = json.loads(state.read_text())
    saved["checkpoint"].update(changes)
    state.write_text(json.dumps(saved))
    return state.read_bytes()


async def test_a_different_root_at_the_same_size_is_a_fork(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "monitor.json"
    await verify(server, state)
    forged = _forge(state, root_hash=base64.b64encode(b"\x01" * 32).decode())
    with pytest.raises(VerificationError) as info:
        await verify(server, state)
    message = str(info.value)
    assert message.startswith(
        "LOG FORK DETECTED: two different signed checkpoints of the same size"
    )
    assert state.read_bytes() == forged  # the evidence is kept


async def test_a_checkpoint_that_does_not_extend_the_one_seen_is_a_fork(
    server: Server, tmp_path: Path
) -> None:
    state = tmp_path / "monitor.json"
    await server.append(2)
    await verify(server, state)
    forged = _forge(state, root_hash=base64.b64encode(b"\x02" * 32).decode())
    await server.append(4)
    with pytest.raises(VerificationError) as info:
        await verify(server, state)
    message = str(info.value)
    assert message.startswith(
        "LOG FORK DETECTED: checkpoint 7 is NOT consistent with checkpoint 3 seen at"
    )
    assert "--- checkpoint served now ---" in message
    assert state.read_bytes() == forged


async def test_a_smaller_log_than_seen_is_a_rollback(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "monitor.json"
    await verify(server, state)
    forged = _forge(state, size=5)
    with pytest.raises(VerificationError) as info:
        await verify(server, state)
    assert str(info.value).startswith(
        "LOG ROLLBACK DETECTED: the log's size is now 1, smaller than the size 5 seen at"
    )
    assert state.read_bytes() == forged


async def test_a_server_with_another_key_is_refused(
    server: Server, aiohttp_server: Any, tmp_path: Path
) -> None:
    state = tmp_path / "monitor.json"
    await verify(server, state)
    other = Server(await aiohttp_server(create_app(make_settings(tmp_path / "o"))))
    with pytest.raises(VerificationError, match=r"the server presents the key .* but the pinned"):
        await asyncio.to_thread(verify_log, other.url, state)


async def test_explicit_vkey_is_pinned_and_must_match_the_server(
    server: Server, tmp_path: Path
) -> None:
    result = await verify(server, tmp_path / "a.json", vkey=server.log.vkey)
    assert f"key pinned from --vkey: {server.log.vkey}" in result.summary()
    stranger = note.Signer("someone/else", bytes(32)).verifier.vkey
    with pytest.raises(VerificationError, match="the server presents the key"):
        await verify(server, tmp_path / "b.json", vkey=stranger)
    assert not (tmp_path / "b.json").exists()
    with pytest.raises(VerificationError, match="is not the key pinned in"):
        await verify(server, tmp_path / "a.json", vkey=stranger)
    with pytest.raises(VerificationError, match="verifier key"):
        await verify(server, tmp_path / "c.json", vkey="not-a-key")


async def test_a_checkpoint_with_a_bad_signature_is_refused(server: Server, tmp_path: Path) -> None:
    def tampering_fetch(url: str) -> bytes:
        body = http_get(url)
        if url.endswith("/log/checkpoint"):
            body = body.replace(b"\n1\n", b"\n2\n", 1)  # claim a bigger tree
        return body

    with pytest.raises(VerificationError, match="does not verify with the pinned key"):
        await verify(server, tmp_path / "s.json", fetch=tampering_fetch)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(
    "bad_proof",
    [
        b"not json",
        b"[]",
        b'{"old": 1, "new": 99, "proof": []}',
        b'{"old": 1, "new": 3, "proof": "AAAA"}',
        b'{"old": 1, "new": 3, "proof": ["!!!"]}',
        b'{"old": 1, "new": 3, "proof": [1]}',
        # Strict decoding: a 31-byte hash, and 32 zero bytes spelled with a
        # non-zero unused bit, are malformed, not evidence of a fork.
        b'{"old": 1, "new": 3, "proof": ["' + base64.b64encode(bytes(31)) + b'"]}',
        b'{"old": 1, "new": 3, "proof": ["' + b"A" * 42 + b'B="]}',
        b'{"old": 1, "new": 3, "proof": ["' + base64.b64encode(bytes(32))[:-1] + b'"]}',
        b'{"old": 1, "new": 3, "proof": ["' + base64.b64encode(bytes(32)) + b'\\n"]}',
    ],
)
async def test_a_malformed_consistency_proof_is_refused(
    server: Server, tmp_path: Path, bad_proof: bytes
) -> None:
    state = tmp_path / "s.json"
    await verify(server, state)
    await server.append(2)

    def fetch(url: str) -> bytes:
        return bad_proof if "/log/proof/consistency" in url else http_get(url)

    with pytest.raises(VerificationError, match="consistency proof is malformed"):
        await verify(server, state, fetch=fetch)


def _respell(b64: str) -> str:
    """The same bytes in a non-canonical spelling: the last character's unused bits set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = b64.rstrip("=")[-1]
    respelled = b64[: len(b64.rstrip("=")) - 1] + alphabet[alphabet.index(last) | 1] + "="
    assert respelled != b64
    assert base64.b64decode(respelled) == base64.b64decode(b64)
    return respelled


async def test_a_proof_hash_in_non_canonical_base64_is_refused(
    server: Server, tmp_path: Path
) -> None:
    """Regression: proof hashes were decoded leniently; the strict decoder of
    `evidence.chain.note` takes only the one canonical spelling."""
    state = tmp_path / "s.json"
    await verify(server, state)
    await server.append(2)

    def fetch(url: str) -> bytes:
        body = http_get(url)
        if "/log/proof/consistency" in url:
            obj = json.loads(body)
            obj["proof"][0] = _respell(obj["proof"][0])
            body = json.dumps(obj).encode()
        return body

    saved = state.read_bytes()
    with pytest.raises(VerificationError, match="consistency proof is malformed"):
        await verify(server, state, fetch=fetch)
    assert state.read_bytes() == saved


async def test_a_wrong_but_well_formed_proof_is_a_fork(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    await server.append(1)
    await verify(server, state)
    await server.append(3)

    def fetch(url: str) -> bytes:
        body = http_get(url)
        if "/log/proof/consistency" in url:
            obj = json.loads(body)
            obj["proof"][0] = base64.b64encode(merkle.leaf_hash(b"forged")).decode()
            body = json.dumps(obj).encode()
        return body

    with pytest.raises(VerificationError, match=r"^LOG FORK DETECTED"):
        await verify(server, state, fetch=fetch)


async def test_damaged_state_file_is_refused_not_overwritten(
    server: Server, tmp_path: Path
) -> None:
    state = tmp_path / "s.json"
    state.write_text('{"version": 1, "server": "x"}')
    with pytest.raises(InvalidInput, match="is damaged"):
        await verify(server, state)
    assert state.read_text() == '{"version": 1, "server": "x"}'


@pytest.mark.parametrize(
    "root_hash",
    [
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        "",
        "A" * 42 + "B=",  # 32 zero bytes, non-canonical
        5,
        None,
    ],
)
async def test_a_state_file_with_a_malformed_root_hash_is_damaged_not_a_fork(
    server: Server, tmp_path: Path, root_hash: Any
) -> None:
    """Regression: a root hash of the wrong length was reported as a LOG FORK."""
    state = tmp_path / "s.json"
    await verify(server, state)
    forged = _forge(state, root_hash=root_hash)
    with pytest.raises(InvalidInput, match=f"state file {re.escape(str(state))} is damaged"):
        await verify(server, state)
    assert state.read_bytes() == forged


async def test_a_state_file_for_another_origin_is_refused_not_replaced(
    server: Server, tmp_path: Path
) -> None:
    """Regression: a state file whose origin was not the server's was silently
    dropped and replaced (trust on first use again), losing the checkpoint seen."""
    state = tmp_path / "s.json"
    await verify(server, state)
    saved = json.loads(state.read_text())
    saved["origin"] = "another.example/log"
    state.write_text(json.dumps(saved))
    forged = state.read_bytes()
    await server.append(2)
    with pytest.raises(InvalidInput) as info:
        await verify(server, state)
    message = str(info.value)
    assert f"state file {state} is for the log 'another.example/log'" in message
    assert f"the server's checkpoint is of the log {server.log.origin!r}" in message
    assert state.read_bytes() == forged  # kept as it was: it is the evidence


async def test_unreachable_server_says_so(tmp_path: Path) -> None:
    with pytest.raises(Unreachable, match=re.escape("cannot reach http://127.0.0.1:9/log/vkey")):
        await asyncio.to_thread(verify_log, "http://127.0.0.1:9", tmp_path / "s.json")


async def test_http_error_shows_the_servers_detail(server: Server) -> None:
    with pytest.raises(EvidenceError, match="HTTP 404: no entry 5"):
        await asyncio.to_thread(http_get, server.url + "/log/entries/5")


@pytest.mark.parametrize("url", ["ftp://host/", "host:8080", "http://", "http://h/?q=1"])
def test_server_url_must_be_plain_http(url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="server URL"):
        verify_log(url, tmp_path / "s.json")


def test_default_state_path_is_per_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_state_path("https://log.example.org:8443/custody/") == (
        tmp_path / "evidence" / "monitor-log.example.org_8443_custody.json"
    )
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path("http://127.0.0.1:8080") == (
        tmp_path / "home" / ".config" / "evidence" / "monitor-127.0.0.1_8080.json"
    )
