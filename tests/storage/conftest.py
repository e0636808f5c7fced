"""Fixtures for the object store tests.

``backend`` runs each contract test three times: on the local store, on the S3
store with a plain bucket, and on the S3 store with an object-lock bucket. The
S3 store talks over real HTTP to moto's S3 server, started once per session in
a child process (tests/motoserver.py, shared with tests/ingest); every test gets
a fresh bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from motoserver import admin_client, new_bucket, shared_moto, use_fake_aws_credentials
from storehelpers import PART, Backend

from evidence.storage.local import LocalStore
from evidence.storage.s3 import S3Store

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with shared_moto() as url:
        yield url


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 finds fake credentials in the environment and nothing from ~/.aws."""
    use_fake_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def s3_admin(moto_url: str) -> Iterator[S3Client]:
    """A plain boto3 client on the moto server, for setting up and looking behind the store."""
    client = admin_client(moto_url)
    yield client
    client.close()


def s3_backend(name: str, s3: S3Client, moto_url: str, *, lock: bool) -> Backend:
    bucket = new_bucket(s3, lock=lock)
    store = S3Store(bucket, moto_url, part_size=PART)

    def copies(key: str) -> int:
        listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
        entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
        return sum(1 for entry in entries if entry.get("Key") == key)

    def plant(key: str, data: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    return Backend(name, store, copies, plant, s3=s3, bucket=bucket)


def local_backend(root: Path) -> Backend:
    store = LocalStore(root, part_size=PART)

    def copies(key: str) -> int:
        try:
            return (root / key).stat().st_nlink
        except FileNotFoundError:
            return 0

    def plant(key: str, data: bytes) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)

    return Backend("local", store, copies, plant)


@pytest.fixture(params=["local", "s3", "s3-locked"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        made = local_backend(tmp_path / "objects")
    else:
        s3: S3Client = request.getfixturevalue("s3_admin")
        url: str = request.getfixturevalue("moto_url")
        made = s3_backend(request.param, s3, url, lock=request.param == "s3-locked")
    yield made
    made.store.close()


@pytest.fixture
def locked(s3_admin: S3Client, moto_url: str) -> Iterator[Backend]:
    """An S3 store on a bucket with object lock enabled."""
    made = s3_backend("s3-locked", s3_admin, moto_url, lock=True)
    yield made
    made.store.close()


@pytest.fixture
def plain(s3_admin: S3Client, moto_url: str) -> Iterator[Backend]:
    """An S3 store on a bucket without object lock."""
    made = s3_backend("s3", s3_admin, moto_url, lock=False)
    yield made
    made.store.close()
