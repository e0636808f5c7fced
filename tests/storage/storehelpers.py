"""Helpers for the object store tests: a backend under test, test data.

The moto server, its fake credentials and bucket creation live in tests/motoserver.py
(shared with tests/ingest); the names tests import from here are re-exported.
"""

from __future__ import annotations

import hashlib
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from motoserver import FAKE_KEY_ID, FAKE_SECRET, new_bucket

from evidence.storage import S3_MIN_PART_SIZE, StagingStore, content_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = [
    "FAKE_KEY_ID",
    "FAKE_SECRET",
    "PART",
    "Backend",
    "blob",
    "closed_port",
    "derived_key",
    "new_bucket",
    "original_key",
    "read_all",
    "sha",
    "split",
    "stage",
    "upload_id",
]

# Every contract test uses S3's smallest part size, which moto enforces like S3.
PART = S3_MIN_PART_SIZE


def closed_port() -> int:
    """A local TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def original_key(data: bytes) -> str:
    return content_key("originals", sha(data))


def derived_key(data: bytes) -> str:
    return content_key("derived", sha(data))


def upload_id(n: int) -> str:
    return f"{n:032x}"


def split(data: bytes, part_size: int = PART) -> list[bytes]:
    return [data[i : i + part_size] for i in range(0, len(data), part_size)]


def stage(
    store: StagingStore, uid: str, data: bytes, order: Iterable[int] | None = None
) -> tuple[str, list[str]]:
    """Stage `data` as upload `uid` (parts in `order`), complete it; (handle, receipts)."""
    handle = store.stage_begin(uid)
    parts = split(data, store.part_size)
    receipts = [""] * len(parts)
    for number in range(len(parts)) if order is None else order:
        receipts[number] = store.stage_part(uid, handle, number, parts[number])
    store.stage_complete(uid, handle, receipts, len(data))
    return handle, receipts


def read_all(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


@dataclass
class Backend:
    """A store under test, with ways to look behind it that the port does not offer."""

    name: str
    store: StagingStore
    copies: Callable[[str], int]  # stored copies of a key (S3: versions and delete markers)
    plant: Callable[[str, bytes], None]  # write bytes at a key, bypassing every check
    s3: S3Client | None = None
    bucket: str | None = None
