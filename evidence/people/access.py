"""Who is making a request: an API token, a web session, or nobody.

`actor_of(request)` resolves the person behind a request once (cached on the
request) and `require(request, action, case)` asks the policy, raising 401
for nobody and 403 for someone not allowed. Handlers call `require` before
they touch anything; the policy itself is `evidence.people.policy`.

Web sessions: `evidence.people.sessions`.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from evidence.db import Database
from evidence.errors import Forbidden, Unauthorized
from evidence.people.accounts import actor_for_token, actor_for_user
from evidence.people.policy import Actor, is_allowed
from evidence.people.sessions import SESSION_COOKIE, load_session
from evidence.web.keys import CLOCK, DB

_ACTOR = web.RequestKey("actor", object)  # Actor | None, resolved once per request


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
