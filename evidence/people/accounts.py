"""People, their roles and assignments, API tokens and passwords.

Passwords are hashed with argon2id (libsodium through PyNaCl); API tokens and
session ids are 256 random bits, stored only as their SHA-256. Names stay in
the database: the custody log knows a person by their opaque id.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable

import nacl.exceptions
import nacl.pwhash
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from evidence import tokens
from evidence.cases.registry import require_case
from evidence.clock import stored_utc
from evidence.db import Database
from evidence.errors import Conflict, InvalidInput, NotFound
from evidence.people.policy import ROLES, Actor
from evidence.people.tables import api_tokens, case_assignments, user_roles, users
from evidence.text import check_label

USER_TOKEN_PREFIX = "evu_"  # noqa: S105 - not a secret: makes tokens recognisable
MAX_NAME_LENGTH = 200
# argon2id at libsodium's "interactive" cost: about 0.1 s and 64 MiB per hash here.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" is a denial of service
# Verified when a name is unknown, so that a wrong name costs what a wrong password does.
_DUMMY_HASH = nacl.pwhash.argon2id.str(b"not a password", opslimit=OPSLIMIT, memlimit=MEMLIMIT)


def hash_password(password: str) -> str:
    return nacl.pwhash.argon2id.str(
        password.encode("utf-8"), opslimit=OPSLIMIT, memlimit=MEMLIMIT
    ).decode("ascii")


def _password_matches(stored: bytes, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(stored, password.encode("utf-8")))
    except nacl.exceptions.InvalidkeyError:
        return False


def check_password(conn: Connection, name: str, password: str) -> str | None:
    """The id of the enabled user `name` whose password this is; None otherwise.

    Takes about as long for an unknown name, a disabled user or a wrong
    password, so that the answer's timing does not say which.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None or row.password_hash is None:
        _password_matches(_DUMMY_HASH, password)
        return None
    matches = _password_matches(row.password_hash.encode("ascii"), password)
    return row.id if matches and row.disabled_at is None else None


def add_user(db: Database, name: str, roles: Iterable[str], *, now: dt.datetime) -> dict[str, str]:
    """A new user with `roles`; returns their id and a one-time password (shown once)."""
    name = check_label(name, "a name", MAX_NAME_LENGTH)
    wanted = sorted(set(roles))
    unknown = [r for r in wanted if r not in ROLES]
    if not wanted or unknown:
        raise InvalidInput(f"roles must be some of {', '.join(ROLES)} (unknown: {unknown})")
    user = secrets.token_hex(16)
    password = secrets.token_urlsafe(18)
    try:
        with db.write() as conn:
            conn.execute(
                users.insert().values(
                    id=user, name=name, password_hash=hash_password(password), created_at=now
                )
            )
            conn.execute(user_roles.insert(), [{"user_id": user, "role": r} for r in wanted])
    except DbIntegrityError as exc:
        raise Conflict(f"a user named {name!r} already exists") from exc
    return {"user": user, "name": name, "password": password, "roles": ",".join(wanted)}


def _user_row(conn: Connection, user: str) -> sa.Row[tuple[object, ...]]:
    row = conn.execute(sa.select(users).where(users.c.id == user)).first()
    if row is None:
        raise NotFound(f"no user {user}")
    return row


def disable_user(db: Database, user: str, *, now: dt.datetime) -> dict[str, str]:
    """Disable a user: their sessions and tokens stop working at once."""
    with db.write() as conn:
        _user_row(conn, user)
        conn.execute(users.update().where(users.c.id == user).values(disabled_at=now))
    return {"user": user, "disabled": now.isoformat()}


def create_token(
    db: Database, user: str, *, now: dt.datetime, expires_in: int | None = None
) -> dict[str, str]:
    """A bearer token for `user`'s API use (shown once, stored hashed)."""
    if expires_in is not None and expires_in <= 0:
        raise InvalidInput("--expires-in must be a positive number of seconds")
    token = tokens.new_secret(USER_TOKEN_PREFIX)
    expires = now + dt.timedelta(seconds=expires_in) if expires_in is not None else None
    with db.write() as conn:
        if _user_row(conn, user).disabled_at is not None:
            raise Conflict(f"user {user} is disabled")
        conn.execute(
            api_tokens.insert().values(
                token_hash=tokens.digest(token), user_id=user, created_at=now, expires_at=expires
            )
        )
    result = {"user": user, "token": token}
    if expires is not None:
        result["expires_at"] = expires.isoformat()
    return result


def revoke_tokens(db: Database, user: str, *, now: dt.datetime) -> int:
    with db.write() as conn:
        _user_row(conn, user)
        return int(
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.user_id == user, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
        )


def actor_for_user(conn: Connection, user: str) -> Actor | None:
    """The enabled user `user` as an actor, with their roles and assigned cases."""
    row = conn.execute(sa.select(users).where(users.c.id == user)).first()
    if row is None or row.disabled_at is not None:
        return None
    roles = conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user_id == user))
    assigned = conn.execute(
        sa.select(case_assignments.c.case_id).where(case_assignments.c.user_id == user)
    )
    return Actor(user, "user", frozenset(roles.scalars()), frozenset(assigned.scalars()))


def actor_for_token(conn: Connection, token: str, now: dt.datetime) -> Actor | None:
    """The person holding API token `token`, if it is valid, unexpired and unrevoked."""
    digest = tokens.digest(token)
    row = conn.execute(sa.select(api_tokens).where(api_tokens.c.token_hash == digest)).first()
    if row is None or not tokens.same_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None or (
        row.expires_at is not None and stored_utc(row.expires_at) <= now
    ):
        return None
    return actor_for_user(conn, row.user_id)


def assign_case(db: Database, case: str, user: str) -> dict[str, str]:
    with db.write() as conn:
        _user_row(conn, user)
        require_case(conn, case)
        exists = conn.execute(
            sa.select(case_assignments).where(
                case_assignments.c.case_id == case, case_assignments.c.user_id == user
            )
        ).first()
        if exists is None:
            conn.execute(case_assignments.insert().values(case_id=case, user_id=user))
    return {"case": case, "user": user}


def unassign_case(db: Database, case: str, user: str) -> dict[str, str]:
    with db.write() as conn:
        removed = conn.execute(
            case_assignments.delete().where(
                case_assignments.c.case_id == case, case_assignments.c.user_id == user
            )
        ).rowcount
    if removed == 0:
        raise NotFound(f"user {user} is not assigned to case {case}")
    return {"case": case, "user": user}


def user_roles_of(conn: Connection, user: str) -> frozenset[str]:
    """The roles of `user` (none for an unknown user)."""
    rows = conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user_id == user))
    return frozenset(rows.scalars())


def require_user(conn: Connection, user: str) -> None:
    """`NotFound` unless the user exists (enabled or not)."""
    _user_row(conn, user)


def user_names(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """The names of the users among `ids` (ids of devices or unknown ones are left out)."""
    rows = conn.execute(sa.select(users.c.id, users.c.name).where(users.c.id.in_(list(ids))))
    return {row.id: row.name for row in rows}
