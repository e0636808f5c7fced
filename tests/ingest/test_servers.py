"""Uploads against real `evidence serve` processes on S3 (moto over HTTP), PostgreSQL or SQLite.

Every server here is a deployment as DESIGN.md has it for many machines: its
own data directory, the shared database (PostgreSQL; or one SQLite file that
the processes of one machine share) and log key, the shared bucket (with
object lock). The test opens the same database and log itself, to enrol
devices and create cases as the admin commands would, and to look at what the
servers recorded. Plain HTTP with the tus headers, as any device would send.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import string
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from ingesthelpers import OFFSET_STREAM, TUS, Kit, create, enrolled, metadata, patch
from motoserver import assert_locked, aws_environment, bucket_contents, new_bucket
from serverproc import RunningServer, command, free_port, running
from tcpproxy import TcpProxy

from evidence.app import create_app
from evidence.cases.tables import items
from evidence.chain.manifest import item_id
from evidence.chain.receipt import VerifiedReceipt, verify_receipt
from evidence.db import Database
from evidence.devices.registry import revoke_device
from evidence.ingest.tables import upload_parts, uploads
from evidence.log.custody import CustodyLog
from evidence.log.fsck import fsck as run_fsck
from evidence.log.keys import load_or_create_log_signer
from evidence.settings import Settings
from evidence.storage import DEFAULT_PART_SIZE, content_key
from evidence.web.keys import DB, LOG

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MIB = 1 << 20
SERVER_PART = DEFAULT_PART_SIZE  # what `evidence serve` stages S3 uploads in
HTTP_TIMEOUT_SECONDS = 60  # every request, including a 20 MiB PATCH through a proxy
CLI_TIMEOUT_SECONDS = 120
# Printable ASCII and newlines: text/plain that passes the UTF-8 content probe.
TEXT_ALPHABET = (string.ascii_letters + string.digits + " .,;:-\n").encode()
TEXT_TABLE = bytes(TEXT_ALPHABET[i % len(TEXT_ALPHABET)] for i in range(256))


def text_document(size: int, seed: int) -> bytes:
    """`size` bytes of deterministic ASCII text."""
    return random.Random(seed).randbytes(size).translate(TEXT_TABLE)


# -- plain HTTP -------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> Reply:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=HTTP_TIMEOUT_SECONDS)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def tus_create(base: str, kit: Kit, manifest: bytes, signature: bytes, size: int) -> Reply:
    headers = {
        **TUS,
        **kit.auth,
        "Upload-Length": str(size),
        "Upload-Metadata": metadata(manifest, signature),
    }
    return call(base, "POST", "/api/v1/uploads", headers)


def tus_head(base: str, kit: Kit, location: str) -> Reply:
    return call(base, "HEAD", location, {**TUS, **kit.auth})


def tus_patch(base: str, kit: Kit, location: str, offset: int, data: bytes) -> Reply:
    headers = {
        **TUS,
        **kit.auth,
        "Upload-Offset": str(offset),
        "Content-Type": OFFSET_STREAM,
    }
    return call(base, "PATCH", location, headers, data)


def receipt_from(server: RunningServer, kit: Kit, location: str) -> VerifiedReceipt:
    """The upload's receipt from `server`, verified with the key the server publishes."""
    reply = call(server.url, "GET", location + "/receipt", kit.auth)
    assert reply.status == 200, reply.body
    vkey = call(server.url, "GET", "/log/vkey", {})
    assert vkey.status == 200
    return verify_receipt(reply.json(), vkey.body.decode().strip())


# -- the deployment ---------------------------------------------------------------------


