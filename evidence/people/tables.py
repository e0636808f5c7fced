"""People, their roles and case assignments, API tokens, web sessions, login throttling.

SQLAlchemy Core; every change goes through an Alembic migration (evidence/db/migrations).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, LargeBinary, Table, Text

from evidence.db.metadata import metadata

# People who use the service. Their names stay here; the log knows them by id.
users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=True),  # argon2id; None: no password login
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("role", Text, primary_key=True),
)

# Who works on, supervises or reviews which case; which worker carries which device.
case_assignments = Table(
    "case_assignments",
    metadata,
    Column("case_id", Text, primary_key=True),
    Column("user_id", Text, primary_key=True, index=True),
)

# API bearer tokens, stored as SHA-256 (they are 256 random bits).
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("user_id", Text, nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Web sessions: the cookie holds a random id; only its SHA-256 is stored.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", LargeBinary, primary_key=True),
    Column("user_id", Text, nullable=False, index=True),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Failed logins per account and per address, for throttling (shared by every server).
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", Text, primary_key=True),  # "user:<name>" or "addr:<address>"
    Column("count", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
)
