"""People: users and roles, assignments, API tokens, web sessions, login throttling.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("role", sa.Text, primary_key=True),
    )
    op.create_table(
        "case_assignments",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True, index=True),
    )
    op.create_table(
        "device_assignments",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False, index=True),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.LargeBinary, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.LargeBinary, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False, index=True),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "login_failures",
        "web_sessions",
        "api_tokens",
        "device_assignments",
        "case_assignments",
        "user_roles",
        "users",
    ):
        op.drop_table(table)
