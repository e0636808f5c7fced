"""Fixtures of the tests of people's access (imported by the conftest.py of tests/people,
tests/cases, tests/content and tests/web): the real app, people of every role, cases,
uploaded items.

Two kinds of fixture, for speed (argon2id makes each person cost 0.1 s):

* ``shared``: ONE app and `World` per test module, on SQLite, for tests that
  only read or whose effects do not matter to each other (the authorisation
  table, range edge cases). A module using it runs its tests in the module's
  event loop: mark them ``@pytest.mark.asyncio(loop_scope="module")``.
* ``client`` (the real app through ``aiohttp_client``) and ``world``: fresh
  for each test, on SQLite and on PostgreSQL (``postgres_url``: skipped with a
  message when there is none), for tests that count entries.

Items are uploaded through the real tus path with the device kit (ingesthelpers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from accesshelpers import Shared, World, build_world, make_settings
from aiohttp.test_utils import TestClient, TestServer

from evidence.app import create_app
from evidence.settings import Settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    """One app on SQLite and one `World` for the whole module (see the module docstring)."""
    settings = make_settings(tmp_path_factory.mktemp("access") / "data")
    async with TestClient(TestServer(create_app(settings))) as client:
        yield Shared(client, await build_world(client))


@pytest.fixture
def settings(tmp_path: Path, each_database: dict[str, str]) -> Settings:
    """A fresh service's settings: on SQLite, and on a fresh PostgreSQL database."""
    return make_settings(tmp_path / "data", **each_database)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    """A test client of the real app (on each database)."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def world(client: Any) -> World:
    """A reviewer, a supervisor and a disclosure officer on the first case, and its item."""
    return await build_world(client, ("reviewer", "supervisor", "disclosure"), extras=False)
