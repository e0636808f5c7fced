"""The custody log: one linear, append-only RFC 6962 log in the database.

Appends are batched: callers in one process queue their entries, one writer
task takes everything queued and commits it in one transaction, and each caller
gets its index back only after that commit (durable). The transaction locks the
log's state row, so several processes on one PostgreSQL database (or an admin
command beside the server on SQLite) still make one log, with no gaps, no
duplicates and no forks.

In the same transaction the log stores the new subtree hashes, computes the new
root, checks it is consistent with the last checkpoint it signed (a consistency
proof built from the stored hashes, verified with `merkle.verify_consistency`
against the root in that signed note), and only then signs and stores the new
checkpoint. Every batch ends with a checkpoint, so every entry is covered by
one as soon as its append returns.

Reads (entries, roots, proofs) fetch O(log n) stored subtree hashes, never
recompute over all entries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note
from evidence.chain.entries import CustodyEntry, LogCreated, parse_entry
from evidence.db import Database
from evidence.db.schema import log_checkpoints, log_entries, log_nodes, log_state, node_key
from evidence.errors import EvidenceError, IntegrityError, InvalidInput, NotFound, VerificationError

log = structlog.get_logger(__name__)

# Entries per transaction: large enough that batching pays (one commit, one
# checkpoint per batch), small enough to keep a transaction short.
MAX_BATCH = 1000

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds, as entries carry it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class _Tip:
    """The last checkpoint this log signed: its size, root and the frontier of its tree."""

    size: int
    root: bytes
    frontier: list[bytes]  # hashes of merkle.perfect_subtrees(0, size)


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root_hash: bytes
    note: str


def read_subtrees(
    conn: Connection, subtrees: Iterable[merkle.Subtree]
) -> dict[merkle.Subtree, bytes]:
    """Stored hashes of the given perfect subtrees; IntegrityError if one is missing."""
    wanted = set(subtrees)
    if not wanted:
        return {}
    keys = {node_key(s.level, s.index): s for s in wanted}
    rows = conn.execute(
        sa.select(log_nodes.c.node, log_nodes.c.hash).where(log_nodes.c.node.in_(keys))
    )
    found = {keys[key]: bytes(h) for key, h in rows}
    missing = wanted - found.keys()
    if missing:
        raise IntegrityError(
            f"stored subtree hashes missing: {sorted((s.level, s.index) for s in missing)}"
        )
    return found


def range_hashes(
    conn: Connection,
    ranges: Sequence[tuple[int, int]],
    known: dict[merkle.Subtree, bytes] | None = None,
) -> list[bytes]:
    """The hash of each range (a subtree of some tree), from stored perfect-subtree hashes."""
    parts = [merkle.perfect_subtrees(start, end) for start, end in ranges]
    have = dict(known or {})
    have.update(read_subtrees(conn, (s for p in parts for s in p if s not in have)))
    return [merkle.fold_subtrees([have[s] for s in p]) for p in parts]


def root_at(conn: Connection, size: int) -> bytes:
    return range_hashes(conn, [(0, size)])[0] if size else merkle.EMPTY_ROOT


class CustodyLog:
    def __init__(self, db: Database, signer: note.Signer, clock: Clock) -> None:
        self._db = db
        self._signer = signer
        self._verifier = signer.verifier
        self.clock = clock
        self.origin = signer.name
        self.vkey = self._verifier.vkey
        self._pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._append_lock = threading.Lock()  # one batch at a time from this process
        self._tip: _Tip | None = None

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(cls, db: Database, signer: note.Signer, *, clock: Clock | None = None) -> CustodyLog:
        """Open the log in `db`, creating it (first entry ``log.created``) if it is empty.

        Raises IntegrityError if the database holds a log of another origin or key.
        """
        custody = cls(db, signer, clock or utc_now)
        with db.write() as conn:
            state = custody._lock_state(conn)
            if state.size == 0:
                conn.execute(log_state.update().values(origin=custody.origin, vkey=custody.vkey))
                created = LogCreated(
                    time=format_time(custody.clock()), origin=custody.origin, key=custody.vkey
                )
                data = created.to_bytes()
                _, custody._tip = custody._append_locked(
                    conn, state, [data], [merkle.leaf_hash(data)]
                )
                log.info("log.created", origin=custody.origin, vkey=custody.vkey)
            elif (state.origin, state.vkey) != (custody.origin, custody.vkey):
                raise IntegrityError(
                    f"this database holds the log {state.origin!r} with key {state.vkey!r}; "
                    f"the configured key is {custody.vkey!r}"
                )
        return custody

    # -- appending ---------------------------------------------------------

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="custody-log-writer")

    async def close(self) -> None:
        """Stop taking appends, finish every append already queued, stop the writer."""
        if self._writer is None or self._wakeup is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._writer
        self._writer = None

    async def append(self, entry: CustodyEntry | bytes) -> int:
        """Append one entry; return its index once it is durable and covered by a checkpoint."""
        data = _entry_bytes(entry)
        if self._writer is None or self._wakeup is None or self._closing:
            raise EvidenceError("the custody log is not accepting appends (not started or closing)")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((data, future))
        self._wakeup.set()
        return await future

    async def append_many(self, entries: Sequence[CustodyEntry | bytes]) -> list[int]:
        return list(await asyncio.gather(*(self.append(e) for e in entries)))

    def append_sync(self, entries: Sequence[CustodyEntry | bytes]) -> list[int]:
        """Append in one transaction from a blocking caller (admin commands, benchmarks)."""
        datas = [_entry_bytes(e) for e in entries]
        indexes: list[int] = []
        for start in range(0, len(datas), MAX_BATCH):
            indexes.extend(self._append_batch(datas[start : start + MAX_BATCH]))
        return indexes

    async def _write_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    indexes = await asyncio.to_thread(self._append_batch, [d for d, _ in batch])
                except Exception as exc:  # every waiter learns why its append failed
                    log.error("log.append_failed", error=str(exc), entries=len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), index in zip(batch, indexes, strict=True):
                    if not future.done():
                        future.set_result(index)
            if self._closing:
                return

    def _append_batch(self, datas: list[bytes]) -> list[int]:
        leaves = [merkle.leaf_hash(d) for d in datas]  # before taking the lock
        with self._append_lock:
            with self._db.write() as conn:
                state = self._lock_state(conn)
                if state.size == 0:
                    raise IntegrityError("the log has not been created (open it first)")
                indexes, tip = self._append_locked(conn, state, datas, leaves)
            self._tip = tip  # only once committed
            return indexes

    def _lock_state(self, conn: Connection) -> Any:
        query = sa.select(log_state)
        if self._db.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query.where(log_state.c.id == 1)).one_or_none()
        if row is None:
            raise IntegrityError("the log's state row is missing")
        return row

    def _last_signed(self, conn: Connection, state: Any) -> _Tip | None:
        """The last checkpoint this log signed and the frontier of its tree.

        From memory when the state row shows nobody appended since this process
        did; otherwise from the database, with the checkpoint's signature checked.
        """
        tip = self._tip
        if tip is not None and (tip.size, tip.root) == (state.size, state.root):
            return tip
        if state.size == 0:
            return None
        signed = conn.execute(
            sa.select(log_checkpoints.c.note).where(log_checkpoints.c.size == state.size)
        ).scalar_one_or_none()
        if signed is None:
            raise IntegrityError(f"no signed checkpoint for the log's size {state.size}")
        try:
            last = cp.verify_checkpoint(signed, self._verifier)
        except VerificationError as exc:
            raise IntegrityError(f"the last signed checkpoint does not verify: {exc}") from exc
        subtrees = merkle.perfect_subtrees(0, state.size)
        stored = read_subtrees(conn, subtrees)
        return _Tip(last.size, last.root_hash, [stored[s] for s in subtrees])

    def _append_locked(
        self, conn: Connection, state: Any, datas: list[bytes], leaves: list[bytes]
    ) -> tuple[list[int], _Tip]:
        """Append under the state lock: entries, subtree hashes, a checked and signed checkpoint."""
        last = self._last_signed(conn, state)
        size = last.size if last else 0
        frontier = last.frontier if last else []
        created, new_frontier = merkle.append_leaves(size, frontier, leaves)
        new_size, new_root = size + len(datas), merkle.fold_subtrees(new_frontier)
        if last is not None:
            known = dict(zip(merkle.perfect_subtrees(0, size), frontier, strict=True))
            known.update(created)
            self._check_consistent(conn, last, new_size, new_root, known)
        signed = cp.sign_checkpoint(cp.Checkpoint(self.origin, new_size, new_root), self._signer)
        self._insert_rows(conn, size, datas, created)
        conn.execute(log_checkpoints.insert().values(size=new_size, root=new_root, note=signed))
        conn.execute(
            log_state.update().where(log_state.c.id == 1).values(size=new_size, root=new_root)
        )
        return list(range(size, new_size)), _Tip(new_size, new_root, new_frontier)

    def _insert_rows(
        self,
        conn: Connection,
        size: int,
        datas: list[bytes],
        created: list[tuple[merkle.Subtree, bytes]],
    ) -> None:
        """Insert entries and subtree hashes the fastest way each database offers.

        Only constant SQL text; every value goes as a bound parameter.
        """
        idxs = list(range(size, size + len(datas)))
        nodes = [node_key(s.level, s.index) for s, _ in created]
        hashes = [h for _, h in created]
        if self._db.dialect == "postgresql":  # one statement per table, arrays unnested
            conn.exec_driver_sql(
                "INSERT INTO log_entries (idx, data)"
                " SELECT * FROM unnest(%s::bigint[], %s::bytea[])",
                (idxs, datas),
            )
            conn.exec_driver_sql(
                "INSERT INTO log_nodes (node, hash)"
                " SELECT * FROM unnest(%s::bigint[], %s::bytea[])",
                (nodes, hashes),
            )
        else:  # the sqlite3 module's executemany
            conn.exec_driver_sql(
                "INSERT INTO log_entries (idx, data) VALUES (?, ?)",
                list(zip(idxs, datas, strict=True)),
            )
            conn.exec_driver_sql(
                "INSERT INTO log_nodes (node, hash) VALUES (?, ?)",
                list(zip(nodes, hashes, strict=True)),
            )

    def _check_consistent(
        self,
        conn: Connection,
        last: _Tip,
        new_size: int,
        new_root: bytes,
        known: dict[merkle.Subtree, bytes],
    ) -> None:
        """Refuse to sign a checkpoint that does not extend the last one this log signed."""
        try:
            proof = range_hashes(conn, merkle.consistency_path(last.size, new_size), known)
            merkle.verify_consistency(last.size, new_size, proof, last.root, new_root)
        except VerificationError as exc:
            log.critical("log.inconsistent", size=new_size, error=str(exc))
            raise IntegrityError(
                f"refusing to sign checkpoint {new_size}: not consistent with the last "
                f"signed checkpoint ({exc})"
            ) from exc

    # -- reading (blocking: call from a thread) ----------------------------

    def checkpoint(self) -> SignedCheckpoint:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(log_checkpoints).order_by(log_checkpoints.c.size.desc()).limit(1)
            ).one_or_none()
        if row is None:
            raise NotFound("the log has no checkpoint yet")
        return SignedCheckpoint(row.size, bytes(row.root), row.note)

    def size(self) -> int:
        return self.checkpoint().size

    def entry(self, index: int) -> bytes:
        with self._db.read() as conn:
            data = conn.execute(
                sa.select(log_entries.c.data).where(log_entries.c.idx == index)
            ).scalar_one_or_none()
        if data is None:
            raise NotFound(f"no entry {index}")
        return bytes(data)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._db.read() as conn:
            current = _current_size(conn)
            if not 0 <= index < size <= current:
                raise InvalidInput(
                    f"need 0 <= index < size <= {current} (the log's size), "
                    f"got index {index}, size {size}"
                )
            return range_hashes(conn, merkle.inclusion_path(index, size))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        with self._db.read() as conn:
            current = _current_size(conn)
            if not 0 <= old <= new <= current:
                raise InvalidInput(
                    f"need 0 <= old <= new <= {current} (the log's size), got old {old}, new {new}"
                )
            return range_hashes(conn, merkle.consistency_path(old, new))

    def root(self, size: int) -> bytes:
        with self._db.read() as conn:
            current = _current_size(conn)
            if not 0 <= size <= current:
                raise InvalidInput(f"need 0 <= size <= {current}, got {size}")
            return root_at(conn, size)


def _current_size(conn: Connection) -> int:
    size = conn.execute(sa.select(log_state.c.size).where(log_state.c.id == 1)).scalar_one()
    return int(size)


def _entry_bytes(entry: CustodyEntry | bytes) -> bytes:
    """The bytes to log; raw bytes must already be a valid canonical entry."""
    if isinstance(entry, CustodyEntry):
        return entry.to_bytes()
    try:
        parse_entry(entry)
    except VerificationError as exc:
        raise InvalidInput(f"not a valid custody entry: {exc}") from exc
    return bytes(entry)
