"""Helpers for the object store tests: a backend under test, test data, the moto server."""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evidence.storage import S3_MIN_PART_SIZE, ObjectStore, content_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

FAKE_KEY_ID = "testing-key-id"
FAKE_SECRET = "testing-secret"

# Every contract test uses S3's smallest part size, which moto enforces like S3.
PART = S3_MIN_PART_SIZE

# moto's S3 server in a child process, so that its memory and its threads are
# not the test's: prints its port, serves until its stdin closes.
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
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        process.kill()
        raise RuntimeError("moto server did not start")
    return process, f"http://127.0.0.1:{port}"


def stop_moto(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


def closed_port() -> int:
    """A local TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def new_bucket(s3: S3Client, *, lock: bool) -> str:
    """A fresh, empty bucket on the moto server, with object lock enabled or not."""
    name = f"evidence-test-{uuid.uuid4().hex[:16]}"
    if lock:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
    return name


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
    store: ObjectStore, uid: str, data: bytes, order: Iterable[int] | None = None
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
    store: ObjectStore
    copies: Callable[[str], int]  # stored copies of a key (S3: versions and delete markers)
    plant: Callable[[str, bytes], None]  # write bytes at a key, bypassing every check
    s3: S3Client | None = None
    bucket: str | None = None
