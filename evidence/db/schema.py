"""Tables of the custody log (SQLAlchemy Core). Changes go through Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

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

# -- ingest (migration 0002) ---------------------------------------------------

# Cases: an opaque id in the log, the council's reference only here.
cases = Table(
    "cases",
    metadata,
    Column("id", Text, primary_key=True),
    Column("reference", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Enrolled devices. The bearer token is stored only as its SHA-256 (it is 256
# random bits: a slow hash adds nothing). `last_seq`/`last_manifest` follow the
# device's manifest chain to spot gaps.
devices = Table(
    "devices",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("vkey", Text, nullable=False, unique=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("enrolled_entry", BigInteger, nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_entry", BigInteger, nullable=True),
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

# -- people (migration 0003) -------------------------------------------------------

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

device_assignments = Table(
    "device_assignments",
    metadata,
    Column("device_id", Text, primary_key=True),  # one worker per device
    Column("user_id", Text, nullable=False, index=True),
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

# -- viewings (migration 0004) -----------------------------------------------------

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
