"""Fixtures of the application tests (imported by the conftest.py of tests/app, tests/log
and tests/cli): the real app factory on a real database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from apphelpers import make_settings

from evidence.app import create_app
from evidence.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a fresh service on SQLite under tmp_path."""
    return make_settings(tmp_path / "data")


@pytest.fixture
def backend_settings(tmp_path: Path, each_database: dict[str, str]) -> Settings:
    """Settings of a fresh service, once on SQLite and once on a fresh PostgreSQL database."""
    return make_settings(tmp_path / "data", **each_database)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    """A test client of the real app on SQLite."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put logging back as it was after a test that calls `configure_logging`."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("aiohttp.access", "alembic")}
    yield
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
