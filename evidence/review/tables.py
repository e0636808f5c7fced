"""The job queue of review copies (ingest queues a job; workers take it).

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, Table, Text

from evidence.db.metadata import metadata

# Work for the transcoding workers (issue 5); ingest only queues it.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
