"""`make bench`: how fast the custody log appends and proves, against baselines from the same run.

Prints a table and writes bench/results/latest.json. Measures:

* appends/s on SQLite and PostgreSQL: one appender awaiting each append, 8
  concurrent appenders, and batches of 1000 (`append_sync`); beside them the
  bare baseline of inserting the same bytes with no hashing, tree or checkpoint;
* appends/s from 4 processes on one PostgreSQL database;
* inclusion-proof time in a log of 1M entries (BENCH_LOG_SIZE), in process and
  over HTTP from a real `evidence serve`, beside one primary-key SELECT.

Timings on a shared machine are noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import (
    RESULTS,
    evidence_command,
    free_port,
    print_table,
    summary,
    wait_until_serving,
)

from evidence.chain import note
from evidence.chain.entries import DeviceRevoked
from evidence.db import Database, engine_url
from evidence.log.custody import CustodyLog

LOG_SIZE = int(os.environ.get("BENCH_LOG_SIZE", "1000000"))
SEED = bytes(range(32))
ORIGIN = "bench.example/log"


def entry(i: int) -> bytes:
    return DeviceRevoked(time="2026-11-24T10:00:00.000000Z", device=f"device-{i:09d}").to_bytes()


# -- databases ----------------------------------------------------------------


def postgres_server_url() -> str | None:
    return os.environ.get("EVIDENCE_BENCH_POSTGRES_URL") or os.environ.get(
        "EVIDENCE_TEST_POSTGRES_URL"
    )


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex}.db"
        yield f"sqlite:///{path}"
        return
    server = postgres_server_url()
    assert server is not None
    name = f"evidence_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(engine_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def open_log(url: str) -> tuple[Database, CustodyLog]:
    db = Database.connect(url)
    return db, CustodyLog.open(db, note.new_signer(ORIGIN, SEED))


# -- append throughput ----------------------------------------------------------


async def _appenders(custody: CustodyLog, total: int, concurrency: int) -> None:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await custody.append(entry(i))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def appends_per_second(url: str, total: int, concurrency: int) -> float:
    db, custody = open_log(url)

    async def run() -> float:
        await custody.start()
        t0 = time.perf_counter()
        await _appenders(custody, total, concurrency)
        elapsed = time.perf_counter() - t0
        await custody.close()
        return elapsed

    elapsed = asyncio.run(run())
    db.close()
    return total / elapsed


def batched_appends_per_second(url: str, total: int) -> float:
    db, custody = open_log(url)
    datas = [entry(i) for i in range(total)]
    t0 = time.perf_counter()
    for start in range(0, total, 1000):
        custody.append_sync(datas[start : start + 1000])
    elapsed = time.perf_counter() - t0
    db.close()
    return total / elapsed


def bare_inserts_per_second(url: str, total: int) -> float:
    """Baseline: the same bytes inserted in batches of 1000, no hashing, tree or checkpoint."""
    db = Database.connect(url)
    table = sa.table("bench_bare", sa.column("idx"), sa.column("data"))
    with db.write() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bench_bare (idx BIGINT PRIMARY KEY, data BYTEA)"
            if db.dialect == "postgresql"
            else "CREATE TABLE bench_bare (idx BIGINT PRIMARY KEY, data BLOB)"
        )
    datas = [entry(i) for i in range(total)]
    t0 = time.perf_counter()
    for start in range(0, total, 1000):
        with db.write() as conn:
            conn.execute(
                table.insert(),
                [{"idx": i, "data": d} for i, d in enumerate(datas[start : start + 1000], start)],
            )
    elapsed = time.perf_counter() - t0
    db.close()
    return total / elapsed


def _process_appender(url: str, total: int, concurrency: int, start_at: float, out: Any) -> None:
    db, custody = open_log(url)

    async def run() -> tuple[float, float]:
        await custody.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t0 = time.time()
        await _appenders(custody, total, concurrency)
        t1 = time.time()
        await custody.close()
        return t0, t1

    out.put(asyncio.run(run()))
    db.close()


def multiprocess_appends_per_second(url: str, processes: int, each: int, concurrency: int) -> float:
    open_log(url)[0].close()  # create the log before the race
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 5  # all processes connected and warm before the clock starts
    procs = [
        ctx.Process(target=_process_appender, args=(url, each, concurrency, start_at, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    db = Database.connect(url)
    with db.read() as conn:
        size = conn.execute(sa.text("SELECT size FROM log_state")).scalar_one()
    db.close()
    assert size == 1 + processes * each, f"log has {size} entries"
    return processes * each / (max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))


# -- proofs ----------------------------------------------------------------------


def fill(url: str, size: int, progress: Callable[[int], None]) -> None:
    db, custody = open_log(url)
    done = custody.size()
    while done < size:
        n = min(1000, size - done)
        custody.append_sync([entry(i) for i in range(done, done + n)])
        done += n
        if done % 50_000 < 1000:
            progress(done)
    db.close()


def proof_latency_in_process(url: str, size: int, samples: int) -> dict[str, float]:
    db, custody = open_log(url)
    rng = random.Random(1)
    times = []
    for _ in range(samples):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        custody.inclusion_proof(index, size)
        times.append(time.perf_counter() - t0)
    # Baseline: one primary-key SELECT of an entry, through the same connection pool.
    base = []
    for _ in range(samples):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        custody.entry(index)
        base.append(time.perf_counter() - t0)
    db.close()
    return summary(times) | {"baseline_select_p50_ms": statistics.median(base) * 1000}


def proof_latency_over_http(url: str, data_dir: Path, size: int, samples: int) -> dict[str, float]:
    key_file = data_dir / "log.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (note.new_signer(ORIGIN, SEED).skey + "\n").encode())
    os.close(fd)
    port = free_port()
    env = {
        **os.environ,
        "EVIDENCE_DATA_DIR": str(data_dir),
        "EVIDENCE_DATABASE_URL": url,
        "EVIDENCE_LOG_KEY_FILE": str(key_file),
        "EVIDENCE_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        evidence_command("serve", "--host", "127.0.0.1", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, server)
        return asyncio.run(_http_samples(base_url, size, samples))
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _http_samples(base_url: str, size: int, samples: int) -> dict[str, float]:
    import aiohttp

    rng = random.Random(2)
    times, base = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(samples):
            index = rng.randrange(size)
            t0 = time.perf_counter()
            async with session.get(
                f"{base_url}/log/proof/inclusion?index={index}&size={size}"
            ) as r:
                assert r.status == 200, await r.text()
                await r.read()
            times.append(time.perf_counter() - t0)
        for _ in range(samples):  # baseline: the smallest request the server answers
            t0 = time.perf_counter()
            async with session.get(f"{base_url}/log/vkey") as r:
                await r.read()
            base.append(time.perf_counter() - t0)
    return summary(times) | {"baseline_vkey_p50_ms": statistics.median(base) * 1000}


# -- main --------------------------------------------------------------------------


def main() -> None:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "log_size_for_proofs": LOG_SIZE,
    }
    rows: list[tuple[str, str, str]] = []

    def record(key: str, label: str, value: float, unit: str, note_: str = "") -> None:
        results[key] = value
        rows.append(
            (label, f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3f} {unit}", note_)
        )
        print(f"  {label}: {rows[-1][1]} {note_}", flush=True)

    kinds = ["sqlite"] + (["postgresql"] if postgres_server_url() else [])
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as tmp:
        work = Path(tmp)
        for kind in kinds:
            print(f"{kind}:", flush=True)
            with fresh_database(kind, work) as url:
                bare = bare_inserts_per_second(url, 20_000)
            record(
                f"{kind}.bare_insert_per_s",
                f"{kind}: bare INSERT, batches of 1000 (baseline)",
                bare,
                "rows/s",
            )
            with fresh_database(kind, work) as url:
                v = appends_per_second(url, 2_000, 1)
            record(f"{kind}.append_1_per_s", f"{kind}: 1 appender", v, "entries/s")
            with fresh_database(kind, work) as url:
                v = appends_per_second(url, 8_000, 8)
            record(f"{kind}.append_8_per_s", f"{kind}: 8 concurrent appenders", v, "entries/s")
            with fresh_database(kind, work) as url:
                v = batched_appends_per_second(url, 50_000)
            record(
                f"{kind}.append_batch_per_s",
                f"{kind}: batches of 1000",
                v,
                "entries/s",
                f"({v / bare:.2f} x bare INSERT)",
            )
        if "postgresql" in kinds:
            with fresh_database("postgresql", work) as url:
                v = multiprocess_appends_per_second(url, 4, 10_000, 64)
            record(
                "postgresql.append_4proc_per_s",
                "postgresql: 4 processes x 64 appenders",
                v,
                "entries/s",
            )

        print(f"building a log of {LOG_SIZE:,} entries on SQLite for the proof timings", flush=True)
        data_dir = work / "proofs"
        data_dir.mkdir()
        url = f"sqlite:///{data_dir / 'evidence.db'}"
        t0 = time.perf_counter()
        fill(url, LOG_SIZE, lambda n: print(f"  {n:,} entries", flush=True))
        results["fill_seconds"] = time.perf_counter() - t0
        stats = proof_latency_in_process(url, LOG_SIZE, 2000)
        results["proof_in_process"] = stats
        rows.append(
            (
                f"inclusion proof at {LOG_SIZE:,}, in process",
                f"p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms",
                f"(one SELECT by key: {stats['baseline_select_p50_ms']:.3f} ms)",
            )
        )
        stats = proof_latency_over_http(url, data_dir, LOG_SIZE, 2000)
        results["proof_over_http"] = stats
        rows.append(
            (
                f"inclusion proof at {LOG_SIZE:,}, over HTTP",
                f"p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms",
                f"(GET /log/vkey: {stats['baseline_vkey_p50_ms']:.3f} ms)",
            )
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(rows, RESULTS / "latest.json")


if __name__ == "__main__":
    main()