@dataclass
class Deployment:
    """A shared database, log key and lock-enabled bucket; servers started on demand."""

    tmp: Path
    env: dict[str, str]
    db: Database
    log: CustodyLog
    s3: S3Client
    bucket: str

    @contextlib.contextmanager
    def server(self, name: str, s3_endpoint: str | None = None) -> Iterator[RunningServer]:
        """`evidence serve` with its own data dir, on the shared database, key and bucket."""
        env = {**self.env, "EVIDENCE_DATA_DIR": str(self.tmp / name)}
        if s3_endpoint is not None:
            env["EVIDENCE_S3_ENDPOINT_URL"] = s3_endpoint
        with running(self.tmp, name, free_port(), **env) as server:
            yield server

    @contextlib.contextmanager
    def servers(self, *names: str) -> Iterator[list[RunningServer]]:
        """Several servers of this deployment, started side by side (start-up is slow)."""
        starting = [self.server(name) for name in names]
        with contextlib.ExitStack() as stack:
            with ThreadPoolExecutor(len(starting)) as pool:
                futures = [pool.submit(server.__enter__) for server in starting]
            started, failures = [], []
            for server, future in zip(starting, futures, strict=True):
                try:
                    started.append(future.result())
                except BaseException as exc:  # pytest.fail() from serverproc included
                    failures.append(exc)
                else:
                    stack.push(server.__exit__)  # stopped however the block ends
            if failures:
                raise failures[0]
            yield started

    def upload_row(self, upload_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).one()

    def upload_parts(self, upload_id: str) -> list[str]:
        """The part receipts recorded for an upload, in order."""
        with self.db.read() as conn:
            return list(
                conn.execute(
                    sa.select(upload_parts.c.receipt)
                    .where(upload_parts.c.upload_id == upload_id)
                    .order_by(upload_parts.c.number)
                ).scalars()
            )

    def count(self, table: sa.Table) -> int:
        with self.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def fsck(self, server: RunningServer) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command("fsck"),
            env=server.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )

    def assert_stored(self, content: bytes) -> None:
        """`content` is in the bucket under its content address, locked; nothing else is."""
        key = content_key("originals", hashlib.sha256(content).hexdigest())
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            assert hashlib.sha256(body.read()).digest() == hashlib.sha256(content).digest()
        finally:
            body.close()
        assert_locked(self.s3, self.bucket, key)
        assert bucket_contents(self.s3, self.bucket) == [key]  # no staging left behind


# Found by these tests; see the reason. Every HEAD and PATCH on PostgreSQL fails with it.
@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The servers' shared database: an SQLite file on this machine, or PostgreSQL."""
    if request.param == "sqlite":
        (tmp_path / "shared").mkdir()
        return f"sqlite:///{tmp_path / 'shared' / 'evidence.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def deployment(
    tmp_path: Path, database_url: str, moto_url: str, s3_admin: S3Client
) -> Iterator[Deployment]:
    key_file = tmp_path / "log.key"
    db = Database.connect(database_url)
    try:
        log = CustodyLog.open(db, load_or_create_log_signer(key_file))
        bucket = new_bucket(s3_admin, lock=True)
        env = {
            "EVIDENCE_DATABASE_URL": database_url,
            "EVIDENCE_LOG_KEY_FILE": str(key_file),
            "EVIDENCE_STORE": "s3",
            "EVIDENCE_S3_BUCKET": bucket,
            "EVIDENCE_S3_ENDPOINT_URL": moto_url,
            **aws_environment(tmp_path),
        }
        yield Deployment(tmp_path, env, db, log, s3_admin, bucket)
    finally:
        db.close()


def document(kit: Kit, content: bytes) -> tuple[bytes, bytes]:
    return kit.manifest(content, kind="document", media_type="text/plain")


# -- the tests ----------------------------------------------------------------------------


