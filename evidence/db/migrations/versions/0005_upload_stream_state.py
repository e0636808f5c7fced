"""Uploads keep the saved state of their SHA-256 (and content check) with each staged part,
and the SHA-256 their manifest names (to find the uploads headed for one content address).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("stream_state", sa.Text, nullable=True))
        batch.add_column(sa.Column("sha256", sa.Text, nullable=True))
    op.create_index("uploads_sha256", "uploads", ["sha256"])


def downgrade() -> None:
    op.drop_index("uploads_sha256", "uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("sha256")
        batch.drop_column("stream_state")
