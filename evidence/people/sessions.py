"""Web sessions: the cookie `SESSION_COOKIE` holds 256 random bits; the database
holds only their SHA-256, the user, the session's CSRF token and its expiry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from evidence import tokens
from evidence.clock import stored_utc
from evidence.db import Database
from evidence.people.tables import web_sessions

SESSION_COOKIE = "evidence_session"
SESSION_TTL = dt.timedelta(hours=8)  # a working day; then log in again


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
