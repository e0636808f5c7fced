"""The database port: SQLite (WAL) by default, PostgreSQL for many processes.

`Database.connect` takes the plain URLs of the settings (``sqlite:///path`` or
``postgresql://user@host:port/db``), brings the schema up to date with Alembic
(serialised between processes) and hands out connections:

* `read()` for a consistent snapshot (a deferred transaction on SQLite);
* `write()` for a transaction that takes the write lock at once
  (``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL the log locks its state row).

Commits are durable when they return: SQLite runs with ``synchronous=FULL``,
PostgreSQL with its default ``synchronous_commit``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from evidence.errors import ConfigError, StorageUnavailable
from evidence.settings import Settings

_log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises
# migrations between server processes starting together.
MIGRATION_LOCK_ID = 0x65766964656E6365  # "evidence"
SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another process's write


def engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL (driver included) for a plain database URL of the settings."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not a URL") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("an SQLite database URL needs a file path: sqlite:///path")
        return parsed
    raise ConfigError(f"database URL must be sqlite:///path or postgresql://..., not {url!r}")


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Take transaction control from the sqlite3 module, so that `begin` below
    # decides between a deferred and an immediate transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: the others may wait
    mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode is None or mode[0].lower() != "wal":
        raise StorageUnavailable(f"SQLite refused WAL mode (journal_mode is {mode})")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("evidence_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name  # "sqlite" or "postgresql"

    @classmethod
    def connect(cls, url: str, *, migrate: bool = True) -> Database:
        parsed = engine_url(url)
        # hide_parameters: a failed statement's message never carries entry bytes or tokens.
        if parsed.drivername == "sqlite":
            engine = sa.create_engine(parsed, hide_parameters=True)
            sa.event.listen(engine, "connect", _on_sqlite_connect)
            sa.event.listen(engine, "begin", _on_sqlite_begin)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        db = cls(engine)
        if migrate:
            db.migrate()
        return db

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe with several processes starting."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction that sees one snapshot of the database throughout.

        SQLite's deferred transaction in WAL mode is a snapshot; PostgreSQL needs
        REPEATABLE READ for that (its default, READ COMMITTED, sees each
        statement's own moment, which made a long `fsck` chase a growing log).
        """
        options: dict[str, Any] = {}
        if self.dialect == "postgresql":
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        with (
            _unavailable_as_error(),
            self.engine.connect().execution_options(**options) as conn,
            conn.begin(),
        ):
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with (
            _unavailable_as_error(),
            self.engine.connect().execution_options(evidence_write=True) as conn,
            conn.begin(),
        ):
            yield conn

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def _unavailable_as_error() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        # The driver's text names hosts, ports and users: it goes to the server's
        # log, never into the error a client sees.
        _log.warning("db.unavailable", error=str(exc.orig))
        raise StorageUnavailable("the database is unavailable; retry later") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            _log.warning("db.connection_lost", error=str(exc.orig))
            raise StorageUnavailable("the database connection was lost; retry later") from exc
        raise


def open_database(settings: Settings) -> Database:
    """The database the settings name (its SQLite file's folder made, 0700, if need be)."""
    sqlite_path = settings.sqlite_path
    if sqlite_path is not None:
        sqlite_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Database.connect(settings.database_url)
