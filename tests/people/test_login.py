"""Web login: password login, server-side sessions in a strict cookie, logout, expiry, pages."""

from __future__ import annotations

import datetime as dt
import os
from http.cookies import Morsel
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, make_mocked_request
from webhelpers import (
    auth_app,
    csrf_token_of,
    log_in,
    make_settings,
    new_person,
    set_clock,
)

from evidence.cli import main
from evidence.db import Database
from evidence.people import login as web_auth
from evidence.people.accounts import actor_for_token, add_user, create_token, disable_user
from evidence.people.sessions import SESSION_COOKIE, SESSION_TTL
from evidence.people.tables import web_sessions
from evidence.settings import Settings
from evidence.web.keys import CLOCK, DB

Client = TestClient[Any, Any]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@pytest.fixture
async def browser(aiohttp_client: Any, settings: Settings) -> Client:
    """A client of the real app on SQLite, keeping cookies as a browser does."""
    client: Client = await aiohttp_client(auth_app(settings))
    return client


def _cookie(resp: Any, name: str) -> Morsel[str]:
    morsel = resp.cookies.get(name)
    assert morsel is not None, resp.headers.getall("Set-Cookie", [])
    return morsel  # type: ignore[no-any-return]


def _session_rows(client: Client) -> int:
    with client.app[DB].read() as conn:  # type: ignore[index]
        return int(conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar_one())


async def test_login_shows_who_you_are_and_logout_ends_the_session(browser: Client) -> None:
    alex = new_person(browser, "Alex Worker", "worker", "reviewer")
    resp = await browser.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login")

    resp = await log_in(browser, alex.name, alex.password)
    assert (resp.status, resp.headers["Location"]) == (303, "/")
    session_id = _cookie(resp, SESSION_COOKIE).value

    home = await browser.get("/")
    page = await home.text()
    assert home.status == 200
    assert home.content_type == "text/html"
    assert "Signed in as Alex Worker" in page
    assert alex.user in page
    assert "Your roles: reviewer, worker" in page
    assert 'href="/api/v1/cases"' in page
    assert home.headers["Cache-Control"] == "no-store"
    assert _session_rows(browser) == 1
    assert (await browser.get("/api/v1/cases")).status == 200  # the link works, by cookie

    resp = await browser.post(
        "/logout", data={"csrf_token": csrf_token_of(page)}, allow_redirects=False
    )
    assert (resp.status, resp.headers["Location"]) == (303, "/login")
    assert _cookie(resp, SESSION_COOKIE)["max-age"] == "0"
    assert _session_rows(browser) == 0  # deleted on the server, not only forgotten
    # The old cookie, replayed, is nobody.
    browser.session.cookie_jar.update_cookies({SESSION_COOKIE: session_id})
    resp = await browser.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login")


async def test_the_login_form_posts_a_password_field_and_a_hidden_token(browser: Client) -> None:
    resp = await browser.get("/login")
    page = await resp.text()
    assert '<form method="post" action="/login">' in page
    assert 'type="password" name="password"' in page
    assert len(csrf_token_of(page)) == 43
    assert resp.headers["Cache-Control"] == "no-store"
    login_cookie = _cookie(resp, web_auth.LOGIN_COOKIE)
    assert login_cookie.value == csrf_token_of(page)
    assert login_cookie["httponly"] is True
    assert login_cookie["samesite"] == "Strict"


async def test_session_cookie_is_httponly_strict_and_not_secure_over_plain_http(
    browser: Client,
) -> None:
    sam = new_person(browser, "Sam")
    resp = await log_in(browser, sam.name, sam.password)
    cookie = _cookie(resp, SESSION_COOKIE)
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["secure"] == ""
    assert cookie["max-age"] == str(int(SESSION_TTL.total_seconds()))
    assert len(cookie.value) == 43


async def test_behind_a_trusted_proxy_https_cookies_are_secure(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    proxied: Client = await aiohttp_client(
        auth_app(make_settings(tmp_path / "data", trust_proxy="true"))
    )
    kim = new_person(proxied, "Kim")
    https = {"X-Forwarded-Proto": "https"}
    form = await proxied.get("/login", headers=https)
    login_cookie = _cookie(form, web_auth.SECURE_LOGIN_COOKIE)
    assert login_cookie["secure"] is True
    assert login_cookie["samesite"] == "Strict"
    # The test client keeps Secure cookies to itself over http: send it as a browser would.
    resp = await proxied.post(
        "/login",
        data={
            "csrf_token": csrf_token_of(await form.text()),
            "name": kim.name,
            "password": kim.password,
        },
        headers={**https, "Cookie": f"{web_auth.SECURE_LOGIN_COOKIE}={login_cookie.value}"},
        allow_redirects=False,
    )
    assert resp.status == 303
    cookie = _cookie(resp, SESSION_COOKIE)
    assert (cookie["secure"], cookie["httponly"], cookie["samesite"], cookie["path"]) == (
        True,
        True,
        "Strict",
        "/",
    )
    # Plain http through the same proxy: not Secure (the browser would refuse it).
    plain = await proxied.get("/login", headers={"X-Forwarded-Proto": "http"})
    assert _cookie(plain, web_auth.LOGIN_COOKIE)["secure"] == ""


async def test_an_untrusted_forwarded_proto_header_is_ignored(browser: Client) -> None:
    resp = await browser.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert web_auth.SECURE_LOGIN_COOKIE not in resp.cookies
    assert _cookie(resp, web_auth.LOGIN_COOKIE)["secure"] == ""


def test_secure_is_decided_by_tls_or_by_a_trusted_proxy_only() -> None:
    forwarded = make_mocked_request("GET", "/", headers={"X-Forwarded-Proto": "https, http"})
    assert web_auth.is_secure(forwarded, trust_proxy=True)
    assert not web_auth.is_secure(forwarded, trust_proxy=False)
    plain = make_mocked_request("GET", "/")
    assert not web_auth.is_secure(plain, trust_proxy=True)


@pytest.mark.parametrize(
    ("forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", True, "203.0.113.9"),
        ("198.51.100.1, 203.0.113.9", True, "203.0.113.9"),  # the proxy's own addition
        ("203.0.113.9", False, "127.0.0.1"),  # anyone can write the header
        ("2001:db8:1:2:aaaa::1", True, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", True, "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", True, "203.0.113.9"),
        ("", True, "127.0.0.1"),
    ],
)
def test_throttling_address_is_the_peer_or_the_trusted_proxys_client(
    forwarded: str, trusted: bool, expected: str
) -> None:
    request = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": forwarded} if forwarded else {}
    )
    request._transport_peername = ("127.0.0.1", 50000)  # type: ignore[attr-defined]
    assert web_auth.client_address(request, trust_proxy=trusted) == expected


