"""`make bench`, ingest: uploads through a real `evidence serve`, against same-run baselines.

Prints a table and writes bench/results/ingest.json. Measures:

* one large upload through tus to the local store (BENCH_INGEST_SIZE, 1 GiB by
  default; PATCH requests of BENCH_PATCH_SIZE, 64 MiB, streamed from the file
  with sendfile), end to end from the creating POST to the receipt, beside
  the baseline of hashing the same file while copying it to another file in
  the same directory, then fsync. Two files: a text/plain document (the
  server checks UTF-8 on every byte) and footage (a small real MP4 padded
  with a ``free`` box to the same size: the probe reads only its header).
  Each BENCH_REPEAT (3) times, each time with new bytes and right after its
  own baseline; the ratio reported is the median of those ratios;
* the server's resident memory before and at its peak during those uploads
  (VmRSS and VmHWM from /proc, the peak reset before each upload);
* the same two uploads to S3 (moto's server on localhost; BENCH_S3_SIZE, 256
  MiB by default, as moto holds every object in memory and serves ranged
  reads slowly), each beside a direct boto3 ``upload_file`` of the file to the
  same endpoint, BENCH_S3_REPEAT (2) times;
* BENCH_SMALL_TASKS (100) devices uploading BENCH_SMALL_PER_TASK (10) small
  text items (64 KiB) each with ``POST /api/v1/items``, all at once: latency,
  items/s and the server's and the client's CPU per item, beside as many
  ``GET /log/vkey`` (a trivial request) from the same client, whose ratio is
  reported. The client is a minimal HTTP/1.1 one over kept-alive connections
  with every request built beforehand: it shares the two cores with the
  server. Every receipt is verified offline afterwards. Any failed upload
  fails the run (exit status 1, after the table and the results are written).

BENCH_INGEST_ONLY (e.g. ``s3`` or ``local,small``) runs only those parts.

Timings on a shared machine are noisy: read the ratios, not the absolute
figures. Nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import io
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import (
    RESULTS,
    ROOT,
    evidence_command,
    free_port,
    print_table,
    summary,
    wait_until_serving,
)

sys.path.insert(0, str(ROOT / "tests"))  # one moto launcher for the tests and the benchmark
from motoserver import start_moto, stop_moto

from evidence.cases.registry import add_case
from evidence.chain import manifest as mf
from evidence.chain import note
from evidence.chain.receipt import verify_receipt
from evidence.clock import utc_now
from evidence.db import Database, open_database
from evidence.devices.assignments import assign_device
from evidence.devices.registry import enroll_device
from evidence.errors import EvidenceError
from evidence.ingest import tus
from evidence.log.custody import open_log
from evidence.logs import configure_logging
from evidence.people.accounts import add_user, assign_case
from evidence.settings import Settings

MiB = 1 << 20
SIZE = int(os.environ.get("BENCH_INGEST_SIZE", str(1 << 30)))
S3_SIZE = int(os.environ.get("BENCH_S3_SIZE", str(256 * MiB)))
PATCH_SIZE = int(os.environ.get("BENCH_PATCH_SIZE", str(64 * MiB)))
SMALL_TASKS = int(os.environ.get("BENCH_SMALL_TASKS", "100"))
SMALL_PER_TASK = int(os.environ.get("BENCH_SMALL_PER_TASK", "10"))
SMALL_SIZE = 64 << 10
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # of each local upload and its baseline
S3_REPEAT = int(os.environ.get("BENCH_S3_REPEAT", "2"))
# Which parts to run (comma-separated): local, s3, small. All by default.
ONLY = set(filter(None, os.environ.get("BENCH_INGEST_ONLY", "local,s3,small").split(",")))
COPY_CHUNK = 1 * MiB
RSS_SAMPLE_SECONDS = 0.02
FAKE_KEY_ID = "bench-key-id"
FAKE_SECRET = "bench-secret"  # noqa: S105 - moto's fake credentials
BUCKET = "evidence-bench"
BASELINE_BUCKET = "evidence-bench-baseline"
CAPTURED_AT = "2026-11-24T09:30:00Z"


# -- test data ----------------------------------------------------------------------


def write_text_file(path: Path, size: int) -> str:
    """`size` bytes of ASCII lines at `path`; return their SHA-256."""
    line = b"".join(
        b"%08d the quick brown fox jumps over the lazy dog, visit record line\n" % i
        for i in range(16384)
    )
    return _write_repeating(path, b"", line, size)


def write_footage_file(path: Path, size: int) -> str:
    """A real MP4 (one second of tiny video) padded with a ``free`` box to `size` bytes."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([i * 9 % 256]) * plane.buffer_size)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    movie = buf.getvalue()
    pad = size - len(movie)
    if not 8 <= pad < 1 << 32:
        raise ValueError(f"footage of {size} bytes cannot be padded with one free box")
    return _write_repeating(path, movie + struct.pack(">I4s", pad, b"free"), os.urandom(MiB), size)