def test_an_upload_begun_on_one_server_is_finished_on_another(deployment: Deployment) -> None:
    kit = enrolled(deployment.log, deployment.db)
    content = text_document(20 * MIB + 12345, seed=1)
    manifest, signature = document(kit, content)
    first = SERVER_PART + 4 * MIB + 1000  # a whole part and a tail

    with deployment.servers("server-1", "server-2") as (one, two):
        created = tus_create(one.url, kit, manifest, signature, len(content))
        assert created.status == 201, created.body
        location = created.headers["Location"]
        sent = tus_patch(one.url, kit, location, 0, content[:first])
        assert (sent.status, sent.headers["Upload-Offset"]) == (204, str(first))

        for server in (one, two):  # the state is in the database and the bucket, not a server
            head = tus_head(server.url, kit, location)
            assert head.status == 200
            assert head.headers["Upload-Offset"] == str(first)
            assert head.headers["Upload-Length"] == str(len(content))
        row = deployment.upload_row(location.rsplit("/", 1)[1])
        assert len(deployment.upload_parts(row.id)) == 1
        assert bytes(row.tail) == content[SERVER_PART:first]

        rest = tus_patch(two.url, kit, location, first, content[first:])
        assert (rest.status, rest.headers["Upload-Offset"]) == (204, str(len(content)))

        verified = receipt_from(two, kit, location)
        assert verified.item == item_id(manifest)
        assert verified.entry.sha256 == hashlib.sha256(content).hexdigest()
        assert verified.entry.size == len(content)
        assert receipt_from(one, kit, location).index == verified.index
        assert call(two.url, "GET", "/log/vkey", {}).body.decode().strip() == deployment.log.vkey
        done = tus_head(one.url, kit, location)
        assert done.headers["Upload-Offset"] == str(len(content))

    deployment.assert_stored(content)
    assert deployment.count(items) == 1
    fsck = deployment.fsck(two)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_an_object_store_gone_mid_upload_is_503_and_the_upload_resumes_after(
    deployment: Deployment, moto_url: str
) -> None:
    kit = enrolled(deployment.log, deployment.db)
    content = text_document(2 * SERVER_PART + MIB + 4321, seed=2)
    manifest, signature = document(kit, content)
    first = SERVER_PART + 2 * MIB  # part 0 durable in the store, 2 MiB tail in the database
    second = 2 * SERVER_PART  # ends where part 1 ends: the server needs the store to take it
    moto = urlsplit(moto_url)
    proxy = TcpProxy((moto.hostname or "", moto.port or 0)).start()
    try:
        with deployment.server("server", s3_endpoint=proxy.url) as server:
            created = tus_create(server.url, kit, manifest, signature, len(content))
            assert created.status == 201, created.body
            location = created.headers["Location"]
            upload_id = location.rsplit("/", 1)[1]
            sent = tus_patch(server.url, kit, location, 0, content[:first])
            assert (sent.status, sent.headers["Upload-Offset"]) == (204, str(first))

            proxy.stop()
            refused = tus_patch(server.url, kit, location, first, content[first:second])
            assert refused.status == 503, refused.body
            assert int(refused.headers["Retry-After"]) > 0
            assert refused.headers["Content-Type"].startswith("application/json")
            assert refused.json()["error"] == "storage_unavailable"

            # HEAD counts only durable bytes: parts in the store, the tail in the database.
            head = tus_head(server.url, kit, location)
            assert head.status == 200
            offset = int(head.headers["Upload-Offset"])
            row = deployment.upload_row(upload_id)
            parts, tail = deployment.upload_parts(upload_id), bytes(row.tail)
            assert offset == row.offset == len(parts) * SERVER_PART + len(tail)
            assert first <= offset <= second
            assert tail == content[len(parts) * SERVER_PART : offset]
            # Staged at its content address, which holds nothing until it is finished.
            key, _, multipart = row.stage_handle.partition("#")
            assert key == content_key("originals", hashlib.sha256(content).hexdigest())
            assert "Contents" not in deployment.s3.list_objects_v2(Bucket=deployment.bucket)
            staged = deployment.s3.list_parts(
                Bucket=deployment.bucket, Key=key, UploadId=multipart
            )["Parts"]
            # Receipts are "sha256:<base64>:<ETag>"; moto lists the ETags only.
            assert [p.get("ETag") for p in staged[: len(parts)]] == [
                r.split(":", 2)[2] for r in parts
            ]
            assert all(p.get("Size") == SERVER_PART for p in staged[: len(parts)])

            # Nothing else broke meanwhile: the log answers; a new upload is refused cleanly.
            assert call(server.url, "GET", "/log/checkpoint", {}).status == 200
            other = text_document(1000, seed=3)
            uploads_before = deployment.count(uploads)
            refused_new = tus_create(server.url, kit, *document(kit, other), len(other))
            assert refused_new.status == 503, refused_new.body
            assert "Retry-After" in refused_new.headers
            assert deployment.count(uploads) == uploads_before

            proxy.start()  # the store is back, on the same address
            resumed = tus_head(server.url, kit, location)
            assert resumed.headers["Upload-Offset"] == str(offset)
            rest = tus_patch(server.url, kit, location, offset, content[offset:])
            assert (rest.status, rest.headers["Upload-Offset"]) == (204, str(len(content)))
            verified = receipt_from(server, kit, location)
            assert verified.entry.sha256 == hashlib.sha256(content).hexdigest()
            assert verified.item == item_id(manifest)
    finally:
        proxy.stop()

    deployment.assert_stored(content)
    assert deployment.count(items) == 1
    report = run_fsck(deployment.db, deployment.log.vkey)  # what `evidence fsck` runs
    assert report.ok, report.problems


