"""moto's S3 server over real HTTP, shared by the test directories (importable from tests/).

The server runs in a child process, so that its memory and its threads are not
the test's: it prints its port and serves until its stdin closes. One server is
shared by every directory's session-scoped ``moto_url`` fixture (`shared_moto`
counts its users and stops it after the last); every test makes its own bucket.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from evidence.storage.s3 import DEFAULT_RETENTION_DAYS

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

FAKE_KEY_ID = "testing-key-id"
FAKE_SECRET = "testing-secret"
REGION = "us-east-1"
STARTUP_TIMEOUT_SECONDS = 60  # importing moto on a slow CI machine
STOP_TIMEOUT_SECONDS = 10

MOTO_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


def start_moto() -> tuple[subprocess.Popen[str], str]:
    """Start moto's S3 server in a child process; the process and the server's URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_SECONDS)
    port = process.stdout.readline().strip() if ready else ""
    if not port.isdigit():
        process.kill()
        process.wait()
        raise RuntimeError("moto server did not start")
    return process, f"http://127.0.0.1:{port}"


def stop_moto(process: subprocess.Popen[str]) -> None:
    """Stop a server from `start_moto` (closing its stdin), killing it if it lingers."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


_shared_lock = threading.Lock()
_shared: tuple[subprocess.Popen[str], str] | None = None
_shared_users = 0


@contextlib.contextmanager
def shared_moto() -> Iterator[str]:
    """The URL of the one moto server of this test run, started on first use.

    For session-scoped fixtures in several conftest files: they all get the
    same server, stopped when the last of them is torn down.
    """
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None:
            _shared = start_moto()
        _shared_users += 1
        url = _shared[1]
    try:
        yield url
    finally:
        with _shared_lock:
            _shared_users -= 1
            if _shared_users == 0 and _shared is not None:
                stop_moto(_shared[0])
                _shared = None


def admin_client(url: str) -> S3Client:
    """A plain boto3 client on the moto server, for setting up and looking behind a store."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
        # moto answers a GET of an object assembled from parts with the composite
        # checksum (SHA-256 of the parts' digests) but without S3's "-<parts>"
        # suffix, which botocore then takes for the whole object's and rejects.
        # The tests hash what they read themselves.
        config=Config(response_checksum_validation="when_required"),
    )


def new_bucket(s3: S3Client, *, lock: bool) -> str:
    """A fresh, empty bucket on the moto server, with object lock enabled or not."""
    name = f"evidence-test-{uuid.uuid4().hex[:16]}"
    if lock:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
    return name


def aws_environment(tmp_path: Path) -> dict[str, str]:
    """The ``AWS_*`` variables that give boto3 the fake credentials and nothing from ~/.aws."""
    return {
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def use_fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Replace every ``AWS_*`` variable of this process by `aws_environment` (undone after)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in aws_environment(tmp_path).items():
        monkeypatch.setenv(name, value)


def bucket_contents(s3: S3Client, bucket: str) -> list[str]:
    """Every version, delete marker and multipart upload in `bucket`, by key, sorted."""
    found: list[str] = []
    for versions in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found += [v.get("Key", "") for v in versions.get("Versions", [])]
        found += [f"{m.get('Key', '')} (delete marker)" for m in versions.get("DeleteMarkers", [])]
    for uploads in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        found += [f"{u.get('Key', '')} (multipart upload)" for u in uploads.get("Uploads", [])]
    return sorted(found)


def assert_locked(s3: S3Client, bucket: str, key: str) -> None:
    """`key` is under object lock in COMPLIANCE mode for the store's default retention."""
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head.get("ObjectLockMode") == "COMPLIANCE", (key, head.get("ObjectLockMode"))
    until = head.get("ObjectLockRetainUntilDate")
    assert until is not None
    expected = datetime.now(UTC) + timedelta(days=DEFAULT_RETENTION_DAYS)
    assert abs(until - expected) < timedelta(hours=1), until
