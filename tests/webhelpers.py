"""Helpers of the web login tests (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient

from evidence.app import create_app
from evidence.clock import utc_now
from evidence.logs import configure_logging
from evidence.people.accounts import add_user
from evidence.settings import Settings
from evidence.web.keys import CLOCK, DB

__all__ = [
    "RawResponse",
    "auth_app",
    "captured_logs",
    "csrf_token_of",
    "log_in",
    "make_settings",
    "new_person",
    "raw_request",
    "set_clock",
]

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def make_settings(data_dir: Path, **env: str) -> Settings:
    """Settings from an environment naming `data_dir` and the given ``EVIDENCE_*`` values."""
    environ = {"EVIDENCE_DATA_DIR": str(data_dir), "EVIDENCE_LOG_FORMAT": "json"}
    environ.update({f"EVIDENCE_{name.upper()}": value for name, value in env.items()})
    return Settings.load(environ, stderr_is_tty=False)


def auth_app(settings: Settings) -> web.Application:
    """The real app from `create_app`, login routes included, on a clock the test sets."""
    return create_app(settings, clock=SettableClock())


@dataclass(frozen=True)
class Person:
    user: str
    name: str
    password: str


def new_person(client: TestClient[Any, Any], name: str, *roles: str) -> Person:
    """A user of the running app, with `roles` (default: worker) and a password."""
    app = client.app
    assert app is not None
    created = add_user(app[DB], name, roles or ("worker",), now=app[CLOCK]())
    return Person(created["user"], created["name"], created["password"])


class SettableClock:
    """The app's one clock, saying the time a test sets (the system's until then)."""

    def __init__(self) -> None:
        self.now: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.now if self.now is not None else utc_now()


def set_clock(client: TestClient[Any, Any], when: dt.datetime) -> None:
    """Make the app's clock (which the log, logins and sessions read) say `when`."""
    app = client.app
    assert app is not None
    clock = app[CLOCK]
    assert isinstance(clock, SettableClock), "make the app with make_app (a settable clock)"
    clock.now = when


def csrf_token_of(page: str) -> str:
    """The hidden csrf_token of the (first) form on `page`."""
    found = _CSRF.search(page)
    assert found is not None, page
    return html.unescape(found.group(1))


async def login_token(client: TestClient[Any, Any]) -> str:
    """GET /login (which sets the login cookie) and return its form's token."""
    resp = await client.get("/login")
    assert resp.status == 200
    return csrf_token_of(await resp.text())


async def log_in(
    client: TestClient[Any, Any],
    name: str,
    password: str,
    *,
    headers: dict[str, str] | None = None,
) -> Any:
    """Fetch the login form and post it, as a browser does; the POST's response."""
    token = await login_token(client)
    return await client.post(
        "/login",
        data={"csrf_token": token, "name": name, "password": password},
        headers=headers,
        allow_redirects=False,
    )


@dataclass(frozen=True)
class RawResponse:
    status: int
    head: bytes
    body: bytes


async def raw_request(client: TestClient[Any, Any], request: bytes) -> RawResponse:
    """Send `request` byte for byte (no client-side normalisation) and read the answer.

    The request should say ``Connection: close``; the answer is read to EOF.
    """
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        with contextlib.suppress(ConnectionError):  # the server may answer before reading all
            writer.write(request)
            await writer.drain()
        data = b""
        with contextlib.suppress(ConnectionError):
            data = await asyncio.wait_for(reader.read(-1), timeout=30)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), data[:200]
    return RawResponse(int(head.split(b" ", 2)[1]), head, body)


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged meanwhile, as the JSON lines production writes; logging restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("aiohttp.access", "alembic")}
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
