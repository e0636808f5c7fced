"""Cases: an opaque random id, which is all the custody log ever sees of a case,
and the council's own reference, which stays in the database.
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from evidence.cases.tables import cases
from evidence.db import Database
from evidence.errors import Conflict, NotFound
from evidence.text import check_label

MAX_REFERENCE_LENGTH = 200
CASE_ID_BYTES = 16


def add_case(db: Database, reference: str, *, now: dt.datetime) -> dict[str, str]:
    """Create a case for the council's `reference`; its id is opaque and random."""
    reference = check_label(reference, "a case reference", MAX_REFERENCE_LENGTH)
    case_id = secrets.token_hex(CASE_ID_BYTES)
    try:
        with db.write() as conn:
            conn.execute(cases.insert().values(id=case_id, reference=reference, created_at=now))
    except DbIntegrityError as exc:
        raise Conflict(f"a case with reference {reference!r} already exists") from exc
    return {"case": case_id, "reference": reference}


def case_exists(conn: Connection, case_id: str) -> bool:
    return conn.execute(sa.select(cases.c.id).where(cases.c.id == case_id)).first() is not None


def require_case(conn: Connection, case_id: str) -> None:
    """`NotFound` unless the case exists."""
    if not case_exists(conn, case_id):
        raise NotFound(f"no case {case_id}")
