"""Cases and their items' metadata.

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, Table, Text

from evidence.db.metadata import metadata

# Cases: an opaque id in the log, the council's reference only here.
cases = Table(
    "cases",
    metadata,
    Column("id", Text, primary_key=True),
    Column("reference", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Items: one per signed capture manifest. `last_entry` is the index of the
# item's latest custody entry (the `prev` of its next one). `chain` records
# what the device's seq/prev chain looked like when the item arrived.
items = Table(
    "items",
    metadata,
    Column("id", Text, primary_key=True),  # SHA-256 of the manifest bytes
    Column("case_id", Text, nullable=False, index=True),
    Column("device_id", Text, nullable=False, index=True),
    Column("seq", BigInteger, nullable=False),
    Column("prev", Text, nullable=True),
    Column("kind", Text, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("captured_at", Text, nullable=False),
    Column("manifest", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("object_key", Text, nullable=False),
    Column("ingested_entry", BigInteger, nullable=False),
    Column("last_entry", BigInteger, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    Column("chain", Text, nullable=False),  # JSON list of findings; [] when in order
)
