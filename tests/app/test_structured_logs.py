"""Structured logs: JSON lines with static event names; no secrets or evidence bytes, ever."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from apphelpers import access_entries

from evidence.app import LOG, create_app
from evidence.keys import load_log_signer
from evidence.logs import REDACTED, configure_logging, get_logger, redact_secrets
from evidence.settings import Settings


def _events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def json_logs(restore_logging: None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    return stream


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "device_token",
        "password",
        "db_password",
        "secret",
        "client_secret",
        "skey",
        "seed",
        "private_key",
        "Authorization",
        "cookie",
        "credentials",
        "key",
        "api_key",
    ],
)
def test_fields_named_like_secrets_are_redacted(name: str) -> None:
    out = redact_secrets(None, "info", {"event": "x", name: "hunter2"})
    assert out[name] == REDACTED


def test_public_fields_are_kept() -> None:
    event = {"event": "x", "vkey": "log+01020304+AQ", "log_key_file": "/d/log.key", "size": 3}
    assert redact_secrets(None, "info", dict(event)) == event


def test_values_that_are_secrets_or_evidence_are_redacted_whatever_their_field() -> None:
    out = redact_secrets(
        None,
        "info",
        {
            "event": "x",
            "note": "PRIVATE+KEY+origin+01020304+AQAA",
            "body": b"\x89PNG evidence bytes",
            "chunk": bytearray(10),
            "url": "postgresql://evidence:hunter2@db:5432/custody",
        },
    )
    assert out["note"] == REDACTED
    assert out["body"] == "[19 bytes redacted]"
    assert out["chunk"] == "[10 bytes redacted]"
    assert out["url"] == "postgresql://evidence:***@db:5432/custody"


def test_json_lines_have_the_static_event_name_and_fields(json_logs: io.StringIO) -> None:
    get_logger("evidence.test").info("item.stored", item="ab" * 32, password="hunter2")
    logging.getLogger("some.library").warning("plain %s message", "stdlib")
    first, second = _events(json_logs)
    assert first["event"] == "item.stored"
    assert first["item"] == "ab" * 32
    assert first["password"] == REDACTED
    assert first["level"] == "info"
    assert "timestamp" in first
    assert second["event"] == "plain stdlib message"
    assert second["logger"] == "some.library"
    assert "hunter2" not in json_logs.getvalue()


def test_level_filters_events(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    get_logger().info("quiet.event")
    get_logger().warning("loud.event")
    assert [e["event"] for e in _events(stream)] == ["loud.event"]


async def test_each_request_is_logged_without_its_query_string(
    json_logs: io.StringIO, aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/log/proof/inclusion?index=0&size=1&token=hunter2")
    assert resp.status == 200
    resp404 = await client.get("/log/entries/7?x=1")
    assert resp404.status == 404
    requests = [e for e in _events(json_logs) if e["event"] == "http.request"]
    assert [(e["method"], e["path"], e["status"]) for e in requests] == [
        ("GET", "/log/proof/inclusion", 200),
        ("GET", "/log/entries/7", 404),
    ]
    assert all(isinstance(e["duration_ms"], float) for e in requests)
    assert requests[0]["request_id"] == resp.headers["X-Request-Id"]
    assert "hunter2" not in json_logs.getvalue()


async def test_server_logs_neither_key_material_nor_evidence_bytes(
    json_logs: io.StringIO, aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    entries = access_entries(2)
    for entry in entries:
        await client.app[LOG].append(entry)
    for path in ("/log/checkpoint", "/log/vkey", "/log/entries/1", "/log/entries/2"):
        assert (await client.get(path)).status == 200
    await client.close()
    text = json_logs.getvalue()
    signer = load_log_signer(settings.log_key_file)
    assert signer.skey.rsplit("+", 1)[1] not in text
    assert "PRIVATE+KEY" not in text
    for entry in entries:
        assert entry.item not in text
    opened = [e for e in _events(json_logs) if e["event"] == "log.opened"]
    assert opened
    assert opened[0]["vkey"] == signer.verifier.vkey  # the public key is logged


async def test_unexpected_error_is_logged_with_its_traceback_on_the_server(
    json_logs: io.StringIO, aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    log = client.app[LOG]

    def broken() -> None:
        raise RuntimeError("checkpoint table on fire")

    log.checkpoint = broken
    resp = await client.get("/log/checkpoint")
    assert resp.status == 500
    assert "on fire" not in await resp.text()
    errors = [e for e in _events(json_logs) if e["event"] == "http.unhandled_error"]
    assert len(errors) == 1
    assert errors[0]["path"] == "/log/checkpoint"
    assert "RuntimeError: checkpoint table on fire" in errors[0]["exception"]
    assert "Traceback" in errors[0]["exception"]
