"""Viewings: each person's last logged access to each item.

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Table, Text

from evidence.db.metadata import metadata

# Each person's last *logged* access to each item: when, which entry, and how
# ("view" or "download"). A range request that continues a viewing within the
# window of `evidence.cases.routes.VIEWING_WINDOW` is not logged again; this row
# is what says so, kept here so that every server process agrees. Written only
# in the transaction that appends the `item.accessed` entry it names.
item_viewings = Table(
    "item_viewings",
    metadata,
    Column("item_id", Text, primary_key=True),
    Column("actor_id", Text, primary_key=True),
    Column("action", Text, nullable=False),
    Column("entry", BigInteger, nullable=False),
    Column("accessed_at", DateTime(timezone=True), nullable=False),
)
