"""Password login, web sessions and the few server-rendered pages.

Routes (`setup` adds them):

* ``GET /login``: the login form;
* ``POST /login``: check the name and password; on success a new session
  (`evidence.people.access.create_session`) in the `SESSION_COOKIE` cookie and 303 to ``/``;
* ``POST /logout``: end the session in the database, clear the cookie, 303 to ``/login``;
* ``GET /``: who you are, your roles, a link to your cases (``GET /api/v1/cases``).

Every cookie is HttpOnly, SameSite=Strict, Path=/, and Secure when the
browser's connection is TLS: the request is https, or it carries
``X-Forwarded-Proto: https`` from a proxy trusted by ``EVIDENCE_TRUST_PROXY``.

CSRF: every form carries a hidden ``csrf_token``, compared with
`hmac.compare_digest`; a missing or different token is refused with 403.

* Logout (signed in): the token is the session's own, kept in the database
  with the session, so another session's token does not fit.
* Login (no session yet): a double-submit cookie. ``GET /login`` puts a fresh
  random token both in the form and in a cookie (named with the ``__Host-``
  prefix over TLS, so that no sibling subdomain can plant one); ``POST
  /login`` needs both, equal. A page on another site can neither read the
  cookie nor make the browser send it (SameSite=Strict). The token is not
  signed: anyone can fetch a valid cookie and token from ``GET /login``, so a
  signature would prove nothing; what matters is that nobody else can set
  the victim's cookie. Browsers' ``Sec-Fetch-Site`` is checked as well: a form
  posted from another site, or from a sibling subdomain, is refused.

Throttling: failed logins are counted in ``login_failures``, in the database
every server shares, per account (keyed by the SHA-256 of the name given, so
that a password typed into the name field is not stored) and per client
address (per /64 for IPv6). Past `ACCOUNT_FAILURES` for one name or
`ADDRESS_FAILURES` from one address within `FAILURE_WINDOW`, logins get 429
with Retry-After before any password is checked, alike for names that exist
and names that do not. An attempt is counted *before* its password is
checked and uncounted if it succeeds, so that parallel guesses cannot slip
past the limit.

No user enumeration: one message, "name or password is wrong", for an unknown
name, a wrong password and a disabled account, and `check_password` takes as
long for each. Passwords are read only from a POSTed form body, never from a
URL, and are neither logged nor echoed back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import math
import re
from collections.abc import Sequence
from typing import TypeGuard
from urllib.parse import parse_qsl

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.dialects import postgresql, sqlite

from evidence import tokens
from evidence.clock import stored_utc
from evidence.db import Database
from evidence.errors import EvidenceError, Forbidden, InvalidInput, TooLarge
from evidence.logs import get_logger
from evidence.people.access import (
    SESSION_COOKIE,
    SESSION_TTL,
    Session,
    create_session,
    end_session,
    load_session,
)
from evidence.people.accounts import (
    MAX_NAME_LENGTH,
    MAX_PASSWORD_LENGTH,
    actor_for_user,
    check_password,
)
from evidence.people.policy import Actor
from evidence.people.tables import login_failures, users, web_sessions
from evidence.web.keys import CLOCK, DB, PASSWORD_CHECKS, SETTINGS
from evidence.web.pages import render

CSRF_FIELD = "csrf_token"
LOGIN_COOKIE = "evidence_login"
SECURE_LOGIN_COOKIE = "__Host-evidence_login"  # over TLS: only this host can set it
LOGIN_FORM_TTL = 3600  # seconds a login form stays usable
CASES_URL = "/api/v1/cases"

# A login form is a name, a password and a token: 16 KiB holds the longest
# allowed of each, percent-encoded. More is refused before it is parsed.
MAX_FORM_BODY = 16 << 10
MAX_FORM_FIELDS = 8

# Throttling of failed logins (see the module docstring). Five wrong guesses
# per account in a quarter of an hour is generous for a person who mistyped
# and useless for guessing; twenty per address lets an office share a NAT.
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20
FAILURE_WINDOW = dt.timedelta(minutes=15)
IPV6_PREFIX = 64  # one IPv6 client usually holds a whole /64
# Each argon2id check takes 64 MiB: a burst of logins must not exhaust memory.
MAX_CONCURRENT_PASSWORD_CHECKS = 4
# Expired windows and sessions removed at each successful login, at most.
CLEANUP_BATCH = 1000

WRONG_CREDENTIALS = "name or password is wrong"
THROTTLED = "too many failed logins: wait a while and try again"

# Form tokens and session ids are `tokens.new_secret()`: 43 URL-safe characters.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

routes = web.RouteTableDef()
_log = get_logger("evidence.people.login")


def setup(app: web.Application) -> None:
    """Add the login, logout and home page routes to `app`."""
    app[PASSWORD_CHECKS] = asyncio.Semaphore(MAX_CONCURRENT_PASSWORD_CHECKS)
    app.add_routes(routes)


# -- requests ------------------------------------------------------------------


def is_secure(request: web.Request, trust_proxy: bool) -> bool:
    """Whether the browser's connection is TLS (directly, or at a trusted proxy)."""
    if request.secure:
        return True
    if not trust_proxy:
        return False
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def client_address(request: web.Request, trust_proxy: bool) -> str:
    """The client's address for throttling: an IPv4 address or an IPv6 /64 network.

    Behind a trusted proxy, the last address of ``X-Forwarded-For`` (the one
    the proxy added); otherwise the peer's address.
    """
    candidate = request.remote or ""
    if trust_proxy:
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
        if forwarded.strip():
            candidate = forwarded.split(",")[-1].strip()
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return candidate[:100] or "unknown"  # a Unix socket, or a proxy's odd header
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def _trust_proxy(request: web.Request) -> bool:
    return request.app[SETTINGS].trust_proxy


