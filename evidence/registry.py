"""Devices and cases: enrolment, revocation, case references.

Enrolment and revocation are custody-log entries (`device.enrolled`,
`device.revoked`), committed in the same transaction as the device's row, so
the database and the log never disagree about a device. A case's reference (the
council's own) stays in the database; the log only ever sees the opaque id.

A device's bearer token is 256 random bits, shown once and stored only as its
SHA-256: a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from evidence.chain import manifest, note
from evidence.chain.entries import DeviceEnrolled, DeviceRevoked
from evidence.clock import format_time
from evidence.custody import CustodyLog
from evidence.db import Database
from evidence.db.schema import cases, devices
from evidence.errors import Conflict, InvalidInput, NotFound, VerificationError

TOKEN_PREFIX = "evd_"  # noqa: S105 - not a secret: makes tokens recognisable to scanners
MAX_NAME_LENGTH = 200
MAX_REFERENCE_LENGTH = 200


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    vkey: str
    revoked: bool

    @property
    def verifier(self) -> note.Verifier:
        return note.parse_vkey(self.vkey)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _check_label(text: str, what: str, limit: int) -> str:
    text = text.strip()
    if not text or len(text) > limit or any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise InvalidInput(f"{what} must be 1 to {limit} printable characters")
    return text


def add_case(db: Database, reference: str, *, now: dt.datetime) -> dict[str, str]:
    """Create a case for the council's `reference`; its id is opaque and random."""
    reference = _check_label(reference, "a case reference", MAX_REFERENCE_LENGTH)
    case_id = secrets.token_hex(16)
    try:
        with db.write() as conn:
            conn.execute(cases.insert().values(id=case_id, reference=reference, created_at=now))
    except DbIntegrityError as exc:
        raise Conflict(f"a case with reference {reference!r} already exists") from exc
    return {"case": case_id, "reference": reference}


# Statements run on every upload, built once: SQLAlchemy then only binds their values.
_CASE = sa.select(cases.c.id).where(cases.c.id == sa.bindparam("case"))
_DEVICE_BY_TOKEN = sa.select(devices).where(devices.c.token_hash == sa.bindparam("digest"))


def case_exists(conn: Connection, case_id: str) -> bool:
    return conn.execute(_CASE, {"case": case_id}).first() is not None


def enroll_device(log: CustodyLog, db: Database, vkey: str, name: str) -> dict[str, str]:
    """Enrol the device whose verifier key is `vkey`; return its id and its one-time token."""
    try:
        verifier = note.parse_vkey(vkey)
    except VerificationError as exc:
        raise InvalidInput(f"not a device verifier key: {exc}") from exc
    name = _check_label(name, "a device name", MAX_NAME_LENGTH)
    device = manifest.device_id(verifier.vkey)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = log.clock()
    entry = DeviceEnrolled(time=format_time(now), device=device, key=verifier.vkey)

    def record(conn: Connection, indexes: list[int]) -> None:
        conn.execute(
            devices.insert().values(
                id=device,
                name=name,
                vkey=verifier.vkey,
                token_hash=token_hash(token),
                enrolled_at=now,
                enrolled_entry=indexes[0],
            )
        )

    with db.read() as conn:
        if conn.execute(sa.select(devices.c.id).where(devices.c.id == device)).first():
            raise Conflict(f"device {device} is already enrolled")
    try:
        log.append_sync([entry], record=record)
    except DbIntegrityError as exc:  # enrolled by someone else just now
        raise Conflict(f"device {device} is already enrolled") from exc
    return {"device": device, "token": token}


def revoke_device(log: CustodyLog, db: Database, device: str) -> dict[str, str | int]:
    """Revoke a device: its token stops working and the log records when."""
    now = log.clock()
    with db.read() as conn:
        row = conn.execute(sa.select(devices).where(devices.c.id == device)).first()
    if row is None:
        raise NotFound(f"no device {device}")
    if row.revoked_at is not None:
        raise Conflict(f"device {device} is already revoked (entry {row.revoked_entry})")

    def record(conn: Connection, indexes: list[int]) -> None:
        updated = conn.execute(
            devices.update()
            .where(devices.c.id == device, devices.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_entry=indexes[0])
        )
        if updated.rowcount != 1:
            raise Conflict(f"device {device} was revoked meanwhile")

    index = log.append_sync([DeviceRevoked(time=format_time(now), device=device)], record=record)[0]
    return {"device": device, "revoked_entry": index}


def device_for_token(conn: Connection, token: str) -> Device | None:
    """The device holding bearer `token`, revoked or not; None for an unknown token."""
    digest = token_hash(token)
    row = conn.execute(_DEVICE_BY_TOKEN, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return None
    return Device(row.id, row.name, row.vkey, row.revoked_at is not None)


def get_device(conn: Connection, device: str) -> Device | None:
    row = conn.execute(sa.select(devices).where(devices.c.id == device)).first()
    if row is None:
        return None
    return Device(row.id, row.name, row.vkey, row.revoked_at is not None)