def _write_repeating(path: Path, head: bytes, block: bytes, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        written = 0
        first = head
        while written < size:
            data = (first + block)[: size - written]
            first = b""
            f.write(data)
            digest.update(data)
            written += len(data)
    return digest.hexdigest()


# -- the server process ---------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urllib.parse.urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        EVIDENCE_DATA_DIR=str(data_dir),
        EVIDENCE_LOG_LEVEL="info",  # as deployed: one access-log line per request
        EVIDENCE_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(env: dict[str, str], work: Path, name: str, bare: bool = False) -> Iterator[Server]:
    """`evidence serve` (with `bare`, bench/bare_server.py) on a free port, while the block runs."""
    port = free_port()
    log_path = work / f"{name}.log"
    bare_server = str(Path(__file__).with_name("bare_server.py"))
    command = (
        [sys.executable, bare_server, str(port), str(work / name)]
        if bare
        else evidence_command("serve", "--host", "127.0.0.1", "--port", str(port))
    )
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", env, log_path)
    try:
        try:
            wait_until_serving(server.url, proc)
        except RuntimeError:
            print(log_path.read_text()[-4000:], file=sys.stderr)
            raise
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- devices ----------------------------------------------------------------------------


@dataclass
class Device:
    signer: note.Signer
    id: str
    token: str
    case: str
    seq: int = 0
    prev: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sign(self, kind: str, media_type: str, sha256: str, size: int) -> tuple[bytes, bytes]:
        """This device's next manifest (seq and prev chained) and its signature."""
        self.seq += 1
        data = mf.manifest_bytes(
            mf.CaptureManifest(
                device=self.id,
                seq=self.seq,
                prev=self.prev,
                case=self.case,
                kind=kind,
                sha256=sha256,
                size=size,
                media_type=media_type,
                captured_at=CAPTURED_AT,
                ended_at=None,
                geo=None,
            )
        )
        self.prev = mf.item_id(data)
        return data, mf.sign_manifest(data, self.signer)


def enroll(env: dict[str, str], count: int) -> list[Device]:
    """`count` devices enrolled, each given to its own worker with a case, in `env`'s database."""
    settings = Settings.load(environ=env, stderr_is_tty=False)
    db = open_database(settings)
    try:
        log = open_log(settings, db, utc_now)
        devices = []
        for i in range(count):
            name = f"bench-camera-{i}"
            signer = note.new_signer(
                f"device.example/{name}", hashlib.sha256(name.encode()).digest()
            )
            created = enroll_device(log, db, signer.verifier.vkey, name, now=log.clock())
            now = log.clock()
            case = add_case(db, f"BENCH/{name}", now=now)["case"]
            # A device uploads only to the cases of the worker it is given to.
            worker = add_user(db, f"worker of {name}", ["worker"], now=now)["user"]
            assign_case(db, case, worker)
            assign_device(db, created["device"], worker)
            devices.append(Device(signer, created["device"], created["token"], case))
        return devices
    finally:
        db.close()


def upload_metadata(manifest: bytes, signature: bytes) -> str:
    """``Upload-Metadata``: the manifest, and the signature as base64 text (tus encodes both)."""
    values = (("manifest", manifest), ("signature", base64.b64encode(signature)))
    return ",".join(f"{key} {base64.b64encode(value).decode()}" for key, value in values)


# -- watching the server process --------------------------------------------------------


def proc_status_kib(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: "5" to clear_refs); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Watch:
    """The server's CPU time and its peak resident memory while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_sampled_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            with contextlib.suppress(OSError):
                rss = proc_status_kib(self.pid)["VmRSS"]
                self.peak_sampled_kib = max(self.peak_sampled_kib, rss)

    def __enter__(self) -> Watch:
        self.rss_before_kib = proc_status_kib(self.pid)["VmRSS"]
        self.peak_was_reset = reset_peak_rss(self.pid)
        self.cpu_before = cpu_seconds(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu = cpu_seconds(self.pid) - self.cpu_before
        self.peak_kib = max(proc_status_kib(self.pid)["VmHWM"], self.peak_sampled_kib)

    def figures(self) -> dict[str, Any]:
        return {
            "server_rss_before_mb": self.rss_before_kib / 1024,
            "server_peak_rss_mb": self.peak_kib / 1024,
            "server_peak_rss_is_since_start": not self.peak_was_reset,
            "server_cpu_s": self.cpu,
        }


# -- one large upload ---------------------------------------------------------------------


def tus_upload(
    server: Server, device: Device, path: Path, sha256: str, kind: str, media_type: str
) -> dict[str, Any]:
    """Upload `path` through tus in PATCHes of PATCH_SIZE; timings up to the receipt."""
    size = path.stat().st_size
    manifest, signature = device.sign(kind, media_type, sha256, size)
    headers = {"Tus-Resumable": "1.0.0", **device.auth}
    host, port = server.host_port
    conn = http.client.HTTPConnection(host, port, timeout=1800)
    patches = []
    t0 = time.perf_counter()
    conn.request(
        "POST",
        tus.UPLOADS,
        headers={
            **headers,
            "Upload-Length": str(size),
            "Upload-Metadata": upload_metadata(manifest, signature),
            "Content-Length": "0",
        },
    )
    answer = conn.getresponse()
    body = answer.read()
    if answer.status != 201:
        raise RuntimeError(f"POST {tus.UPLOADS}: {answer.status} {body[:500]!r}")
    location = answer.getheader("Location") or ""
    created = time.perf_counter()
    offset = 0
    last_sent = created
    with path.open("rb") as f:
        while offset < size:
            n = min(PATCH_SIZE, size - offset)
            p0 = time.perf_counter()
            conn.putrequest("PATCH", location, skip_accept_encoding=True)
            for name, value in {
                **headers,
                "Upload-Offset": str(offset),
                "Content-Type": tus.OFFSET_CONTENT_TYPE,
                "Content-Length": str(n),
            }.items():
                conn.putheader(name, value)
            conn.endheaders()
            assert conn.sock is not None
            sent = conn.sock.sendfile(f, offset, n)
            if sent != n:
                raise RuntimeError(f"sendfile sent {sent} of {n} bytes")
            last_sent = time.perf_counter()
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 204:
                raise RuntimeError(f"PATCH at {offset}: {answer.status} {body[:500]!r}")
            new_offset = int(answer.getheader("Upload-Offset") or -1)
            if new_offset != offset + n:
                raise RuntimeError(f"PATCH at {offset}: Upload-Offset {new_offset}")
            patches.append(time.perf_counter() - p0)
            offset = new_offset
    last_answered = time.perf_counter()
    conn.request("GET", location + "/receipt", headers=device.auth)
    answer = conn.getresponse()
    receipt = json.loads(answer.read())
    if answer.status != 200 or receipt.get("item") != mf.item_id(manifest):
        raise RuntimeError(f"receipt: {answer.status} {receipt!r:.500}")
    done = time.perf_counter()
    conn.close()
    return {
        "seconds": done - t0,
        "create_s": created - t0,
        "patches": len(patches),
        "patch_s_median": sorted(patches)[len(patches) // 2],
        "patch_s_max": max(patches),
        # the last PATCH answers once the upload is finished: assembled, hashed,
        # probed, committed and its entry appended to the custody log
        "after_last_byte_s": last_answered - last_sent,
        "receipt_s": done - last_answered,
    }


def hash_and_copy(source: Path, target: Path) -> float:
    """Baseline: SHA-256 of `source` while copying it to `target`, then fsync; seconds."""
    buf = bytearray(COPY_CHUNK)
    view = memoryview(buf)
    t0 = time.perf_counter()
    digest = hashlib.sha256()
    with source.open("rb", buffering=0) as src, target.open("wb", buffering=0) as dst:
        while n := src.readinto(buf):
            digest.update(view[:n])
            dst.write(view[:n])
        os.fsync(dst.fileno())
    elapsed = time.perf_counter() - t0
    target.unlink()
    return elapsed


# -- S3 on moto --------------------------------------------------------------------------


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in a child process (the tests' launcher); its URL."""
    process, url = start_moto()
    try:
        yield url
    finally:
        stop_moto(process)


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )


def s3_baseline(s3: Any, path: Path) -> float:
    """Baseline: boto3's managed `upload_file` (its default multipart settings); seconds."""
    key = "baseline/" + path.name
    t0 = time.perf_counter()
    s3.upload_file(str(path), BASELINE_BUCKET, key)
    elapsed = time.perf_counter() - t0
    s3.delete_object(Bucket=BASELINE_BUCKET, Key=key)  # moto keeps objects in memory
    return elapsed


# -- many small uploads at once -------------------------------------------------------------

SMALL_BOUNDARY = "evidence-bench-boundary-7f3a9c"


def small_item_request(host: str, device: Device, content: bytes) -> bytes:
    """The whole ``POST /api/v1/items`` request for `content` (the device's next manifest)."""
    manifest, signature = device.sign(
        "document", "text/plain", hashlib.sha256(content).hexdigest(), len(content)
    )
    parts = [
        ("manifest", 'filename="manifest.json"', "application/json", manifest),
        ("signature", "", "text/plain", base64.b64encode(signature)),
        ("content", 'filename="note.txt"', "text/plain", content),
    ]
    body = (
        b"".join(
            f'--{SMALL_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
            f"{'; ' + extra if extra else ''}\r\nContent-Type: {ctype}\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, extra, ctype, data in parts
        )
        + f"--{SMALL_BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /api/v1/items HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {device.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={SMALL_BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def send_all(
    host: str,
    port: int,
    requests: list[bytes],
    expect: int,
    answers: list[bytes],
    errors: list[str],
) -> list[float]:
    """Send `requests` one after another on one kept-alive connection; their latencies.

    A deliberately cheap HTTP/1.1 client (the requests are built beforehand, the
    answers only split into status, length and body), so that the client, which
    shares the machine's cores with the server, takes as little of them as it can.
    """
    reader, writer = await asyncio.open_connection(host, port)
    latencies = []
    try:
        for request in requests:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            status = int(head[9:12])
            if status != expect:
                errors.append(f"{request[:20]!r}...: {status} {body[:300]!r}")
            else:
                answers.append(body)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()
    return latencies


