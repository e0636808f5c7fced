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
