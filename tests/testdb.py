"""Fresh PostgreSQL databases for tests (used by the `postgres_url` fixture in conftest.py).

The server comes from ``EVIDENCE_TEST_POSTGRES_URL``. Without it, or when the
server cannot be reached, the test is skipped with a message saying so, unless
``EVIDENCE_TEST_REQUIRE_POSTGRES=1`` (as in CI): then it fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from evidence.settings import redact_url

POSTGRES_URL_ENV = "EVIDENCE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "EVIDENCE_TEST_REQUIRE_POSTGRES"
CONNECT_TIMEOUT_SECONDS = 10


def _unavailable(environ: Mapping[str, str], reason: str) -> NoReturn:
    if environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL test skipped: {reason}")


@contextlib.contextmanager
def fresh_postgres_database(environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """Create a uniquely named empty database, yield its plain URL, drop it afterwards."""
    env = os.environ if environ is None else environ
    base = env.get(POSTGRES_URL_ENV)
    if not base:
        _unavailable(
            env, f"{POSTGRES_URL_ENV} is not set (set it to postgresql://user@host:port/db to run)"
        )
    import psycopg
    from psycopg import sql

    name = f"evidence_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as exc:
        _unavailable(env, f"cannot connect to {redact_url(base)}: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