async def small_uploads(
    server: Server, bare: Server, devices: list[Device], per_task: int
) -> dict[str, Any]:
    """Every device sends `per_task` items at once with the others; beside it, two
    baselines: the same connections asking ``GET /log/vkey`` as often (a trivial
    request), and the same requests to `bare` (bench/bare_server.py: the durable write
    of each body and a committed row, behind a bare aiohttp server)."""
    host, port = server.host_port
    host_header = f"{host}:{port}"
    per_device = []
    for device in devices:
        bodies = []
        for i in range(per_task):
            head = f"{device.id} item {i}\n".encode()
            content = (head + b"a short visit note, padded to size.\n" * 2000)[:SMALL_SIZE]
            bodies.append(small_item_request(host_header, device, content))
        per_device.append(bodies)
    vkey_request = f"GET /log/vkey HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()

    async def run(batches: list[list[bytes]], expect: int, to: Server = server) -> dict[str, Any]:
        answers: list[bytes] = []
        errors: list[str] = []
        cpu0, own0, t0 = cpu_seconds(to.pid), time.process_time(), time.perf_counter()
        latencies = await asyncio.gather(
            *(send_all(*to.host_port, b, expect, answers, errors) for b in batches)
        )
        elapsed = time.perf_counter() - t0
        cpu, own = cpu_seconds(to.pid) - cpu0, time.process_time() - own0
        count = sum(len(b) for b in batches)
        cores = os.cpu_count() or 1
        return {
            "count": count,
            "per_s": count / elapsed,
            "errors": errors,
            "answers": answers,
            "server_cpu_ms": cpu / count * 1000,
            "client_cpu_ms": own / count * 1000,
            # of all the machine's cores, over the run: what is left to the server
            "client_share_of_cores": own / elapsed / cores,
            "server_share_of_cores": cpu / elapsed / cores,
            **summary([x for each in latencies for x in each]),
        }

    base = await run([[vkey_request] * per_task for _ in devices], 200)
    small = await run(per_device, 201)
    floor = await run(per_device, 201, bare)

    # Outside the timing: every receipt verifies offline, and every item is in the database.
    errors = base["errors"] + small["errors"] + floor["errors"]
    vkey = base["answers"][0].decode().strip() if base["answers"] else ""
    for answer in small["answers"]:
        try:
            verify_receipt(json.loads(answer), vkey)
        except (ValueError, EvidenceError) as exc:
            errors.append(f"receipt does not verify: {exc}")
            break
    total = len(devices) * per_task
    db = Database.connect(Settings.load(environ=server.env, stderr_is_tty=False).database_url)
    with db.read() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM items")).scalar_one()
    db.close()
    if stored != total and not errors:
        errors.append(f"{stored} items in the database, not {total}")
    figures = (
        "per_s",
        "server_cpu_ms",
        "client_cpu_ms",
        "client_share_of_cores",
        "server_share_of_cores",
        "p50_ms",
        "p99_ms",
        "mean_ms",
    )
    return {
        "tasks": len(devices),
        "items": total,
        "item_size": SMALL_SIZE,
        "errors": len(errors),
        "first_errors": errors[:5],
        "items_per_s": small["per_s"],
        "server_cpu_ms_per_item": small["server_cpu_ms"],
        "client_cpu_ms_per_item": small["client_cpu_ms"],
        "small": {k: small[k] for k in figures},
        "baseline_vkey": {k: base[k] for k in figures},
        "baseline_vkey_per_s": base["per_s"],
        "ratio_to_baseline": small["per_s"] / base["per_s"],
        "baseline_bare": {k: floor[k] for k in figures},
        "baseline_bare_per_s": floor["per_s"],
        "ratio_to_bare": small["per_s"] / floor["per_s"],
        "p50_ms": small["p50_ms"],
        "p99_ms": small["p99_ms"],
    }


