"""Devices: enrolment, revocation, and the device behind a bearer token.

Enrolment and revocation are custody-log entries (`device.enrolled`,
`device.revoked`), committed in the same transaction as the device's row, so
the database and the log never disagree about a device.

A device's bearer token is 256 random bits, shown once and stored only as its
SHA-256: a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from evidence import tokens
from evidence.chain import manifest, note
from evidence.chain.entries import DeviceEnrolled, DeviceRevoked
from evidence.clock import format_time
from evidence.db import Database
from evidence.devices.tables import devices
from evidence.errors import (
    Conflict,
    EvidenceError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
    VerificationError,
)
from evidence.log.custody import CustodyLog
from evidence.text import check_label

TOKEN_PREFIX = "evd_"  # noqa: S105 - not a secret: makes tokens recognisable to scanners
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    vkey: str
    revoked: bool

    @property
    def verifier(self) -> note.Verifier:
        return note.parse_vkey(self.vkey)


# Statements run on every upload, built once: SQLAlchemy then only binds their values.
_DEVICE_BY_TOKEN = sa.select(devices).where(devices.c.token_hash == sa.bindparam("digest"))


@dataclass(frozen=True)
class _Enrolled:
    """Effect of ``device.enrolled``: the device's row, naming its entry."""

    device: str
    name: str
    vkey: str
    token_digest: bytes
    now: dt.datetime

    def apply(self, conn: Connection, index: int) -> None:
        conn.execute(
            devices.insert().values(
                id=self.device,
                name=self.name,
                vkey=self.vkey,
                token_hash=self.token_digest,
                enrolled_at=self.now,
                enrolled_entry=index,
            )
        )


@dataclass(frozen=True)
class _Revoked:
    """Effect of ``device.revoked``: the device's row says when, and which entry."""

    device: str
    now: dt.datetime

    def apply(self, conn: Connection, index: int) -> None:
        updated = conn.execute(
            devices.update()
            .where(devices.c.id == self.device, devices.c.revoked_at.is_(None))
            .values(revoked_at=self.now, revoked_entry=index)
        )
        if updated.rowcount != 1:
            raise Conflict(f"device {self.device} was revoked meanwhile")


def enroll_device(
    log: CustodyLog, db: Database, vkey: str, name: str, *, now: dt.datetime
) -> dict[str, str]:
    """Enrol the device whose verifier key is `vkey`; return its id and its one-time token."""
    try:
        verifier = note.parse_vkey(vkey)
    except VerificationError as exc:
        raise InvalidInput(f"not a device verifier key: {exc}") from exc
    name = check_label(name, "a device name", MAX_NAME_LENGTH)
    device = manifest.device_id(verifier.vkey)
    token = tokens.new_secret(TOKEN_PREFIX)
    entry = DeviceEnrolled(time=format_time(now), device=device, key=verifier.vkey)

    with db.read() as conn:
        if conn.execute(sa.select(devices.c.id).where(devices.c.id == device)).first():
            raise Conflict(f"device {device} is already enrolled")
    try:
        log.append_sync([entry], _Enrolled(device, name, verifier.vkey, tokens.digest(token), now))
    except DbIntegrityError as exc:  # enrolled by someone else just now
        raise Conflict(f"device {device} is already enrolled") from exc
    return {"device": device, "token": token}


def revoke_device(
    log: CustodyLog, db: Database, device: str, *, now: dt.datetime
) -> dict[str, str | int]:
    """Revoke a device: its token stops working and the log records when."""
    with db.read() as conn:
        row = conn.execute(sa.select(devices).where(devices.c.id == device)).first()
    if row is None:
        raise NotFound(f"no device {device}")
    if row.revoked_at is not None:
        raise Conflict(f"device {device} is already revoked (entry {row.revoked_entry})")

    entry = DeviceRevoked(time=format_time(now), device=device)
    index = log.append_sync([entry], _Revoked(device, now))[0]
    return {"device": device, "revoked_entry": index}


def device_for_token(conn: Connection, token: str) -> Device | None:
    """The device holding bearer `token`, revoked or not; None for an unknown token."""
    digest = tokens.digest(token)
    row = conn.execute(_DEVICE_BY_TOKEN, {"digest": digest}).first()
    if row is None or not tokens.same_digest(row.token_hash, digest):
        return None
    return Device(row.id, row.name, row.vkey, row.revoked_at is not None)


def get_device(conn: Connection, device: str) -> Device | None:
    row = conn.execute(sa.select(devices).where(devices.c.id == device)).first()
    if row is None:
        return None
    return Device(row.id, row.name, row.vkey, row.revoked_at is not None)


def authenticate_device(db: Database, authorization: str | None) -> Device:
    """The enrolled, unrevoked device named by an ``Authorization: Bearer`` header."""
    outcome = authenticate_devices(db, [authorization])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def authenticate_devices(
    db: Database, authorizations: Sequence[str | None]
) -> list[Device | EvidenceError]:
    """`authenticate_device` for each header, in one read of the database.

    Each outcome is the device or the error its request gets (`Unauthorized`,
    `Forbidden`): for a `Batcher` of many requests' authentications.
    """
    with db.read() as conn:
        return [_authenticated(conn, header) for header in authorizations]


def _authenticated(conn: Connection, authorization: str | None) -> Device | EvidenceError:
    if not authorization or not authorization.startswith("Bearer "):
        return Unauthorized("a device bearer token is required (Authorization: Bearer ...)")
    if not authorization.isascii():  # tokens are ASCII; a non-UTF-8 byte is not one
        return Unauthorized("the bearer token is not valid")
    device = device_for_token(conn, authorization[len("Bearer ") :].strip())
    if device is None:
        return Unauthorized("the bearer token is not valid")
    if device.revoked:
        return Forbidden("this device has been revoked")
    return device
