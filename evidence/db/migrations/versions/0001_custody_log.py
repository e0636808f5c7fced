"""The custody log: state row, entries, subtree hashes, checkpoints.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "log_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary, nullable=True),
        sa.Column("origin", sa.Text, nullable=True),
        sa.Column("vkey", sa.Text, nullable=True),
    )
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "log_nodes",
        # node = level << 56 | idx: the perfect subtree of 2**level leaves from idx << level
        sa.Column("node", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "size": 0, "root": None, "origin": None, "vkey": None}])


def downgrade() -> None:
    for table in ("log_checkpoints", "log_nodes", "log_entries", "log_state"):
        op.drop_table(table)