# -- main ---------------------------------------------------------------------------------


@dataclass
class TestFile:
    path: Path
    kind: str
    media_type: str
    label: str
    vary_at: int  # where 8 ASCII digits make each version's bytes (and item) new

    def version(self, n: int) -> str:
        """Make the file's bytes new (version `n`); return their SHA-256."""
        with self.path.open("r+b") as f:
            f.seek(self.vary_at)
            f.write(b"%08d" % n)
            f.seek(0)
            return hashlib.file_digest(f, "sha256").hexdigest()


def test_files(work: Path, size: int, prefix: str) -> list[TestFile]:
    text = work / f"{prefix}document.txt"
    footage = work / f"{prefix}footage.mp4"
    write_text_file(text, size)
    write_footage_file(footage, size)
    return [
        TestFile(text, "document", "text/plain", "text/plain", 0),
        TestFile(footage, "footage", "video/mp4", "footage (MP4 + free box)", size - 8),
    ]


def source_version() -> dict[str, Any]:
    """The commit measured, and whether evidence/ had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "evidence"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "evidence_changed": bool(changed)}


def size_label(size: int) -> str:
    return f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size / MiB:g} MiB"


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def median(values: list[float]) -> float:
    return statistics.median(values)


class Report:
    def __init__(self) -> None:
        self.results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "size": SIZE,
            "s3_size": S3_SIZE,
            "patch_size": PATCH_SIZE,
            "repeat": REPEAT,
            "s3_repeat": S3_REPEAT,
            "source": source_version(),
            "loadavg_at_start": os.getloadavg(),
        }
        self.rows: list[tuple[str, str, str]] = []

    def row(self, label: str, value: str, against: str = "") -> None:
        self.rows.append((label, value, against))
        print(f"  {label}: {value} {against}", flush=True)


def measure(
    report: Report,
    where: str,
    server: Server,
    device: Device,
    tf: TestFile,
    size: int,
    repeat: int,
    baseline: Callable[[], float],
    baseline_label: str,
    target: float,
) -> None:
    """`repeat` times: new bytes, the baseline, then the upload through `server`."""
    bases, uploads = [], []
    for n in range(1, repeat + 1):
        sha256 = tf.version(n)
        os.sync()
        bases.append(baseline())
        os.sync()
        with Watch(server.pid) as watch:
            up = tus_upload(server, device, tf.path, sha256, tf.kind, tf.media_type)
        uploads.append(up | watch.figures())
    base = median(bases)
    seconds = median([u["seconds"] for u in uploads])
    # Each upload against the baseline run just before it: the load on a shared
    # machine drifts, and the baseline (disk-bound) moves with it more than the upload.
    ratios = [u["seconds"] / b for u, b in zip(uploads, bases, strict=True)]
    ratio = median(ratios)
    peak = max(u["server_peak_rss_mb"] for u in uploads)
    report.results[f"{where}.{tf.kind}"] = {
        "media_type": tf.media_type,
        "size": size,
        "baseline_s": bases,
        "uploads": uploads,
        "ratios": ratios,
        "ratio": ratio,
        "server_peak_rss_mb": peak,
    }
    label = f"{where}: {tf.label}, {size_label(size)}"
    of = f"median of {repeat}" if repeat > 1 else "one run"
    spread = f" ({min(ratios):.2f} to {max(ratios):.2f})" if repeat > 1 else ""
    report.row(
        f"{label}: {baseline_label} (baseline)",
        f"{base:.2f} s ({mb_per_s(size, base):,.0f} MB/s)",
        of,
    )
    after = median([u["after_last_byte_s"] for u in uploads])
    cpu = median([u["server_cpu_s"] for u in uploads])
    report.row(
        f"{label}: tus, {PATCH_SIZE // MiB} MiB PATCHes, POST to receipt",
        f"{seconds:.2f} s ({mb_per_s(size, seconds):,.0f} MB/s)",
        f"**{ratio:.2f} x baseline**{spread} (target <= {target}); after the last byte "
        f"{after:.2f} s; server CPU {cpu:.1f} s; {of}",
    )
    report.row(
        f"{label}: server RSS",
        f"{uploads[0]['server_rss_before_mb']:.0f} MB before, peak {peak:.0f} MB",
        "(target: peak <= 200 MB)",
    )


def run_local(report: Report, work: Path) -> None:
    """1, 2: large uploads to the local store, and the server's memory meanwhile."""
    print(f"local store, {size_label(SIZE)}, {REPEAT} of each:", flush=True)
    env = server_env(work / "local")
    device = enroll(env, 1)[0]
    with serving(env, work, "local") as server:
        for tf in test_files(work, SIZE, ""):
            measure(
                report,
                "local",
                server,
                device,
                tf,
                SIZE,
                REPEAT,
                lambda tf=tf: hash_and_copy(tf.path, work / "copy"),
                "SHA-256 + copy + fsync",
                1.5,
            )


