"""Nothing secret reaches any log: checked through real uploads, reads and every login path.

Every log record of every logger is captured at DEBUG (the most a deployment
can ask for), both as the record itself and as the JSON lines production
writes, while the real app takes a tus upload (in pieces, so that a tail is
kept in the database), a small item (POST /api/v1/items), a ranged content
read, password logins that fail and succeed, API token use (valid and
expired), a logout and an expired session. The content carries a marker
that appears nowhere else; no record may hold it, nor a device or API
token (``evd_``, ``evu_``), a password, a session cookie's value or key
material (the log's signing key, a device's seed).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from ingesthelpers import create, enrolled, patch
from webhelpers import (
    SettableClock,
    captured_logs,
    csrf_token_of,
    log_in,
    new_person,
    set_clock,
)

from evidence.app import create_app
from evidence.log.keys import load_log_signer
from evidence.people.accounts import assign_case, create_token
from evidence.people.sessions import SESSION_COOKIE, SESSION_TTL
from evidence.settings import Settings
from evidence.web.keys import DB, LOG

Client = TestClient[Any, Any]
T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


class _Everything(logging.Handler):
    """Keeps every record that production's handler would write, with every attribute, as text."""

    def __init__(self, production: logging.Handler) -> None:
        super().__init__(logging.DEBUG)
        self.production = production
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not self.production.filter(record):
            return  # never written
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = repr(record.msg)
        self.texts.append(f"{record.name} {message} {record.__dict__!r}")


@contextlib.contextmanager
def every_log_record() -> Iterator[tuple[_Everything, io.StringIO]]:
    """Every record of every logger at DEBUG, raw and as production's JSON lines; restored after."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = {logger: logger.level for logger in loggers}
    with captured_logs() as rendered:  # production's configuration, at DEBUG
        root = logging.getLogger()
        [production] = [h for h in root.handlers if h.get_name() == "evidence"]
        raw = _Everything(production)
        root.addHandler(raw)
        for logger in loggers:
            logger.setLevel(logging.DEBUG)
        try:
            yield raw, rendered
        finally:
            root.removeHandler(raw)
            for logger, old in levels.items():
                logger.setLevel(old)


def _text(marker: bytes, size: int) -> bytes:
    line = b"visit note " + marker + b": child seen alone, the room was warm.\n"
    return (line * (size // len(line) + 1))[:size]


@pytest.fixture
async def browser(aiohttp_client: Any, settings: Settings) -> Client:
    client: Client = await aiohttp_client(create_app(settings, clock=SettableClock()))
    return client


async def test_no_evidence_token_password_cookie_or_key_reaches_any_log(
    browser: Client, settings: Settings
) -> None:
    app = browser.app
    assert app is not None
    db, log = app[DB], app[LOG]
    kit = enrolled(log, db, "camera-logs")
    marker = b"MARKER-" + secrets.token_hex(12).encode()
    small_marker = b"SMALL-" + secrets.token_hex(12).encode()
    content = _text(marker, 5000)
    small = _text(small_marker, 300)
    person = new_person(browser, "Pat Logs", "worker")
    assign_case(db, kit.case, person.user)
    api_token = create_token(db, person.user, now=log.clock())["token"]
    expired_token = create_token(
        db, person.user, now=log.clock() - dt.timedelta(hours=2), expires_in=60
    )["token"]
    wrong_password = "Wr0ng-" + secrets.token_urlsafe(12)
    session_ids: list[str] = []

    with every_log_record() as (raw, rendered):
        # a tus upload in three pieces (a tail kept between them), then its receipt
        manifest, signature = kit.manifest(content, kind="document", media_type="text/plain")
        location = (await create(browser, kit, manifest, signature)).headers["Location"]
        for start, end in ((0, 1234), (1234, 4000), (4000, len(content))):
            reply = await patch(browser, kit, location, start, content[start:end])
            assert reply.status == 204, await reply.text()
        receipt = await (await browser.get(location + "/receipt", headers=kit.auth)).json()
        # a small item in one request
        small_manifest, small_signature = kit.manifest(
            small, kind="document", media_type="text/plain"
        )
        form = aiohttp.FormData()
        form.add_field("manifest", small_manifest, filename="m.json")
        form.add_field("signature", base64.b64encode(small_signature).decode())
        form.add_field("content", small, filename="c.txt", content_type="text/plain")
        reply = await browser.post("/api/v1/items", data=form, headers=kit.auth)
        assert reply.status == 201, await reply.text()
        # a ranged read of the content, with the API token; an expired token refused
        bearer = {"Authorization": f"Bearer {api_token}"}
        read = await browser.get(
            f"/api/v1/items/{receipt['item']}/content",
            headers={**bearer, "Range": "bytes=100-2999"},
        )
        assert read.status == 206
        assert await read.read() == content[100:3000]
        expired = {"Authorization": f"Bearer {expired_token}"}
        assert (await browser.get("/api/v1/cases", headers=expired)).status == 401
        # password logins: a failure, a success, the home page, a logout
        assert (await log_in(browser, person.name, wrong_password)).status == 401
        signed_in = await log_in(browser, person.name, person.password)
        assert signed_in.status == 303
        session_ids.append(signed_in.cookies[SESSION_COOKIE].value)
        home = await browser.get("/")
        assert home.status == 200
        csrf = csrf_token_of(await home.text())
        logout = await browser.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
        assert logout.status == 303
        # a session that expires
        again = await log_in(browser, person.name, person.password)
        session_ids.append(again.cookies[SESSION_COOKIE].value)
        set_clock(browser, log.clock() + SESSION_TTL + dt.timedelta(minutes=1))
        stale = await browser.get("/", allow_redirects=False)
        assert stale.status == 303

    signer = load_log_signer(settings.log_key_file)
    key_b64 = signer.skey.removeprefix("PRIVATE+KEY+").split("+", 2)[2]
    forbidden = {
        "the evidence marker": marker.decode(),
        "the small item's marker": small_marker.decode(),
        "the marker in hex": marker.hex(),
        "the device token": kit.token,
        "the API token": api_token,
        "the expired API token": expired_token,
        "the password": person.password,
        "the wrong password": wrong_password,
        "the csrf token": csrf,
        "the log's signing key": key_b64,
        "the log key's seed": signer.seed.hex(),
        "a private key": "PRIVATE+KEY",
        "the device's seed": kit.signer.seed.hex(),
        "any device token": "evd_",
        "any API token": "evu_",
        **{f"session cookie {i}": value for i, value in enumerate(session_ids)},
    }
    assert kit.token.startswith("evd_")
    assert api_token.startswith("evu_")
    records = raw.texts
    assert any("http.request" in text for text in records)  # the capture saw the requests
    assert any("auth.login_failed" in text for text in records)
    for name, secret in forbidden.items():
        leaking = [text[:300] for text in records if secret in text]
        assert not leaking, f"{name} is in a log record: {leaking}"
        assert secret not in rendered.getvalue(), f"{name} is in the rendered log"
