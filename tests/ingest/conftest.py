"""Fixtures of the ingest tests: the real app on each database, on each object store.

``settings`` names SQLite (the data dir's default) or a fresh PostgreSQL
database (``each_database`` in tests/conftest.py): every in-process tus test
runs on both, the production database included.
``client`` runs each in-process tus test on each store: on the local store (the
embedded default, under ``<data dir>/objects``) and on the S3 store over real
HTTP to moto's S3 server (tests/motoserver.py), in a fresh bucket with object
lock enabled, injected with ``create_app(settings, store=...)``. ``objects``
lists what the current store holds, whichever it is; on S3, every original
left in the bucket is checked after the test: under its content address and
locked in compliance mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ingesthelpers import Kit, enrolled
from motoserver import (
    admin_client,
    assert_locked,
    bucket_contents,
    new_bucket,
    shared_moto,
    use_fake_aws_credentials,
)

from evidence.app import create_app
from evidence.settings import Settings
from evidence.storage import S3_MIN_PART_SIZE, content_key
from evidence.storage.s3 import S3Store
from evidence.web.keys import DB, INGEST, LOG

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# moto enforces S3's minimum part size (every part but the last), like S3 itself.
S3_PART = S3_MIN_PART_SIZE
ORIGINALS = "originals/"


def make_settings(data_dir: Path, **env: str) -> Settings:
    environ = {"EVIDENCE_DATA_DIR": str(data_dir), "EVIDENCE_LOG_FORMAT": "json"}
    environ.update({f"EVIDENCE_{name.upper()}": value for name, value in env.items()})
    return Settings.load(environ, stderr_is_tty=False)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with shared_moto() as url:
        yield url


@pytest.fixture(scope="session")
def s3_admin(moto_url: str) -> Iterator[S3Client]:
    """A plain boto3 client on the moto server, for looking behind the store."""
    client = admin_client(moto_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 finds fake credentials in the environment and nothing from ~/.aws."""
    use_fake_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture
def settings(tmp_path: Path, each_database: dict[str, str]) -> Settings:
    """A fresh service's settings: on SQLite, and on a fresh PostgreSQL database."""
    return make_settings(tmp_path / "data", **each_database)


@dataclass
class Bucket:
    """The S3 bucket behind the app under test (None for the local store)."""

    s3: S3Client
    name: str


@pytest.fixture(params=["local", "s3", "s3-no-saved-hash"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store under test. ``s3-no-saved-hash``: as where OpenSSL cannot be loaded
    (evidence.ingest.hashing): uploads staged under staging/, hashes kept in memory."""
    kind: str = request.param
    return kind


@pytest.fixture
def bucket(store_kind: str, request: pytest.FixtureRequest) -> Bucket | None:
    if not store_kind.startswith("s3"):
        return None
    s3: S3Client = request.getfixturevalue("s3_admin")
    return Bucket(s3, new_bucket(s3, lock=True))


@pytest.fixture
async def client(
    aiohttp_client: Any,
    settings: Settings,
    bucket: Bucket | None,
    store_kind: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Any]:
    if bucket is None:
        yield await aiohttp_client(create_app(settings))
        return
    moto_url: str = request.getfixturevalue("moto_url")
    store = S3Store(bucket.name, moto_url, part_size=S3_PART)
    try:
        client = await aiohttp_client(create_app(settings, store=store))
        client.app[INGEST].resumable = store_kind != "s3-no-saved-hash"
        yield client
        check_originals(bucket.s3, bucket.name)
    finally:
        store.close()


@pytest.fixture
async def kit(client: Any) -> Kit:
    return enrolled(client.app[LOG], client.app[DB])


@pytest.fixture
def objects(settings: Settings, bucket: Bucket | None) -> Callable[[], list[str]]:
    """A function listing everything the store under test holds, staging included.

    Local store: every file under ``<data dir>/objects``, as a path relative to
    it. S3: every version of every key, every delete marker and every multipart
    upload in progress, named by its key (with what it is, unless an object).
    """
    if bucket is None:
        root = settings.data_dir / "objects"
        return lambda: sorted(
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
        )
    return lambda: bucket_contents(bucket.s3, bucket.name)


def check_originals(s3: S3Client, bucket: str) -> None:
    """Every original in `bucket` is under its content address, locked in compliance mode."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=ORIGINALS)
    for entry in listing.get("Contents", []):
        key = entry.get("Key", "")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            digest = hashlib.sha256(body.read()).hexdigest()
        finally:
            body.close()
        assert key == content_key("originals", digest)
        assert_locked(s3, bucket, key)
