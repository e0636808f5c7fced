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
import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note
from evidence.chain.entries import CustodyEntry, LogCreated, parse_entry
from evidence.clock import Clock, format_time, utc_now
from evidence.db import Database
from evidence.errors import EvidenceError, IntegrityError, InvalidInput, NotFound, VerificationError
from evidence.log.highwater import HighWater
from evidence.log.keys import load_or_create_log_signer
from evidence.log.tables import log_checkpoints, log_entries, log_nodes, log_state, node_key
from evidence.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Entries per transaction: large enough that batching pays (one commit, one
# checkpoint per batch), small enough to keep a transaction short.
MAX_BATCH = 1000

Record = Callable[[Connection, list[int]], None]
# Runs in the append's transaction with the entry's index; may return the entry
# itself, made there (so that it can carry state read under the log's lock).
RecordOne = Callable[[Connection, int], "CustodyEntry | None"]


@dataclass(frozen=True)
class _Pending:
    data: bytes
    future: asyncio.Future[int]
    record: RecordOne | None


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


# This machine's high-water mark of the log, in the data directory (see evidence.log.highwater).
HIGH_WATER_FILE = "log-high-water.json"


def open_log(settings: Settings, db: Database, clock: Clock) -> CustodyLog:
    """The service's custody log in `db`, signed with the key the settings name."""
    signer = load_or_create_log_signer(settings.log_key_file, settings.log_origin)
    return CustodyLog.open(db, signer, clock=clock, high_water=settings.data_dir / HIGH_WATER_FILE)


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
    def __init__(
        self,
        db: Database,
        signer: note.Signer,
        clock: Clock,
        high_water: HighWater | None = None,
    ) -> None:
        self._db = db
        self._signer = signer
        self._verifier = signer.verifier
        self.clock = clock
        self.origin = signer.name
        self.vkey = self._verifier.vkey
        self._pending: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._append_lock = threading.Lock()  # one batch at a time from this process
        self._tip: _Tip | None = None
        self._high_water = high_water

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        db: Database,
        signer: note.Signer,
        *,
        clock: Clock | None = None,
        high_water: Path | None = None,
    ) -> CustodyLog:
        """Open the log in `db`, creating it (first entry ``log.created``) if it is empty.

        `high_water` names this machine's high-water mark file (see
        `evidence.log.highwater`). Raises IntegrityError if the database holds a log
        of another origin or key.
        """
        mark = HighWater(high_water) if high_water is not None else None
        custody = cls(db, signer, clock or utc_now, mark)
        with db.write() as conn:
            state = custody._lock_state(conn)
            if state.size == 0:
                conn.execute(log_state.update().values(origin=custody.origin, vkey=custody.vkey))
                created = LogCreated(
                    time=format_time(custody.clock()), origin=custody.origin, key=custody.vkey
                )
                data = created.to_bytes()
                _, tip = custody._append_locked(conn, state, [data], [merkle.leaf_hash(data)])
                log.info("log.created", origin=custody.origin, vkey=custody.vkey)
            elif (state.origin, state.vkey) != (custody.origin, custody.vkey):
                raise IntegrityError(
                    f"this database holds the log {state.origin!r} with key {state.vkey!r}; "
                    f"the configured key is {custody.vkey!r}"
                )
            else:
                tip = None
        if tip is not None:  # committed
            custody._tip = tip
            if mark is not None:
                mark.raise_to(tip.size, tip.root)
        return custody

    # -- appending ---------------------------------------------------------

    async def start(self) -> None:
        if self._writer is not None:
            raise EvidenceError("the custody log is already started")
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

    async def append(self, entry: CustodyEntry | bytes, *, record: RecordOne | None = None) -> int:
        """Append one entry; return its index once it is durable and covered by a checkpoint.

        `record(conn, index)`, if given, runs in the append's transaction (in a
        savepoint) before the entry is written: the rows that go with the entry
        (an item, say) commit with it or not at all. If `record` raises, this
        entry is left out of the batch and the exception is raised here; the
        other entries of the batch are not affected.
        """
        data = _entry_bytes(entry)
        if self._writer is None or self._wakeup is None or self._closing:
            raise EvidenceError("the custody log is not accepting appends (not started or closing)")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(data, future, record))
        self._wakeup.set()
        return await future

    async def append_built(self, build: Callable[[Connection, int], CustodyEntry]) -> int:
        """Append the entry that `build(conn, index)` makes inside the append's transaction.

        For entries whose fields depend on what the log holds at that moment,
        such as an item entry's ``prev`` (the item's latest entry): `build`
        reads it, and writes the rows that go with the entry, under the log's
        lock, so that two concurrent appends about one item cannot both claim
        the same ``prev``. If `build` raises, nothing is appended and the
        exception is raised here.
        """
        if self._writer is None or self._wakeup is None or self._closing:
            raise EvidenceError("the custody log is not accepting appends (not started or closing)")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(b"", future, build))
        self._wakeup.set()
        return await future

    def exclusive(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)` in a write transaction that no append (of any process) overlaps.

        It holds the lock every append takes, so what `work` reads and does
        cannot interleave with a `record` running inside an append: for
        decisions that must not race one, such as removing an object that no
        item holds. Blocking: call it from a worker thread. Keep it short:
        appends wait meanwhile.
        """
        with self._append_lock, self._db.write() as conn:
            self._lock_state(conn)
            return work(conn)

    async def append_many(self, entries: Sequence[CustodyEntry | bytes]) -> list[int]:
        return list(await asyncio.gather(*(self.append(e) for e in entries)))

    def append_sync(
        self, entries: Sequence[CustodyEntry | bytes], *, record: Record | None = None
    ) -> list[int]:
        """Append from a blocking caller (admin commands, benchmarks); return the indexes.

        `record(conn, indexes)`, if given, runs in the same transaction as the
        append: the rows that go with the entries (a device, say) are committed
        with them or not at all. With `record`, all entries go in one batch.
        """
        datas = [_entry_bytes(e) for e in entries]
        if record is not None:
            if len(datas) > MAX_BATCH:
                raise InvalidInput(f"at most {MAX_BATCH} entries in one recorded append")
            return _indexes(self._append_batch(datas, batch_record=record))
        indexes: list[int] = []
        for start in range(0, len(datas), MAX_BATCH):
            indexes.extend(_indexes(self._append_batch(datas[start : start + MAX_BATCH])))
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
                    outcomes = await asyncio.to_thread(
                        self._append_batch, [p.data for p in batch], [p.record for p in batch]
                    )
                except asyncio.CancelledError:
                    # The batch may or may not have committed: say so, never leave a waiter hanging.
                    unknown = EvidenceError(
                        "the log writer was stopped; the append's fate is unknown"
                    )
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(unknown)
                    raise
                except Exception as exc:  # every waiter learns why its append failed
                    log.error("log.append_failed", error=str(exc), entries=len(batch))
                    outcomes = [exc] * len(batch)
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
            if self._closing:
                return

    def _append_batch(
        self,
        datas: list[bytes],
        records: Sequence[RecordOne | None] = (),
        batch_record: Record | None = None,
    ) -> list[int | Exception]:
        """One transaction: each entry's index, or the exception its record raised."""
        datas = list(datas)
        leaves = [merkle.leaf_hash(d) for d in datas]  # before taking the lock
        with self._append_lock:
            with self._db.write() as conn:
                state = self._lock_state(conn)
                if state.size == 0:
                    raise IntegrityError("the log has not been created (open it first)")
                outcomes: list[int | Exception] = []
                kept: list[int] = []  # positions in `datas` of the entries that go in
                for position, record in itertools.zip_longest(range(len(datas)), records):
                    index = state.size + len(kept)
                    if record is not None:
                        try:
                            with conn.begin_nested():
                                built = record(conn, index)
                        except Exception as exc:
                            outcomes.append(exc)
                            continue
                        if built is not None:  # made under the lock (append_built)
                            datas[position] = built.to_bytes()
                            leaves[position] = merkle.leaf_hash(datas[position])
                    kept.append(position)
                    outcomes.append(index)
                if not kept:  # every record failed: nothing to append, nothing to sign
                    return outcomes
                indexes, tip = self._append_locked(
                    conn, state, [datas[k] for k in kept], [leaves[k] for k in kept]
                )
                if batch_record is not None:
                    batch_record(conn, indexes)
            self._tip = tip  # only once committed
            if self._high_water is not None:
                self._high_water.raise_to(tip.size, tip.root)
            return outcomes

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
        did. Otherwise from the database, checked: the newest stored checkpoint
        must be of the state's size and verify with the log's key, and the
        database's tree must still contain every checkpoint signed before, by
        this process and (through the high-water mark) on this machine. A
        database that went back in time is refused, never built upon: building
        on it would sign a second tree of a size already signed, a fork.
        """
        tip = self._tip
        if tip is not None and (tip.size, tip.root) == (state.size, state.root):
            return tip
        if tip is not None and state.size < tip.size:
            raise IntegrityError(
                f"the database's log has {state.size} entries but this process signed a "
                f"checkpoint of size {tip.size}: the database went back in time; refusing to sign"
            )
        if state.size == 0:
            return None
        newest = conn.execute(
            sa.select(log_checkpoints.c.size, log_checkpoints.c.note)
            .order_by(log_checkpoints.c.size.desc())
            .limit(1)
        ).one_or_none()
        if newest is None or newest.size != state.size:
            raise IntegrityError(
                f"the log's state says {state.size} entries but the newest stored checkpoint is "
                f"{newest.size if newest else 'missing'}; refusing to sign"
            )
        try:
            last = cp.verify_checkpoint(newest.note, self._verifier)
        except VerificationError as exc:
            raise IntegrityError(f"the last signed checkpoint does not verify: {exc}") from exc
        if last.size != state.size or last.root_hash != bytes(state.root or b""):
            raise IntegrityError("the log's state row does not match its newest signed checkpoint")
        for earlier in (tip, self._high_water_mark()):
            if earlier is not None and not self._contains(conn, state.size, earlier):
                raise IntegrityError(
                    f"the database's log does not contain the checkpoint of size {earlier.size} "
                    "signed before: it went back in time or was altered; refusing to sign"
                )
        subtrees = merkle.perfect_subtrees(0, state.size)
        stored = read_subtrees(conn, subtrees)
        return _Tip(last.size, last.root_hash, [stored[s] for s in subtrees])

    def _high_water_mark(self) -> _Tip | None:
        mark = self._high_water.read() if self._high_water is not None else None
        return None if mark is None else _Tip(mark.size, mark.root, [])

    @staticmethod
    def _contains(conn: Connection, size: int, earlier: _Tip) -> bool:
        """Whether the stored tree of `size` still has `earlier`'s root at `earlier.size`."""
        return earlier.size <= size and root_at(conn, earlier.size) == earlier.root

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


def _indexes(outcomes: list[int | Exception]) -> list[int]:
    """The indexes of a batch without per-entry records (where nothing can fail alone)."""
    indexes = [o for o in outcomes if isinstance(o, int)]
    assert len(indexes) == len(outcomes)
    return indexes


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
