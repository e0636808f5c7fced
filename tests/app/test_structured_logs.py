"""Structured logs: JSON lines with static event names; no secrets or evidence bytes, ever."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any, NamedTuple

import pytest
from apphelpers import access_entries

from evidence.app import create_app
from evidence.log.keys import load_log_signer
from evidence.logs import (
    MAX_REDACT_DEPTH,
    REDACTED,
    configure_logging,
    get_logger,
    redact_secrets,
)
from evidence.settings import Settings
from evidence.web.keys import LOG


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


def test_secrets_inside_nested_dicts_and_lists_are_redacted() -> None:
    """Regression: only top-level fields were looked at; a secret one level down
    (a dict of settings, a list of headers) went to the log as it was."""
    request = {
        "headers": {"Authorization": "Bearer hunter2", "Accept": "*/*"},
        "db": {"url": "postgresql://evidence:hunter2@db:5432/custody", "pool": 5},
        "keys": ["PRIVATE+KEY+origin+01020304+AQAA", "log+01020304+AQ"],
        "chunks": (b"\x89PNG", [bytearray(3)]),
        "deep": {"a": [{"b": {"password": "hunter2", "size": 3}}]},
    }
    out = redact_secrets(None, "info", {"event": "x", "request": request})
    assert out["request"] == {
        "headers": {"Authorization": REDACTED, "Accept": "*/*"},
        "db": {"url": "postgresql://evidence:***@db:5432/custody", "pool": 5},
        "keys": [REDACTED, "log+01020304+AQ"],
        "chunks": ("[4 bytes redacted]", ["[3 bytes redacted]"]),
        "deep": {"a": [{"b": {"password": REDACTED, "size": 3}}]},
    }
    assert "hunter2" not in repr(out)
    # The caller's own objects are left as they were.
    assert request["headers"]["Authorization"] == "Bearer hunter2"  # type: ignore[index]


class _Conn(NamedTuple):
    url: str
    password: str


def test_named_tuples_and_exception_info_keep_working() -> None:
    out = redact_secrets(None, "info", {"event": "x", "conn": _Conn("http://u:pw@h/", "pw")})
    assert out["conn"] == {"url": "http://u:***@h/", "password": REDACTED}
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    out = redact_secrets(None, "error", {"event": "x", "exc_info": exc_info})
    assert out["exc_info"] == exc_info
    assert type(out["exc_info"]) is tuple


def test_nesting_beyond_the_redaction_depth_is_dropped_not_logged() -> None:
    deep: Any = {"password": "hunter2"}
    for _ in range(MAX_REDACT_DEPTH + 5):
        deep = {"next": [deep]}
    out = redact_secrets(None, "info", {"event": "x", "deep": deep})
    assert "hunter2" not in repr(out)
    assert REDACTED in repr(out)
    shallow = redact_secrets(None, "info", {"event": "x", "a": {"b": {"c": 1}}})
    assert shallow["a"] == {"b": {"c": 1}}


def test_self_referencing_values_do_not_recurse_forever() -> None:
    loop: dict[str, Any] = {"token": "hunter2"}
    loop["self"] = loop
    out = redact_secrets(None, "info", {"event": "x", "loop": loop})
    assert "hunter2" not in repr(out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot connect to postgresql://evidence:hunter2@db:5432/custody: refused",
            "cannot connect to postgresql://evidence:***@db:5432/custody: refused",
        ),
        (
            "two: http://a:b@h1/x and https://c:d@h2/y",
            "two: http://a:***@h1/x and https://c:***@h2/y",
        ),
        # A password that itself holds an "@" is redacted whole.
        ("postgresql://u:p@ss@db/custody", "postgresql://u:***@db/custody"),
        ("no password: postgresql://u@db/x", "no password: postgresql://u@db/x"),
    ],
)
def test_passwords_in_urls_inside_text_are_redacted(text: str, expected: str) -> None:
    assert redact_secrets(None, "info", {"event": "x", "msg": text})["msg"] == expected


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
    # The key's base64 is the third field after the prefix (name and key ID hold no "+",
    # the base64 may): all of it, and the seed in hex, must be absent.
    key_b64 = signer.skey.removeprefix("PRIVATE+KEY+").split("+", 2)[2]
    assert len(key_b64) == 44
    assert key_b64 not in text
    assert signer.seed.hex() not in text
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