def run_s3(report: Report, work: Path) -> None:
    """3: the same uploads to S3 (moto), beside boto3's upload_file."""
    print(f"S3 (moto), {size_label(S3_SIZE)}, {S3_REPEAT} of each:", flush=True)
    with moto_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        s3.create_bucket(Bucket=BASELINE_BUCKET)
        env = server_env(
            work / "s3",
            EVIDENCE_STORE="s3",
            EVIDENCE_S3_BUCKET=BUCKET,
            EVIDENCE_S3_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
            AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
            AWS_DEFAULT_REGION="us-east-1",
        )
        device = enroll(env, 1)[0]
        with serving(env, work, "s3") as server:
            for tf in test_files(work, S3_SIZE, "s3-"):
                measure(
                    report,
                    "S3 (moto)",
                    server,
                    device,
                    tf,
                    S3_SIZE,
                    S3_REPEAT,
                    lambda tf=tf: s3_baseline(s3, tf.path),
                    "boto3 upload_file",
                    1.3,
                )
        s3.close()
    if S3_SIZE < SIZE:
        report.row(
            f"S3 (moto): {size_label(S3_SIZE)}, not {size_label(SIZE)}",
            "",
            "moto holds every object in memory and is slow on big ones (BENCH_S3_SIZE)",
        )


