"""Fixtures shared by every test directory.

``postgres_url``: a fresh, empty PostgreSQL database for one test, as a plain
``postgresql://user@host:port/<new database>`` URL; the database is created on
the server named by ``EVIDENCE_TEST_POSTGRES_URL`` and dropped afterwards.
Without that variable (or with the server unreachable) the test is skipped
with a message saying so; with ``EVIDENCE_TEST_REQUIRE_POSTGRES=1`` (as in CI)
it fails instead. See tests/testdb.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testdb import fresh_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (see the module docstring)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def each_database(request: pytest.FixtureRequest) -> dict[str, str]:
    """Run the test on SQLite (the data dir's default) and on a fresh PostgreSQL database.

    The value is the settings override for the database: nothing, or its URL.
    """
    if request.param == "sqlite":
        return {}
    url: str = request.getfixturevalue("postgres_url")
    return {"database_url": url}
