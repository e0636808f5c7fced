"""Uploads keep the saved state of their SHA-256 (and content check) with each staged part,
the SHA-256 their manifest names (to find the uploads headed for one content address),
and their part receipts one row each (`upload_parts`; the JSON list in `uploads.parts`
was rewritten whole with every part: quadratic in the parts of a long recording).

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
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.Text, primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("receipt", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_parts")
    op.drop_index("uploads_sha256", "uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("sha256")
        batch.drop_column("stream_state")
