"""Fixtures of the ingest tests: the real app on SQLite and the local object store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ingesthelpers import Kit, enrolled

from evidence.app import DB, LOG, create_app
from evidence.settings import Settings


def make_settings(data_dir: Path, **env: str) -> Settings:
    environ = {"EVIDENCE_DATA_DIR": str(data_dir), "EVIDENCE_LOG_FORMAT": "json"}
    environ.update({f"EVIDENCE_{name.upper()}": value for name, value in env.items()})
    return Settings.load(environ, stderr_is_tty=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def kit(client: Any) -> Kit:
    return enrolled(client.app[LOG], client.app[DB])
