"""Fixtures for the custody log tests: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from appfixtures import backend_settings, client, restore_logging, settings
from loghelpers import ORIGIN, SEED, FixedClock

from evidence.chain import note
from evidence.db import Database
from evidence.log.custody import CustodyLog


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'evidence.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.connect(db_url)
    yield database
    database.close()


@pytest.fixture
def signer() -> note.Signer:
    return note.new_signer(ORIGIN, SEED)


@pytest.fixture
def custody(db: Database, signer: note.Signer) -> CustodyLog:
    return CustodyLog.open(db, signer, clock=FixedClock())


# The application's fixtures, for the tests of the /log/ routes and the monitor.
__all__ = [
    "backend_settings",
    "client",
    "custody",
    "db",
    "db_url",
    "restore_logging",
    "settings",
    "signer",
]
