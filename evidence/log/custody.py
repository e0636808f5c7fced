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
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note, tree
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


class Effect(Protocol):
    """What goes with an entry: rows written in the append's transaction, under the log's lock.

    Each effect belongs to the package whose tables it writes (an item's row,
    a viewing, a device's enrolment) and is a typed value, not a callback: the
    log runs `apply` with the entry's index in a savepoint before the entry is
    written. If it raises, that entry is left out of its batch (no gap: the
    next entry takes its index) and the caller of `append` gets the exception.
    """

    def apply(self, conn: Connection, index: int) -> None: ...


class EntryBuilder(Protocol):
    """An entry whose fields are read under the log's lock, such as an item entry's
    ``prev`` (the item's latest entry): two concurrent appends about one item cannot
    both take the same one. Built in the append's transaction, before its effects."""

    def build(self, conn: Connection, index: int) -> CustodyEntry: ...


Entry = CustodyEntry | EntryBuilder | bytes


@dataclass(frozen=True)
class Appended:
    """An appended entry: its index and exact bytes, the signed checkpoint of the batch
    that committed it, and (when asked for: `append(..., prove=True)`) its inclusion
    proof in that checkpoint's tree: together, a receipt checkable offline."""

    index: int
    data: bytes
    checkpoint: str  # the signed note of the batch's checkpoint (size: the batch's end)
    proof: list[bytes] | None


@dataclass(frozen=True)
class _Request:
    """One entry to append (its bytes, or a builder), what goes with it, and whether
    its inclusion proof is wanted."""

    data: bytes
    builder: EntryBuilder | None
    effects: tuple[Effect, ...]
    prove: bool


@dataclass(frozen=True)
class _Pending:
    request: _Request
    future: asyncio.Future[Appended]


@dataclass(frozen=True)
class _Tip:
    """The last checkpoint this log signed: its size, root and the frontier of its tree."""

    size: int
    root: bytes
    frontier: list[bytes]  # hashes of tree.perfect_subtrees(0, size)


@dataclass(frozen=True)
class _Batch:
    """What one append under the lock made: the indexes, the new tip, the signed
    checkpoint, and the inclusion proofs asked for (by position in the batch)."""

    indexes: list[int]
    tip: _Tip
    checkpoint: str
    proofs: dict[int, list[bytes]]


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


