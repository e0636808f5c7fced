"""The shared `postgres_url` fixture: skips without PostgreSQL, fails when CI requires it."""

from __future__ import annotations

import pytest
from testdb import fresh_postgres_database

UNREACHABLE = "postgresql://nobody:hunter2@127.0.0.1:1/none"


def test_without_a_postgres_url_the_test_is_skipped_saying_why() -> None:
    with pytest.raises(pytest.skip.Exception, match="EVIDENCE_TEST_POSTGRES_URL is not set"):
        fresh_postgres_database({}).__enter__()


def test_an_unreachable_server_skips_without_showing_the_password() -> None:
    with pytest.raises(pytest.skip.Exception) as info:
        fresh_postgres_database({"EVIDENCE_TEST_POSTGRES_URL": UNREACHABLE}).__enter__()
    assert "cannot connect to postgresql://nobody:***@127.0.0.1:1/none" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("url", [None, UNREACHABLE], ids=["unset", "unreachable"])
def test_when_postgres_is_required_its_absence_fails_the_test(url: str | None) -> None:
    environ = {"EVIDENCE_TEST_REQUIRE_POSTGRES": "1"}
    if url is not None:
        environ["EVIDENCE_TEST_POSTGRES_URL"] = url
    with pytest.raises(pytest.fail.Exception, match="EVIDENCE_TEST_REQUIRE_POSTGRES=1 but"):
        fresh_postgres_database(environ).__enter__()


@pytest.mark.postgres
def test_each_database_is_fresh_and_dropped_afterwards(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
    with fresh_postgres_database() as other:
        assert other != postgres_url
        psycopg.connect(other).close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(other, connect_timeout=10)
