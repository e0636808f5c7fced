"""Who is making a request: an API token, a web session, or nobody.

`actor_of(request)` resolves the person behind a request once (cached on the
request) and `require(request, action, case)` asks the policy, raising 401
for nobody and 403 for someone not allowed. Handlers call `require` before
they touch anything; the policy itself is `evidence.people.policy`.

Web sessions: the cookie `SESSION_COOKIE` holds 256 random bits; the database
holds only their SHA-256, the user, the session's CSRF token and its expiry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from aiohttp import web

from evidence import tokens
from evidence.clock import stored_utc
from evidence.db import Database
from evidence.errors import Forbidden, Unauthorized
from evidence.people.accounts import actor_for_token, actor_for_user
from evidence.people.policy import Actor, is_allowed
from evidence.people.tables import web_sessions
from evidence.web.keys import CLOCK, DB

SESSION_COOKIE = "evidence_session"
SESSION_TTL = dt.timedelta(hours=8)  # a working day; then log in again
_ACTOR = web.RequestKey("actor", object)  # Actor | None, resolved once per request


@dataclass(frozen=True)
class Session:
    user: str
    csrf_token: str
    expires_at: dt.datetime


def create_session(db: Database, user: str, now: dt.datetime) -> tuple[str, Session]:
    """A new session for `user`: its cookie value (secret) and what is stored of it."""
    session_id = tokens.new_secret()
    session = Session(user, tokens.new_secret(), now + SESSION_TTL)
    with db.write() as conn:
        conn.execute(
            web_sessions.insert().values(
                id_hash=tokens.digest(session_id),
                user_id=user,
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=session.expires_at,
            )
        )
    return session_id, session


def load_session(db: Database, session_id: str, now: dt.datetime) -> Session | None:
    with db.read() as conn:
        row = conn.execute(
            sa.select(web_sessions).where(web_sessions.c.id_hash == tokens.digest(session_id))
        ).first()
    if row is None:
        return None
    expires = stored_utc(row.expires_at)
    if expires <= now:
        return None
    return Session(row.user_id, row.csrf_token, expires)


def end_session(db: Database, session_id: str) -> None:
    with db.write() as conn:
        conn.execute(
            web_sessions.delete().where(web_sessions.c.id_hash == tokens.digest(session_id))
        )


def _resolve(
    db: Database, authorization: str | None, session_id: str | None, now: dt.datetime
) -> Actor | None:
    # Tokens and session ids are ASCII; anything else (a header byte that is not
    # UTF-8 arrives as a lone surrogate) is not a credential.
    if authorization is not None and not authorization.isascii():
        return None
    if session_id is not None and not session_id.isascii():
        session_id = None
    with db.read() as conn:
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme != "Bearer" or not token.strip():
                return None
            return actor_for_token(conn, token.strip(), now)
    if session_id:
        session = load_session(db, session_id, now)
        if session is not None:
            with db.read() as conn:
                return actor_for_user(conn, session.user)
    return None


async def actor_of(request: web.Request) -> Actor | None:
    """The person making `request` (API token first, else web session), or None."""
    if _ACTOR in request:
        cached = request[_ACTOR]
        return cached if isinstance(cached, Actor) else None
    actor = await asyncio.to_thread(
        _resolve,
        request.app[DB],
        request.headers.get("Authorization"),
        request.cookies.get(SESSION_COOKIE),
        request.app[CLOCK](),
    )
    request[_ACTOR] = actor
    return actor


async def require_person(request: web.Request) -> Actor:
    """The person asking (authentication only: what they may do is the policy's to say)."""
    actor = await actor_of(request)
    if actor is None:
        raise Unauthorized("log in, or send an API token (Authorization: Bearer ...)")
    return actor


async def require(request: web.Request, action: str, case: str | None = None) -> Actor:
    """The actor, if the policy allows them `action` (on `case`); 401 or 403 otherwise."""
    actor = await require_person(request)
    if not is_allowed(actor, action, case):
        raise Forbidden(f"not allowed: {action}")
    return actor