def run_small(report: Report, work: Path) -> list[str]:
    """4: many devices uploading small items at once; the failures, if any."""
    print(f"{SMALL_TASKS} devices x {SMALL_PER_TASK} small items:", flush=True)
    env = server_env(work / "small")
    devices = enroll(env, SMALL_TASKS)
    with (
        serving(env, work, "small") as server,
        serving(env, work, "bare", bare=True) as bare,
        Watch(server.pid) as watch,
    ):
        small = asyncio.run(small_uploads(server, bare, devices, SMALL_PER_TASK))
    small |= watch.figures()
    report.results["small"] = small
    base = small["baseline_vkey"]
    report.row(
        f"{SMALL_TASKS} concurrent clients: GET /log/vkey (baseline, same client)",
        f"{small['baseline_vkey_per_s']:,.0f} req/s",
        f"p50 {base['p50_ms']:.1f} ms, p99 {base['p99_ms']:.1f} ms; "
        f"server CPU {base['server_cpu_ms']:.2f} ms/req",
    )
    bare = small["baseline_bare"]
    report.row(
        f"{SMALL_TASKS} concurrent clients: the same requests to bench/bare_server.py "
        "(baseline: durable write + committed row, nothing else)",
        f"{small['baseline_bare_per_s']:,.0f} req/s",
        f"p50 {bare['p50_ms']:.0f} ms, p99 {bare['p99_ms']:.0f} ms; "
        f"server CPU {bare['server_cpu_ms']:.2f} ms/req",
    )
    report.row(
        f"{SMALL_TASKS} concurrent devices: POST /api/v1/items, {SMALL_SIZE >> 10} KiB",
        f"**{small['items_per_s']:,.0f} items/s** ({small['ratio_to_bare']:.2f} x bare, "
        f"{small['ratio_to_baseline']:.2f} x vkey)",
        f"p50 {small['p50_ms']:.0f} ms, p99 {small['p99_ms']:.0f} ms; "
        f"{small['errors']} errors in {small['items']}; "
        f"server CPU {small['server_cpu_ms_per_item']:.2f} ms/item, "
        f"client CPU {small['client_cpu_ms_per_item']:.2f} ms/item "
        f"({small['small']['client_share_of_cores']:.0%} of the cores)",
    )
    if small["errors"]:
        return [f"{small['errors']} small uploads failed: {small['first_errors']}"]
    return []


def main() -> None:
    configure_logging("warning", "console")  # the enrolments in this process: quiet
    report = Report()
    with tempfile.TemporaryDirectory(prefix="evidence-bench-ingest-") as tmp:
        work = Path(tmp)
        print(f"working in {work}", flush=True)
        failures = []
        if "local" in ONLY:
            run_local(report, work)
        if "s3" in ONLY:
            run_s3(report, work)
        if "small" in ONLY:
            failures = run_small(report, work)
    report.results["loadavg_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(report.results, indent=2) + "\n")
    print_table(report.rows, RESULTS / "ingest.json")
    if failures:
        print("\nFAILED: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