def _login_cookie(request: web.Request) -> str:
    return SECURE_LOGIN_COOKIE if is_secure(request, _trust_proxy(request)) else LOGIN_COOKIE


def _is_token(value: str | None) -> TypeGuard[str]:
    """Whether `value` has the shape of our tokens and session ids (before any lookup)."""
    return value is not None and _TOKEN.fullmatch(value) is not None


def _same_token(given: str | None, expected: str | None) -> bool:
    if not _is_token(given) or not _is_token(expected):
        return False
    return hmac.compare_digest(given.encode("ascii"), expected.encode("ascii"))


def _refuse_password_in_url(request: web.Request) -> None:
    if "password" in request.query:
        raise InvalidInput("a password never goes in a URL: the login form posts it")


def _refuse_cross_site(request: web.Request) -> None:
    """Browsers say where a request comes from; refuse form posts from other sites."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        _log.warning("auth.csrf_refused", path=request.path, reason="cross_site")
        raise Forbidden("form posts from other sites are refused")


async def read_form(request: web.Request) -> dict[str, str]:
    """A small urlencoded form body: each field at most once, at most `MAX_FORM_BODY` bytes."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidInput("send the form as application/x-www-form-urlencoded")
    length = request.content_length
    if length is not None and length > MAX_FORM_BODY:
        raise TooLarge(f"a form is at most {MAX_FORM_BODY} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(4096):
        body += chunk
        if len(body) > MAX_FORM_BODY:
            raise TooLarge(f"a form is at most {MAX_FORM_BODY} bytes")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as exc:  # UnicodeDecodeError included; the body is not repeated
        raise InvalidInput("the form is not valid application/x-www-form-urlencoded") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidInput(f"form field {name[:40]!r} is given more than once")
        form[name] = value
    return form


# -- throttling ------------------------------------------------------------------

Limit = tuple[str, int]  # a login_failures key and its limit


def throttle_keys(name: str, address: str) -> list[Limit]:
    """The counters one login attempt counts against: its account and its address."""
    account = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return [(f"user:{account}", ACCOUNT_FAILURES), (f"addr:{address}", ADDRESS_FAILURES)]


_COUNT = login_failures.c["count"]  # `.count` of a row or a collection is tuple's method


def reserve_attempt(db: Database, limits: Sequence[Limit], now: dt.datetime) -> int | None:
    """Count one attempt against each counter, unless one is at its limit.

    Returns None when the attempt may go ahead (it counts as a failure until
    `release_attempt`), else the seconds until it may be tried again. Safe
    with several servers: the counters' rows are locked, in key order.
    """
    keys = sorted(key for key, _ in limits)
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    with db.write() as conn:
        for key in keys:  # make sure each row exists, so that it can be locked
            conn.execute(
                insert(login_failures)
                .values(key=key, count=0, window_start=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
        rows = conn.execute(
            sa.select(login_failures.c.key, _COUNT, login_failures.c.window_start)
            .where(login_failures.c.key.in_(keys))
            .order_by(login_failures.c.key)
            .with_for_update()
        ).all()
        # key -> (failures, end of the window) for counters whose window is still open
        open_windows = {
            key: (count, stored_utc(start) + FAILURE_WINDOW)
            for key, count, start in rows
            if stored_utc(start) + FAILURE_WINDOW > now
        }
        waits = [
            (open_windows[key][1] - now).total_seconds()
            for key, limit in limits
            if key in open_windows and open_windows[key][0] >= limit
        ]
        if waits:
            return max(1, math.ceil(max(waits)))
        for key in keys:
            counter = login_failures.update().where(login_failures.c.key == key)
            if key in open_windows:
                conn.execute(counter.values({_COUNT: _COUNT + 1}))
            else:  # a new window opens with this attempt
                conn.execute(counter.values({_COUNT: 1, login_failures.c.window_start: now}))
    return None


def release_attempt(db: Database, limits: Sequence[Limit]) -> None:
    """Uncount an attempt that `reserve_attempt` counted: it succeeded."""
    keys = sorted(key for key, _ in limits)
    with db.write() as conn:
        for key in keys:
            conn.execute(
                login_failures.update()
                .where(login_failures.c.key == key, _COUNT > 0)
                .values({_COUNT: _COUNT - 1})
            )
        conn.execute(login_failures.delete().where(login_failures.c.key.in_(keys), _COUNT <= 0))


def forget_expired(db: Database, now: dt.datetime) -> None:
    """Remove counters whose window has passed and sessions that have expired.

    Rows another server holds locked are skipped (they are in use), so this
    never waits for, or deadlocks with, a login in progress.
    """
    cutoff = now - FAILURE_WINDOW
    with db.write() as conn:
        stale = conn.execute(
            sa.select(login_failures.c.key)
            .where(login_failures.c.window_start <= cutoff)
            .limit(CLEANUP_BATCH)
            .with_for_update(skip_locked=True)
        ).scalars()
        keys = list(stale)
        if keys:
            conn.execute(
                login_failures.delete().where(
                    login_failures.c.key.in_(keys), login_failures.c.window_start <= cutoff
                )
            )
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now))


# -- the work of each route, off the event loop --------------------------------------


def _check_credentials(db: Database, name: str, password: str) -> str | None:
    # A name no user can have (add_user refuses these) costs a dummy check all
    # the same; PostgreSQL could not even look up a name containing NUL.
    if len(name) > MAX_NAME_LENGTH or any(ord(c) < 0x20 for c in name):
        name = ""
    with db.read() as conn:
        return check_password(conn, name, password)


def _start_session(
    db: Database, user: str, brought: str | None, limits: Sequence[Limit], now: dt.datetime
) -> tuple[str, Session]:
    release_attempt(db, limits)
    if _is_token(brought):
        end_session(db, brought)  # an id the client brought is never reused
    created = create_session(db, user, now)
    try:
        forget_expired(db, now)
    except EvidenceError as exc:  # housekeeping: the next login tries again
        _log.warning("auth.cleanup_failed", error=str(exc))
    return created


def _signed_in(
    db: Database, session_id: str, now: dt.datetime
) -> tuple[Session, Actor, str] | None:
    """The session, the enabled user as an actor, and their name; None if any is missing."""
    session = load_session(db, session_id, now)
    if session is None:
        return None
    with db.read() as conn:
        actor = actor_for_user(conn, session.user)
        name = conn.execute(
            sa.select(users.c.name).where(users.c.id == session.user)
        ).scalar_one_or_none()
    if actor is None or name is None:
        return None
    return session, actor, name


# -- pages -------------------------------------------------------------------------------


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _login_page(
    request: web.Request, token: str, *, status: int = 200, message: str | None = None
) -> web.Response:
    context = {
        "message": message,
        "csrf_field": CSRF_FIELD,
        "csrf_token": token,
        "max_name": MAX_NAME_LENGTH,
        "max_password": MAX_PASSWORD_LENGTH,
    }
    return render(request, "login.html", context, status=status)


def _home_page(request: web.Request, actor: Actor, name: str, csrf_token: str) -> web.Response:
    context = {
        "name": name,
        "user": actor.id,
        "roles": ", ".join(sorted(actor.roles)) or "none",
        "cases_url": CASES_URL,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token,
    }
    return render(request, "home.html", context)


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=is_secure(request, _trust_proxy(request)),
        httponly=True,
        samesite="Strict",
    )


