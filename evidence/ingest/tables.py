"""Uploads in progress (tus) and their staged parts.

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, Table, Text

from evidence.db.metadata import metadata

# tus uploads in progress (and finished, for their receipts). Everything an
# upload needs is here or in the object store: any server can resume it.
uploads = Table(
    "uploads",
    metadata,
    Column("id", Text, primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("manifest", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False),  # bytes durable: parts + tail
    # JSON list of the store's part receipts, in rows from before migration 0005;
    # since then "[]", and the receipts are rows of `upload_parts`.
    Column("parts", Text, nullable=False),
    Column("tail", LargeBinary, nullable=False),  # bytes after the last whole part
    Column("stage_handle", Text, nullable=False),
    # JSON: the SHA-256 state (and content check state) over the staged parts,
    # so that any process can resume the hash (evidence.ingest.hashing); null
    # where the hash cannot be saved (then kept in the receiving process only).
    Column("stream_state", Text, nullable=True),
    # The manifest's SHA-256 (null in rows from before migration 0005).
    Column("sha256", Text, nullable=True),
    Column("writer", Text, nullable=True),  # fencing token of the request now writing
    Column("state", Text, nullable=False),  # receiving | complete
    Column("entry", BigInteger, nullable=True),  # the item's item.ingested, once complete
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("uploads_sha256", "sha256"),
)

# The store's receipt for each staged part of an upload in progress, one row per
# part, written as each part is recorded (migration 0005).
upload_parts = Table(
    "upload_parts",
    metadata,
    Column("upload_id", Text, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("receipt", Text, nullable=False),
)