def read_subtrees(conn: Connection, subtrees: Iterable[tree.Subtree]) -> dict[tree.Subtree, bytes]:
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
    known: dict[tree.Subtree, bytes] | None = None,
) -> list[bytes]:
    """The hash of each range (a subtree of some tree), from stored perfect-subtree hashes."""
    parts = [tree.perfect_subtrees(start, end) for start, end in ranges]
    have = dict(known or {})
    have.update(read_subtrees(conn, (s for p in parts for s in p if s not in have)))
    return [tree.fold_subtrees([have[s] for s in p]) for p in parts]


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
                tip = custody._append_locked(conn, state, [data], [merkle.leaf_hash(data)]).tip
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

    async def append(self, entry: Entry, *effects: Effect, prove: bool = False) -> Appended:
        """Append one entry with its `effects`; return it once durable and in a signed checkpoint.

        The one way the service appends. `entry` is the entry, its canonical
        bytes, or an `EntryBuilder` for an entry that must read the log's state
        under its lock. Each `Effect` runs in the append's transaction (one
        savepoint for the entry), so the rows that go with the entry commit with
        it or not at all; if one raises, this entry is left out of the batch and
        the exception is raised here, and the batch's other entries are not
        affected. With `prove`, the result carries the entry's inclusion proof
        in the batch's checkpoint, computed from hashes the batch already holds:
        a receipt without another read of the database.
        """
        if self._writer is None or self._wakeup is None or self._closing:
            raise EvidenceError("the custody log is not accepting appends (not started or closing)")
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(_request(entry, effects, prove), future))
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

    def append_sync(self, entries: Sequence[Entry], *effects: Effect) -> list[int]:
        """`append` for blocking callers (admin commands, benchmarks); return the indexes.

        The same batches as `append`, from the calling thread, for a log that
        need not be started. With `effects` (applied to each entry), all entries
        go in one transaction and any failure appends none of them.
        """
        requests = [_request(e, effects, False) for e in entries]
        if effects:
            if len(requests) > MAX_BATCH:
                raise InvalidInput(f"at most {MAX_BATCH} entries in one append with effects")
            return _indexes(self._append_batch(requests, all_or_nothing=True))
        indexes: list[int] = []
        for start in range(0, len(requests), MAX_BATCH):
            indexes.extend(_indexes(self._append_batch(requests[start : start + MAX_BATCH])))
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
                        self._append_batch, [p.request for p in batch]
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
        self, requests: Sequence[_Request], *, all_or_nothing: bool = False
    ) -> list[Appended | Exception]:
        """One transaction: each entry appended (with its inclusion proof where asked),
        or the exception its builder or effects raised (with `all_or_nothing`, the
        first such exception is raised and nothing is appended)."""
        datas = [r.data for r in requests]
        leaves = [merkle.leaf_hash(d) for d in datas]  # before taking the lock
        with self._append_lock:
            with self._db.write() as conn:
                state = self._lock_state(conn)
                if state.size == 0:
                    raise IntegrityError("the log has not been created (open it first)")
                failed: dict[int, Exception] = {}  # by position in `requests`
                kept: list[int] = []  # positions in `requests` of the entries that go in
                for position, request in enumerate(requests):
                    index = state.size + len(kept)
                    if request.builder is not None or request.effects:
                        try:
                            with conn.begin_nested():
                                if request.builder is not None:  # made under the lock
                                    datas[position] = request.builder.build(conn, index).to_bytes()
                                    leaves[position] = merkle.leaf_hash(datas[position])
                                for effect in request.effects:
                                    effect.apply(conn, index)
                        except Exception as exc:
                            if all_or_nothing:
                                raise
                            failed[position] = exc
                            continue
                    kept.append(position)
                if not kept:  # every entry failed: nothing to append, nothing to sign
                    return [failed[p] for p in range(len(requests))]
                wanted = [n for n, k in enumerate(kept) if requests[k].prove]
                batch = self._append_locked(
                    conn, state, [datas[k] for k in kept], [leaves[k] for k in kept], wanted
                )
            self._tip = batch.tip  # only once committed
            if self._high_water is not None:
                self._high_water.raise_to(batch.tip.size, batch.tip.root)
            outcomes: dict[int, Appended | Exception] = dict(failed)
            for n, position in enumerate(kept):
                outcomes[position] = Appended(
                    batch.indexes[n], datas[position], batch.checkpoint, batch.proofs.get(n)
                )
            return [outcomes[p] for p in range(len(requests))]

    def _lock_state(self, conn: Connection) -> Any:
        # A row lock on PostgreSQL; SQLite's write transaction is already exclusive.
        query = sa.select(log_state).where(log_state.c.id == 1).with_for_update()
        row = conn.execute(query).one_or_none()
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
        subtrees = tree.perfect_subtrees(0, state.size)
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
        self,
        conn: Connection,
        state: Any,
        datas: list[bytes],
        leaves: list[bytes],
        prove: Sequence[int] = (),
    ) -> _Batch:
        """Append under the state lock: entries, subtree hashes, a checked and signed checkpoint.

        `prove`: positions in `datas` whose inclusion proofs in the new tree to
        return. Every hash they need is at hand: a left sibling of a new leaf
        is in the old tree's frontier or was completed by this append, a right
        sibling is made of subtrees this append completed.
        """
        last = self._last_signed(conn, state)
        size = last.size if last else 0
        frontier = last.frontier if last else []
        created, new_frontier = tree.append_leaves(size, frontier, leaves)
        new_size, new_root = size + len(datas), tree.fold_subtrees(new_frontier)
        known = dict(zip(tree.perfect_subtrees(0, size), frontier, strict=True)) if size else {}
        known.update(created)
        if last is not None:
            self._check_consistent(conn, last, new_size, new_root, known)
        signed = cp.sign_checkpoint(cp.Checkpoint(self.origin, new_size, new_root), self._signer)
        self._insert_rows(conn, size, datas, created)
        conn.execute(log_checkpoints.insert().values(size=new_size, root=new_root, note=signed))
        conn.execute(
            log_state.update().where(log_state.c.id == 1).values(size=new_size, root=new_root)
        )
        proofs = {
            n: range_hashes(conn, tree.inclusion_path(size + n, new_size), known) for n in prove
        }
        return _Batch(
            list(range(size, new_size)), _Tip(new_size, new_root, new_frontier), signed, proofs
        )

    def _insert_rows(
        self,
        conn: Connection,
        size: int,
        datas: list[bytes],
        created: list[tuple[tree.Subtree, bytes]],
    ) -> None:
        """Insert entries and subtree hashes (`Database.bulk_insert`: one statement each)."""
        idxs = list(range(size, size + len(datas)))
        self._db.bulk_insert(conn, log_entries, {"idx": idxs, "data": datas})
        nodes = [node_key(s.level, s.index) for s, _ in created]
        self._db.bulk_insert(conn, log_nodes, {"node": nodes, "hash": [h for _, h in created]})

    def _check_consistent(
        self,
        conn: Connection,
        last: _Tip,
        new_size: int,
        new_root: bytes,
        known: dict[tree.Subtree, bytes],
    ) -> None:
        """Refuse to sign a checkpoint that does not extend the last one this log signed."""
        try:
            proof = range_hashes(conn, tree.consistency_path(last.size, new_size), known)
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
            return range_hashes(conn, tree.inclusion_path(index, size))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        with self._db.read() as conn:
            current = _current_size(conn)
            if not 0 <= old <= new <= current:
                raise InvalidInput(
                    f"need 0 <= old <= new <= {current} (the log's size), got old {old}, new {new}"
                )
            return range_hashes(conn, tree.consistency_path(old, new))

    def root(self, size: int) -> bytes:
        with self._db.read() as conn:
            current = _current_size(conn)
            if not 0 <= size <= current:
                raise InvalidInput(f"need 0 <= size <= {current}, got {size}")
            return root_at(conn, size)


def _indexes(outcomes: list[Appended | Exception]) -> list[int]:
    """The indexes of a batch without per-entry records (where nothing can fail alone)."""
    indexes = [o.index for o in outcomes if isinstance(o, Appended)]
    assert len(indexes) == len(outcomes)
    return indexes


def _current_size(conn: Connection) -> int:
    size = conn.execute(sa.select(log_state.c.size).where(log_state.c.id == 1)).scalar_one()
    return int(size)


def _request(entry: Entry, effects: tuple[Effect, ...], prove: bool) -> _Request:
    if isinstance(entry, CustodyEntry | bytes):
        return _Request(_entry_bytes(entry), None, effects, prove)
    return _Request(b"", entry, effects, prove)


def _entry_bytes(entry: CustodyEntry | bytes) -> bytes:
    """The bytes to log; raw bytes must already be a valid canonical entry."""
    if isinstance(entry, CustodyEntry):
        return entry.to_bytes()
    try:
        parse_entry(entry)
    except VerificationError as exc:
        raise InvalidInput(f"not a valid custody entry: {exc}") from exc
    return bytes(entry)