def _clear_cookie(request: web.Request, response: web.StreamResponse, name: str) -> None:
    response.del_cookie(
        name,
        path="/",
        secure=is_secure(request, _trust_proxy(request)),
        httponly=True,
        samesite="Strict",
    )


# -- routes ------------------------------------------------------------------------------


@routes.get("/login")
async def get_login(request: web.Request) -> web.Response:
    _refuse_password_in_url(request)
    token = tokens.new_secret()
    response = _login_page(request, token)
    _set_cookie(request, response, _login_cookie(request), token, max_age=LOGIN_FORM_TTL)
    return response


@routes.post("/login")
async def post_login(request: web.Request) -> web.Response:
    _refuse_password_in_url(request)
    _refuse_cross_site(request)
    form = await read_form(request)
    token = request.cookies.get(_login_cookie(request))
    if not _is_token(token) or not _same_token(form.get(CSRF_FIELD), token):
        _log.warning("auth.csrf_refused", path=request.path, reason="token")
        raise Forbidden("the login form has expired or did not come from here: reload it")
    name, password = form.get("name"), form.get("password")
    if name is None or password is None:
        raise InvalidInput("the login form needs a name and a password")

    db, now = request.app[DB], request.app[CLOCK]()
    address = client_address(request, _trust_proxy(request))
    limits = throttle_keys(name, address)
    wait = await asyncio.to_thread(reserve_attempt, db, limits, now)
    if wait is not None:
        _log.warning("auth.login_throttled", address=address, retry_after=wait)
        response = _login_page(request, token, status=429, message=THROTTLED)
        response.headers["Retry-After"] = str(wait)
        return response
    async with request.app[PASSWORD_CHECKS]:
        user = await asyncio.to_thread(_check_credentials, db, name, password)
    if user is None:
        _log.info("auth.login_failed", address=address)
        return _login_page(request, token, status=401, message=WRONG_CREDENTIALS)

    session_id, _session = await asyncio.to_thread(
        _start_session, db, user, request.cookies.get(SESSION_COOKIE), limits, now
    )
    _log.info("auth.login", user=user, address=address)
    response = _redirect("/")
    _set_cookie(
        request, response, SESSION_COOKIE, session_id, max_age=int(SESSION_TTL.total_seconds())
    )
    _clear_cookie(request, response, _login_cookie(request))
    return response