async def test_every_response_carries_the_security_headers(browser: Client) -> None:
    for path in ("/login", "/", "/log/vkey", "/no/such/page"):
        resp = await browser.get(path, allow_redirects=False)
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (path, name)
    resp = await browser.post("/login", data={}, allow_redirects=False)
    assert resp.status == 403
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_a_session_expires_after_its_time_to_live(browser: Client) -> None:
    jo = new_person(browser, "Jo")
    start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    set_clock(browser, start)
    assert (await log_in(browser, jo.name, jo.password)).status == 303
    set_clock(browser, start + SESSION_TTL - dt.timedelta(seconds=1))
    assert (await browser.get("/", allow_redirects=False)).status == 200
    set_clock(browser, start + SESSION_TTL)
    resp = await browser.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login")
    assert _cookie(resp, SESSION_COOKIE)["max-age"] == "0"


async def test_expired_sessions_are_removed_at_a_later_login(browser: Client) -> None:
    jo, lee = new_person(browser, "Jo"), new_person(browser, "Lee")
    start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    set_clock(browser, start)
    await log_in(browser, jo.name, jo.password)
    assert _session_rows(browser) == 1
    set_clock(browser, start + SESSION_TTL + dt.timedelta(minutes=1))
    browser.session.cookie_jar.clear()
    await log_in(browser, lee.name, lee.password)
    assert _session_rows(browser) == 1  # Lee's; Jo's expired row is gone


async def test_a_disabled_users_session_stops_working_at_once(browser: Client) -> None:
    ana = new_person(browser, "Ana")
    await log_in(browser, ana.name, ana.password)
    assert (await browser.get("/", allow_redirects=False)).status == 200
    assert (await browser.get("/api/v1/cases")).status == 200
    app = browser.app
    assert app is not None
    disable_user(app[DB], ana.user, now=app[CLOCK]())
    resp = await browser.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login")
    assert (await browser.get("/api/v1/cases")).status == 401
    # And a fresh login with the right password is refused like any wrong one.
    resp = await log_in(browser, ana.name, ana.password)
    assert resp.status == 401
    assert web_auth.WRONG_CREDENTIALS in await resp.text()


async def test_wrong_password_and_unknown_name_get_the_same_answer(browser: Client) -> None:
    ali = new_person(browser, "Ali")
    wrong = await log_in(browser, ali.name, ali.password + "x")
    unknown = await log_in(browser, "Nobody At All", ali.password)
    wrong_page, unknown_page = await wrong.text(), await unknown.text()
    assert wrong.status == unknown.status == 401
    assert web_auth.WRONG_CREDENTIALS in wrong_page
    # Equal but for the form's token, which each GET /login makes afresh.
    assert wrong_page.replace(csrf_token_of(wrong_page), "T") == unknown_page.replace(
        csrf_token_of(unknown_page), "T"
    )
    assert SESSION_COOKIE not in wrong.cookies
    assert SESSION_COOKIE not in unknown.cookies
    for page in (wrong_page, unknown_page):
        assert ali.password not in page
        assert "Ali" not in page  # nothing typed is echoed back
        assert "Nobody" not in page


async def test_names_are_escaped_in_pages(browser: Client) -> None:
    odd = new_person(browser, '<script>alert("x")</script> & co', "auditor")
    await log_in(browser, odd.name, odd.password)
    page = await (await browser.get("/")).text()
    assert "<script>" not in page
    # markupsafe writes a double quote as &#34; (html.escape wrote &quot;): both escape it
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page


async def test_tokens_revoke_prints_the_count_and_the_tokens_stop_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("EVIDENCE_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("EVIDENCE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("EVIDENCE_LOG_LEVEL", "warning")
    settings = make_settings(data_dir)
    data_dir.mkdir()
    db = Database.connect(settings.database_url)
    now = dt.datetime.now(dt.UTC)
    try:
        user = add_user(db, "Pat", ["auditor"], now=now)["user"]
        tokens = [create_token(db, user, now=now)["token"] for _ in range(2)]
    finally:
        db.close()

    from webhelpers import captured_logs  # the CLI configures logging: put it back after

    with captured_logs(), pytest.raises(SystemExit) as info:
        main(["tokens", "revoke", user])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f'{{"revoked": 2, "user": "{user}"}}'
    db = Database.connect(settings.database_url)
    try:
        with db.read() as conn:
            assert all(actor_for_token(conn, t, dt.datetime.now(dt.UTC)) is None for t in tokens)
    finally:
        db.close()
    with captured_logs(), pytest.raises(SystemExit) as info:
        main(["tokens", "revoke", "no-such-user"])
    assert info.value.code != 0
    assert "no user no-such-user" in capsys.readouterr().err