def test_a_device_revoked_while_the_server_runs_is_forbidden_every_tus_request(
    deployment: Deployment,
) -> None:
    kit = enrolled(deployment.log, deployment.db)
    content = text_document(4000, seed=4)
    manifest, signature = document(kit, content)
    with deployment.server("server") as server:
        created = tus_create(server.url, kit, manifest, signature, len(content))
        assert created.status == 201, created.body
        location = created.headers["Location"]
        assert tus_patch(server.url, kit, location, 0, content[:1000]).status == 204

        revoke_device(deployment.log, deployment.db, kit.device, now=deployment.log.clock())
        log_size = deployment.log.size()

        later = text_document(500, seed=5)
        refusals = {
            "POST": tus_create(server.url, kit, *document(kit, later), len(later)),
            "HEAD": tus_head(server.url, kit, location),
            "PATCH": tus_patch(server.url, kit, location, 1000, content[1000:]),
            "DELETE": call(server.url, "DELETE", location, {**TUS, **kit.auth}),
        }
        for method, reply in refusals.items():
            assert reply.status == 403, (method, reply.body)
            if method != "HEAD":
                assert reply.json()["error"] == "forbidden", method

    assert deployment.upload_row(location.rsplit("/", 1)[1]).offset == 1000
    assert deployment.count(items) == 0
    assert deployment.log.size() == log_size


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # not about the database
def test_a_store_gone_as_the_last_bytes_arrive_leaves_an_upload_a_tus_client_can_finish(
    deployment: Deployment, moto_url: str
) -> None:
    kit = enrolled(deployment.log, deployment.db)
    content = text_document(3000, seed=7)
    manifest, signature = document(kit, content)
    moto = urlsplit(moto_url)
    proxy = TcpProxy((moto.hostname or "", moto.port or 0)).start()
    try:
        with deployment.server("server", s3_endpoint=proxy.url) as server:
            created = tus_create(server.url, kit, manifest, signature, len(content))
            assert created.status == 201, created.body
            location = created.headers["Location"]
            proxy.stop()
            refused = tus_patch(server.url, kit, location, 0, content)
            assert refused.status == 503, refused.body
            proxy.start()
            # A tus client resumes from HEAD's offset and, once it is the length, takes
            # the upload for finished (tus 1.0.0; tuspy and tus-js-client stop there).
            offset = int(tus_head(server.url, kit, location).headers["Upload-Offset"])
            if offset < len(content):
                rest = tus_patch(server.url, kit, location, offset, content[offset:])
                assert rest.status == 204, rest.body
            verified = receipt_from(server, kit, location)
            assert verified.item == item_id(manifest)
    finally:
        proxy.stop()
    deployment.assert_stored(content)


@pytest.mark.postgres
async def test_head_and_patch_of_an_upload_answer_on_postgresql(
    aiohttp_client: Any, tmp_path: Path, postgres_url: str
) -> None:
    """PostgreSQL hands back its own UTC zone; Upload-Expires must still be written (was a 500)."""
    environ = {
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": postgres_url,
        "EVIDENCE_LOG_FORMAT": "json",
    }
    client = await aiohttp_client(create_app(Settings.load(environ, stderr_is_tty=False)))
    kit = enrolled(client.app[LOG], client.app[DB])
    content = text_document(100, seed=8)
    created = await create(client, kit, *document(kit, content))
    assert created.status == 201
    location = created.headers["Location"]
    head = await client.head(location, headers={**TUS, **kit.auth})
    assert head.status == 200, await head.text()
    patched = await patch(client, kit, location, 0, content)
    assert patched.status == 204, await patched.text()