@routes.post("/logout")
async def post_logout(request: web.Request) -> web.Response:
    _refuse_cross_site(request)
    form = await read_form(request)
    db, now = request.app[DB], request.app[CLOCK]()
    session_id = request.cookies.get(SESSION_COOKIE)
    session = None
    if _is_token(session_id):
        session = await asyncio.to_thread(load_session, db, session_id, now)
    response = _redirect("/login")
    if session is None or session_id is None:  # nothing to end: no session, or expired
        if session_id is not None:
            _clear_cookie(request, response, SESSION_COOKIE)
        return response
    if not _same_token(form.get(CSRF_FIELD), session.csrf_token):
        _log.warning("auth.csrf_refused", path=request.path, reason="token")
        raise Forbidden("the form did not come from this session: reload the page")
    await asyncio.to_thread(end_session, db, session_id)
    _log.info("auth.logout", user=session.user)
    _clear_cookie(request, response, SESSION_COOKIE)
    return response


@routes.get("/")
async def get_home(request: web.Request) -> web.Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    found = None
    if _is_token(session_id):
        found = await asyncio.to_thread(
            _signed_in, request.app[DB], session_id, request.app[CLOCK]()
        )
    if found is None:
        response = _redirect("/login")
        if session_id is not None:  # expired, ended, or its user disabled
            _clear_cookie(request, response, SESSION_COOKIE)
        return response
    session, actor, name = found
    return _home_page(request, actor, name, session.csrf_token)
