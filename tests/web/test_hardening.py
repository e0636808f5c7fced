"""Attacks on the web login and bad input to every route: CSRF, session fixation,
brute force, secrets in logs, path traversal, oversized input, odd requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from webhelpers import (
    auth_app,
    captured_logs,
    csrf_token_of,
    events,
    log_in,
    login_token,
    make_settings,
    new_person,
    raw_request,
    set_clock,
)
from yarl import URL

from evidence.people import login as web_auth
from evidence.people.accounts import create_token
from evidence.people.sessions import SESSION_COOKIE
from evidence.people.tables import login_failures
from evidence.settings import Settings
from evidence.web.keys import CLOCK, DB

Client = TestClient[Any, Any]
T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def browser(aiohttp_client: Any, settings: Settings) -> Client:
    """A client of the real app on SQLite, keeping cookies as a browser does; clock at T0."""
    client: Client = await aiohttp_client(auth_app(settings))
    set_clock(client, T0)
    return client


@pytest.fixture
async def behind_proxy(
    aiohttp_client: Any, tmp_path: Path, each_database: dict[str, str]
) -> Client:
    """The app behind a trusted proxy (EVIDENCE_TRUST_PROXY): X-Forwarded-For names the client."""
    client: Client = await aiohttp_client(
        auth_app(make_settings(tmp_path / "proxied", trust_proxy="true", **each_database))
    )
    set_clock(client, T0)
    return client


@contextlib.asynccontextmanager
async def other_browser(client: Client) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser (its own cookies) on the same server; paths are relative to it."""
    async with aiohttp.ClientSession(
        base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


async def _post_login(client: Client, form: dict[str, str], **kwargs: Any) -> Any:
    return await client.post("/login", data=form, allow_redirects=False, **kwargs)


async def _home(client: Client) -> Any:
    return await client.get("/", allow_redirects=False)


# -- CSRF -----------------------------------------------------------------------------------


async def test_login_without_the_forms_token_is_refused(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    await login_token(browser)  # the cookie is there; the form field is not
    resp = await _post_login(browser, {"name": sam.name, "password": sam.password})
    assert resp.status == 403
    assert SESSION_COOKIE not in resp.cookies


async def test_login_with_a_wrong_token_is_refused(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    await login_token(browser)
    for wrong in (secrets.token_urlsafe(32), "", "x", "A" * 5000):
        form = {"csrf_token": wrong, "name": sam.name, "password": sam.password}
        resp = await _post_login(browser, form)
        assert resp.status == 403, wrong
        assert SESSION_COOKIE not in resp.cookies


async def test_login_without_the_login_cookie_is_refused(browser: Client) -> None:
    """A cross-site form post: the page knows a token, but SameSite keeps the cookie home."""
    sam = new_person(browser, "Sam")
    token = await login_token(browser)
    browser.session.cookie_jar.clear()
    form = {"csrf_token": token, "name": sam.name, "password": sam.password}
    assert (await _post_login(browser, form)).status == 403


async def test_login_with_another_browsers_token_is_refused(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    await login_token(browser)
    async with other_browser(browser) as attacker:
        page = await (await attacker.get("login")).text()
    form = {"csrf_token": csrf_token_of(page), "name": sam.name, "password": sam.password}
    assert (await _post_login(browser, form)).status == 403


async def test_a_cross_site_form_post_is_refused_even_with_a_good_token(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    token = await login_token(browser)
    form = {"csrf_token": token, "name": sam.name, "password": sam.password}
    for site in ("cross-site", "same-site"):
        resp = await _post_login(browser, form, headers={"Sec-Fetch-Site": site})
        assert resp.status == 403, site
    resp = await _post_login(browser, form, headers={"Sec-Fetch-Site": "same-origin"})
    assert resp.status == 303


@pytest.fixture
async def signed_in(browser: Client) -> str:
    """`browser` logged in as Robin; the session's CSRF token (from the home page)."""
    robin = new_person(browser, "Robin")
    assert (await log_in(browser, robin.name, robin.password)).status == 303
    return csrf_token_of(await (await _home(browser)).text())


@pytest.mark.parametrize("flaw", ["missing", "wrong", "another_sessions", "empty"])
async def test_logout_without_the_sessions_own_token_is_refused(
    browser: Client, signed_in: str, flaw: str
) -> None:
    form: dict[str, str] = {}
    if flaw == "wrong":
        form["csrf_token"] = secrets.token_urlsafe(32)
    elif flaw == "empty":
        form["csrf_token"] = ""
    elif flaw == "another_sessions":
        kai = new_person(browser, "Kai")
        async with other_browser(browser) as other:
            token = csrf_token_of(await (await other.get("login")).text())
            await other.post(
                "login", data={"csrf_token": token, "name": kai.name, "password": kai.password}
            )
            form["csrf_token"] = csrf_token_of(await (await other.get("")).text())
        assert form["csrf_token"] != signed_in
    resp = await browser.post("/logout", data=form, allow_redirects=False)
    assert resp.status == 403
    assert (await _home(browser)).status == 200  # still signed in


async def test_logout_posted_from_another_site_is_refused(browser: Client, signed_in: str) -> None:
    resp = await browser.post(
        "/logout",
        data={"csrf_token": signed_in},
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert (await _home(browser)).status == 200


async def test_logout_is_post_only(browser: Client, signed_in: str) -> None:
    assert (await browser.get("/logout", allow_redirects=False)).status == 405
    assert (await _home(browser)).status == 200


# -- session fixation -------------------------------------------------------------------


async def test_a_session_id_planted_before_login_is_not_the_session_after(
    browser: Client,
) -> None:
    sam = new_person(browser, "Sam")
    planted = secrets.token_urlsafe(32)
    browser.session.cookie_jar.update_cookies({SESSION_COOKIE: planted})
    resp = await log_in(browser, sam.name, sam.password)
    issued = resp.cookies[SESSION_COOKIE].value
    assert issued != planted
    async with other_browser(browser) as attacker:
        attacker.cookie_jar.update_cookies({SESSION_COOKIE: planted})
        resp = await attacker.get("", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/login")


async def test_an_attackers_own_session_planted_in_a_browser_is_ended_at_login(
    browser: Client,
) -> None:
    """The attacker logs in, plants their session in the victim's browser; the
    victim logs in: they get a new session, and the attacker's id is dead."""
    mallory, victim = new_person(browser, "Mallory"), new_person(browser, "Victim")
    async with other_browser(browser) as attacker:
        token = csrf_token_of(await (await attacker.get("login")).text())
        resp = await attacker.post(
            "login",
            data={"csrf_token": token, "name": mallory.name, "password": mallory.password},
            allow_redirects=False,
        )
        planted = resp.cookies[SESSION_COOKIE].value
        browser.session.cookie_jar.update_cookies({SESSION_COOKIE: planted})
        resp = await log_in(browser, victim.name, victim.password)
        assert resp.cookies[SESSION_COOKIE].value != planted
        assert "Signed in as Victim" in await (await _home(browser)).text()
        assert (await attacker.get("", allow_redirects=False)).status == 303


# -- brute force ----------------------------------------------------------------------------


async def _fail(client: Client, name: str, **headers: str) -> int:
    resp = await log_in(client, name, "not-the-password", headers=headers or None)
    return resp.status


async def test_five_failures_lock_an_account_for_a_quarter_hour(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    assert [await _fail(browser, sam.name) for _ in range(5)] == [401] * 5
    resp = await log_in(browser, sam.name, sam.password)  # even the right password
    assert resp.status == 429
    assert resp.headers["Retry-After"] == str(15 * 60)
    assert web_auth.THROTTLED in await resp.text()
    assert SESSION_COOKIE not in resp.cookies
    set_clock(browser, T0 + dt.timedelta(minutes=10))
    resp = await log_in(browser, sam.name, sam.password)
    assert (resp.status, resp.headers["Retry-After"]) == (429, str(5 * 60))
    set_clock(browser, T0 + dt.timedelta(minutes=15))
    assert (await log_in(browser, sam.name, sam.password)).status == 303


async def test_an_unknown_account_is_throttled_exactly_like_a_real_one(browser: Client) -> None:
    real = new_person(browser, "Real Person")
    answers = []
    for name in (real.name, "Made Up Person"):
        statuses = [await _fail(browser, name) for _ in range(5)]
        resp = await log_in(browser, name, "anything")
        page = await resp.text()
        answers.append(
            (
                statuses,
                resp.status,
                resp.headers["Retry-After"],
                page.replace(csrf_token_of(page), "T"),
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][:3] == ([401] * 5, 429, "900")


async def test_a_successful_login_does_not_count_as_a_failure(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    assert [await _fail(browser, sam.name) for _ in range(4)] == [401] * 4
    assert (await log_in(browser, sam.name, sam.password)).status == 303
    assert await _fail(browser, sam.name) == 401  # the fifth failure
    assert await _fail(browser, sam.name) == 429


async def test_parallel_guesses_cannot_slip_past_the_limit(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    token = await login_token(browser)
    form = {"csrf_token": token, "name": sam.name, "password": "guess"}
    statuses = await asyncio.gather(*(_post_login(browser, form) for _ in range(12)))
    assert sorted(r.status for r in statuses) == [401] * 5 + [429] * 7


async def test_every_server_counts_the_same_failures(
    browser: Client, aiohttp_client: Any, settings: Settings
) -> None:
    """Two servers of one service (one database): guesses spread over both still add up."""
    second: Client = await aiohttp_client(auth_app(settings))
    set_clock(second, T0)
    sam = new_person(browser, "Sam")
    statuses = [await _fail(server, sam.name) for server in (browser, second) * 3]
    assert statuses == [401] * 5 + [429]
    assert (await log_in(browser, sam.name, sam.password)).status == 429


async def test_twenty_failures_from_one_address_lock_it_for_every_account(
    behind_proxy: Client,
) -> None:
    sam = new_person(behind_proxy, "Sam")
    spraying = {"X-Forwarded-For": "203.0.113.9"}
    statuses = [await _fail(behind_proxy, f"user{i}", **spraying) for i in range(20)]
    assert statuses == [401] * 20
    resp = await log_in(behind_proxy, sam.name, sam.password, headers=spraying)
    assert (resp.status, resp.headers["Retry-After"]) == (429, "900")
    elsewhere = {"X-Forwarded-For": "198.51.100.7"}
    assert (await log_in(behind_proxy, sam.name, sam.password, headers=elsewhere)).status == 303


async def test_a_forged_forwarded_for_does_not_escape_the_address_limit(browser: Client) -> None:
    """Without EVIDENCE_TRUST_PROXY, X-Forwarded-For is the client's own say-so."""
    statuses = [
        await _fail(browser, f"user{i}", **{"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(20)
    ]
    assert statuses == [401] * 20
    assert await _fail(browser, "someone-else", **{"X-Forwarded-For": "192.0.2.200"}) == 429


async def test_the_failure_table_keeps_no_names_and_forgets_old_windows(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    await _fail(browser, "my-secret-password-typed-as-name")
    app = browser.app
    assert app is not None
    with app[DB].read() as conn:
        keys = list(conn.execute(sa.select(login_failures.c.key)).scalars())
    assert sorted(k.split(":", 1)[0] for k in keys) == ["addr", "user"]
    assert not any("secret" in k for k in keys)
    set_clock(browser, T0 + dt.timedelta(minutes=16))
    assert (await log_in(browser, sam.name, sam.password)).status == 303
    with app[DB].read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(login_failures)).scalar() == 0


async def test_an_unknown_name_costs_as_long_as_a_wrong_password(
    browser: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No enumeration by timing: an unknown name, a wrong password and a right one each
    cost exactly one argon2id verification (counted at the hash, not timed: timings
    on a shared machine prove nothing)."""
    import evidence.people.accounts as people

    sam = new_person(browser, "Sam")
    verifications: list[bytes] = []
    real = people._password_matches

    def counted(stored: bytes, password: str) -> bool:
        verifications.append(stored)
        return real(stored, password)

    monkeypatch.setattr(people, "_password_matches", counted)
    for name in ("nobody", sam.name):
        token = await login_token(browser)
        resp = await _post_login(browser, {"csrf_token": token, "name": name, "password": "x"})
        assert resp.status == 401
    assert len(verifications) == 2
    assert verifications[0] == people._DUMMY_HASH  # the unknown name paid for a hash too
    assert verifications[1].startswith(b"$argon2id$")


# -- secrets in logs, URLs and messages ---------------------------------------------------


async def test_passwords_tokens_and_session_ids_never_reach_the_logs(browser: Client) -> None:
    pat = new_person(browser, "Pat", "auditor")
    app = browser.app
    assert app is not None
    api_token = create_token(app[DB], pat.user, now=app[CLOCK]())["token"]
    wrong_password = "Wr0ng-" + secrets.token_urlsafe(12)
    with captured_logs() as logs:
        assert (await log_in(browser, pat.name, wrong_password)).status == 401
        resp = await log_in(browser, pat.name, pat.password)
        assert resp.status == 303
        session_id = resp.cookies[SESSION_COOKIE].value
        page = await (await _home(browser)).text()
        csrf = csrf_token_of(page)
        resp = await browser.get("/api/v1/cases", headers={"Authorization": f"Bearer {api_token}"})
        assert resp.status == 200
        await browser.post("/logout", data={"csrf_token": csrf})
    text = logs.getvalue()
    for secret in (wrong_password, pat.password, api_token, session_id, csrf):
        assert secret not in text
    logged = events(logs)
    requests = [e for e in logged if e["event"] == "http.request"]
    # The access log has these fields and no others: no body, header, cookie or query.
    fields = {"event", "method", "path", "status", "duration_ms", "request_id"}
    assert {key for e in requests for key in e} <= fields | {"level", "logger", "timestamp"}
    seen = [(e["event"], e.get("path")) for e in logged]
    assert ("http.request", "/login") in seen
    assert ("http.request", "/api/v1/cases") in seen
    assert ("auth.login_failed", None) in seen
    assert ("auth.login", None) in seen


async def test_a_password_in_a_url_is_refused_and_not_echoed(browser: Client) -> None:
    for method in ("GET", "POST"):
        resp = await browser.request(method, "/login?name=Sam&password=hunter2-in-url")
        assert resp.status == 400
        assert "hunter2" not in await resp.text()


async def test_error_bodies_never_echo_what_was_typed(browser: Client) -> None:
    token = await login_token(browser)
    secret = "hunter2-" + secrets.token_hex(8)
    for form in (
        {"csrf_token": token, "name": secret, "password": secret},
        {"csrf_token": token, "name": secret},
        {"csrf_token": "bad", "name": secret, "password": secret},
    ):
        resp = await _post_login(browser, form)
        assert resp.status in (400, 401, 403)
        assert secret not in await resp.text()


# -- path traversal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/items/..%2F..%2Fetc%2Fpasswd/content",
        "/api/v1/items/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/items/%2e%2e%2f%2e%2e%2fetc%2fpasswd/custody",
        "/log/entries/../x",
        "/log/entries/..%2F..%2Fx",
        "/static/../..",
        "/static/../../etc/passwd",
        "/../../etc/passwd",
        "/api/v1/cases/..%2F..%2F/items",
    ],
)
async def test_path_traversal_gets_a_4xx(browser: Client, signed_in: str, path: str) -> None:
    cookie = browser.session.cookie_jar.filter_cookies(browser.make_url("/"))[SESSION_COOKIE].value
    raw = (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {SESSION_COOKIE}={cookie}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    resp = await raw_request(browser, raw)
    assert 400 <= resp.status < 500, (path, resp.head)
    assert b"root:" not in resp.body


# -- oversized and malformed input -----------------------------------------------------------


async def test_a_huge_login_body_is_refused_unread(browser: Client) -> None:
    token = await login_token(browser)
    huge = f"csrf_token={token}&name=x&password=" + "a" * (2 << 20)
    resp = await browser.post(
        "/login",
        data=io.BytesIO(huge.encode()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 413


async def test_a_huge_chunked_login_body_is_refused(browser: Client) -> None:
    token = await login_token(browser)

    async def body() -> AsyncIterator[bytes]:
        yield f"csrf_token={token}&name=x&password=".encode()
        for _ in range(64):
            yield b"a" * 65536

    resp = await browser.post(
        "/login", data=body(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 413


async def test_a_100_kb_password_is_refused_before_hashing(browser: Client) -> None:
    sam = new_person(browser, "Sam")
    token = await login_token(browser)
    form = {"csrf_token": token, "name": sam.name, "password": "p" * 100_000}
    assert (await _post_login(browser, form)).status == 413
    # Under the form limit but over the password limit: a wrong password, unhashed.
    form["password"] = "p" * 5000
    assert (await _post_login(browser, form)).status == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"csrf_token=a&csrf_token=b&name=x&password=y", "application/x-www-form-urlencoded"),
        ("&".join(f"f{i}=v" for i in range(1000)).encode(), "application/x-www-form-urlencoded"),
        (b"name=%ff%fe&password=x", "application/x-www-form-urlencoded"),
        (b"name=\xff\xfe&password=x", "application/x-www-form-urlencoded"),
        (b"just garbage without equals", "application/x-www-form-urlencoded"),
        (b'{"name": "x", "password": "y"}', "application/json"),
        (b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\ny\r\n--b--", "multipart/form-data"),
        (b"", "text/plain"),
    ],
)
async def test_malformed_login_forms_get_400(
    browser: Client, body: bytes, content_type: str
) -> None:
    await login_token(browser)
    resp = await browser.post("/login", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_input"


NOT_COMPRESSED = b"csrf_token=x&name=sam&password=not-compressed-at-all"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-unknown", "gzip, gzip"])
@pytest.mark.parametrize("path", ["/login", "/logout"])
async def test_a_form_not_in_its_content_encoding_gets_a_4xx(
    browser: Client, signed_in: str, path: str, encoding: str
) -> None:
    resp = await browser.post(
        path,
        data=NOT_COMPRESSED,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": encoding,
        },
        allow_redirects=False,
    )
    assert 400 <= resp.status < 500, await resp.text()
    assert set(await resp.json()) == {"error", "detail"}
    assert (await _home(browser)).status == 200  # still signed in, on a new connection


async def test_odd_names_are_just_wrong(browser: Client) -> None:
    for name in ("\x00", "a\x00b", "n" * 5000, " ", ""):
        token = await login_token(browser)
        resp = await _post_login(browser, {"csrf_token": token, "name": name, "password": "x"})
        assert resp.status == 401, name


@pytest.mark.parametrize("header", ["X-Huge", "Cookie", "Authorization"])
async def test_a_huge_header_gets_a_4xx(browser: Client, header: str) -> None:
    for path in ("/", "/login", "/api/v1/cases"):
        raw = (
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}: {'h' * 100_000}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        resp = await raw_request(browser, raw)
        assert 400 <= resp.status < 500, (path, resp.head)


NON_UTF8_CREDENTIALS = [
    b"Cookie: evidence_session=\xff\xfe\xfd",
    b"Cookie: evidence_session=" + b"A" * 42 + b"\xff",
    b"Cookie: evidence_login=\xff",
    b"Authorization: Bearer \xff\xfe",
    b"Authorization: Bearer evu_\xed\xa0\x80",
    b"Authorization: \xff",
]


async def _get_raw(client: Client, path: bytes, header: bytes) -> int:
    raw = b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n" + header
    return (await raw_request(client, raw + b"\r\nConnection: close\r\n\r\n")).status


@pytest.mark.parametrize("header", NON_UTF8_CREDENTIALS)
async def test_non_utf8_credentials_on_the_pages_are_just_no_credentials(
    browser: Client, header: bytes
) -> None:
    for path in (b"/", b"/login", b"/log/vkey"):
        assert await _get_raw(browser, path, header) in (200, 303), (path, header)
    token = await login_token(browser)
    body = b"csrf_token=" + token.encode() + b"&name=x&password=y"
    raw = (
        b"POST /login HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    assert (await raw_request(browser, raw)).status in (401, 403)


@pytest.mark.parametrize("header", NON_UTF8_CREDENTIALS[:2] + NON_UTF8_CREDENTIALS[3:5])
async def test_non_utf8_credentials_on_the_api_get_a_401(browser: Client, header: bytes) -> None:
    assert await _get_raw(browser, b"/api/v1/cases", header) == 401


# -- every route, oddly ------------------------------------------------------------------------

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer garbage"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic Zm9vOmJhcg=="},
    {"Authorization": "Bearer " + "t" * 4000},
    {"Cookie": f"{SESSION_COOKIE}={'A' * 43}"},
    {"Cookie": f"{SESSION_COOKIE}=; {web_auth.LOGIN_COOKIE}=x"},
]
PARAMETERS = (
    "x",
    "0",
    "-1",
    "99999999999999999999999",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "%ff%fe",
    "%E2%80%AE",
    "a" * 500,
    "%20",
)
QUERIES = ("", "?index=x&size=-1&old=&new=%00&download=2&token=t", "?" + "a=1&" * 200)


def _route_paths(client: Client) -> list[str]:
    app = client.app
    assert app is not None
    paths = set()
    for resource in app.router.resources():
        info = resource.get_info()
        template = info.get("path") or info.get("formatter")
        assert isinstance(template, str), info
        paths.add(template)
    return sorted(paths)


def _fill(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, template)


async def test_odd_requests_to_every_route_never_get_a_500(browser: Client) -> None:
    paths = _route_paths(browser)
    assert {"/", "/login", "/logout", "/log/checkpoint", "/api/v1/cases"} <= set(paths)
    base = str(browser.make_url("/")).rstrip("/")
    seen: list[tuple[str, str, int]] = []

    async def send(method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        url = URL(base + path, encoded=True)
        async with browser.session.request(
            method, url, headers=headers, data=body, allow_redirects=False
        ) as resp:
            await resp.read()
            seen.append((method, path, resp.status))

    garbage = b"\x00\xff garbage {not: json} " * 10
    for template in paths:
        path = _fill(template, "x")
        for method in METHODS:
            for credentials in CREDENTIALS:
                body = None if method in ("GET", "HEAD", "OPTIONS") else garbage
                await send(method, path, {**credentials, "Content-Type": "text/plain"}, body)
        if "{" in template:
            for value in PARAMETERS:
                for method in ("GET", "POST", "DELETE"):
                    await send(method, _fill(template, value), {}, None)
        for query in QUERIES:
            await send("GET", path + query, {"Range": "bytes=9-1,x"}, None)
            await send("POST", path + query, {"Content-Type": "application/json"}, b"[")
    failures = [s for s in seen if s[2] >= 500]
    assert failures == []
    assert len(seen) > 500
