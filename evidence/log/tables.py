"""The custody log's tables: its state row, entries, subtree hashes and signed checkpoints.

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, Table, Text

from evidence.db.metadata import metadata

# The one row that sequences appends: every append locks it (row lock on
# PostgreSQL, BEGIN IMMEDIATE on SQLite), so many writers make one log.
log_state = Table(
    "log_state",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=True),  # root of the last signed checkpoint
    Column("origin", Text, nullable=True),  # set with the log's first entry
    Column("vkey", Text, nullable=True),
)

# Entries exactly as appended: the bytes a verifier hashes.
log_entries = Table(
    "log_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# Hashes of perfect subtrees: level 0 are the leaf hashes, and (level, idx)
# covers leaves [idx << level, (idx + 1) << level). About two per entry; any
# root or proof needs O(log n) of them. One integer key, `node_key(level,
# idx)`, so that a proof's hashes come from one primary-key lookup each.
NODE_LEVEL_SHIFT = 56  # idx < 2**56 leaves; level < 2**7


def node_key(level: int, idx: int) -> int:
    return (level << NODE_LEVEL_SHIFT) | idx


log_nodes = Table(
    "log_nodes",
    metadata,
    Column("node", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

# Every checkpoint the log signed, verbatim.
log_checkpoints = Table(
    "log_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
)
