"""Enrolled devices, and which worker carries each.

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, Table, Text

from evidence.db.metadata import metadata

# Enrolled devices. The bearer token is stored only as its SHA-256 (it is 256
# random bits: a slow hash adds nothing). `last_seq`/`last_manifest` follow the
# device's manifest chain to spot gaps.
devices = Table(
    "devices",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("vkey", Text, nullable=False, unique=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("enrolled_entry", BigInteger, nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_entry", BigInteger, nullable=True),
)

device_assignments = Table(
    "device_assignments",
    metadata,
    Column("device_id", Text, primary_key=True),  # one worker per device
    Column("user_id", Text, nullable=False, index=True),
)
