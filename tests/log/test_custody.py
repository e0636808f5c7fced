"""The custody log on a real database: one linear log, durable appends, proofs that verify."""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from loghelpers import ORIGIN, FixedClock
from sqlalchemy.engine import Connection

from evidence.cases.tables import cases
from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note, tree
from evidence.chain.entries import DeviceRevoked, LogCreated, parse_entry
from evidence.db import Database
from evidence.errors import EvidenceError, IntegrityError, InvalidInput, NotFound
from evidence.log.custody import Appended, CustodyLog
from evidence.log.fsck import fsck
from evidence.log.tables import log_checkpoints, log_entries, log_nodes, log_state, node_key


def revoked(i: int) -> DeviceRevoked:
    return DeviceRevoked(time="2026-11-24T10:00:00Z", device=f"device-{i}")


def assert_log_verifies(custody: CustodyLog) -> None:
    """Every entry is included in the latest checkpoint, and every checkpoint extends the last."""
    latest = custody.checkpoint()
    checkpoint = cp.verify_checkpoint(latest.note, custody.vkey)
    assert (checkpoint.size, checkpoint.root_hash) == (latest.size, latest.root_hash)
    for index in range(latest.size):
        proof = custody.inclusion_proof(index, latest.size)
        leaf = merkle.leaf_hash(custody.entry(index))
        merkle.verify_inclusion(leaf, index, latest.size, proof, checkpoint.root_hash)


def test_new_log_starts_with_log_created_naming_origin_and_key(custody: CustodyLog) -> None:
    latest = custody.checkpoint()
    assert latest.size == 1
    entry = parse_entry(custody.entry(0))
    assert isinstance(entry, LogCreated)
    assert entry.origin == ORIGIN
    assert entry.key == custody.vkey
    assert entry.time == "2026-11-24T09:30:01.000000Z"
    assert cp.verify_checkpoint(latest.note, custody.vkey).size == 1
    assert latest.root_hash == merkle.leaf_hash(custody.entry(0))


def test_reopening_keeps_the_log_and_adds_nothing(db: Database, custody: CustodyLog) -> None:
    again = CustodyLog.open(db, note.new_signer(ORIGIN, bytes(range(32))))
    assert again.checkpoint() == custody.checkpoint()


def test_opening_with_another_key_is_refused(db: Database, custody: CustodyLog) -> None:
    with pytest.raises(IntegrityError, match="holds the log"):
        CustodyLog.open(db, note.new_signer(ORIGIN, b"\x07" * 32))
    with pytest.raises(IntegrityError, match="holds the log"):
        CustodyLog.open(db, note.new_signer("other.example/log", bytes(range(32))))


async def test_concurrent_appenders_make_one_log_without_gaps(custody: CustodyLog) -> None:
    await custody.start()
    try:

        async def appender(worker: int) -> list[int]:
            return [(await custody.append(revoked(worker * 1000 + i))).index for i in range(40)]

        results = await asyncio.gather(*(appender(w) for w in range(8)))
    finally:
        await custody.close()
    indexes = sorted(i for r in results for i in r)
    assert indexes == list(range(1, 321))
    # Each appender's entries are where it was told they are.
    for worker, mine in enumerate(results):
        for i, index in enumerate(mine):
            assert parse_entry(custody.entry(index)) == revoked(worker * 1000 + i)
    assert custody.size() == 321
    assert_log_verifies(custody)


async def test_every_checkpoint_is_consistent_with_the_next(
    custody: CustodyLog, db: Database
) -> None:
    await custody.start()
    for batch in range(5):
        await asyncio.gather(*(custody.append(revoked(batch * 10 + i)) for i in range(batch + 1)))
    await custody.close()
    with db.read() as conn:
        notes = [
            row.note
            for row in conn.execute(sa.text("select note from log_checkpoints order by size"))
        ]
    checkpoints = [cp.verify_checkpoint(n, custody.vkey) for n in notes]
    assert [c.size for c in checkpoints] == sorted({c.size for c in checkpoints})
    for old, new in itertools.pairwise(checkpoints):
        proof = custody.consistency_proof(old.size, new.size)
        merkle.verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)


def test_append_sync_and_roots_at_every_size(custody: CustodyLog) -> None:
    datas = [revoked(i).to_bytes() for i in range(37)]
    assert custody.append_sync(datas) == list(range(1, 38))
    leaves = [merkle.leaf_hash(custody.entry(i)) for i in range(38)]
    assert custody.root(1) == leaves[0]
    assert custody.root(2) == merkle.node_hash(leaves[0], leaves[1])
    for size in range(1, 39):
        root = custody.root(size)
        if size:
            for old in (1, size // 2 or 1, size):
                proof = custody.consistency_proof(old, size)
                merkle.verify_consistency(old, size, proof, custody.root(old), root)
    assert custody.root(0) == merkle.EMPTY_ROOT


def test_invalid_entry_bytes_are_refused_and_nothing_is_appended(custody: CustodyLog) -> None:
    for bad in (b"", b"{}", b'{"type":"device.revoked"}', b'{"device":"x", "time":"t"}'):
        with pytest.raises(InvalidInput):
            custody.append_sync([bad])
    assert custody.size() == 1


async def test_append_before_start_or_after_close_is_an_error(custody: CustodyLog) -> None:
    with pytest.raises(EvidenceError, match="not accepting"):
        await custody.append(revoked(1))
    await custody.start()
    await custody.close()
    with pytest.raises(EvidenceError, match="not accepting"):
        await custody.append(revoked(1))


async def test_close_finishes_every_queued_append(custody: CustodyLog) -> None:
    await custody.start()
    tasks = [asyncio.create_task(custody.append(revoked(i))) for i in range(50)]
    await asyncio.sleep(0)  # all 50 are queued
    await custody.close()
    assert sorted([t.result().index for t in tasks]) == list(range(1, 51))


def test_read_errors(custody: CustodyLog) -> None:
    custody.append_sync([revoked(1)])
    with pytest.raises(NotFound):
        custody.entry(2)
    for index, size in ((0, 0), (2, 2), (0, 3), (-1, 1), (1, 1)):
        with pytest.raises(InvalidInput):
            custody.inclusion_proof(index, size)
    for old, new in ((2, 1), (0, 3), (-1, 1)):
        with pytest.raises(InvalidInput):
            custody.consistency_proof(old, new)
    for size in (-1, 3):
        with pytest.raises(InvalidInput):
            custody.root(size)


def test_refuses_to_sign_a_checkpoint_inconsistent_with_the_last(
    custody: CustodyLog, db: Database, signer: note.Signer
) -> None:
    custody.append_sync([revoked(i) for i in range(5)])  # size 6: frontier (2, 0), (1, 2)
    before = custody.checkpoint()
    with db.write() as conn:  # an altered stored hash on the frontier would fork the log
        conn.execute(
            log_nodes.update().where(log_nodes.c.node == node_key(2, 0)).values(hash=b"\x00" * 32)
        )
    # Another process (or this one after a restart) builds on what is stored, and refuses.
    other = CustodyLog.open(db, signer)
    with pytest.raises(IntegrityError, match="refusing to sign checkpoint 7"):
        other.append_sync([revoked(99)])
    assert custody.checkpoint() == before  # nothing of the failed append was committed
    with pytest.raises(NotFound):
        custody.entry(6)
    # The process that signed size 6 extends the tree it knows, not the altered row.
    assert custody.append_sync([revoked(100)]) == [6]
    checkpoint = custody.checkpoint()
    assert checkpoint.size == 7
    proof = _true_consistency(custody, before.size, 7)
    merkle.verify_consistency(before.size, 7, proof, before.root_hash, checkpoint.root_hash)


def _true_consistency(custody: CustodyLog, old: int, new: int) -> list[bytes]:
    """A consistency proof computed from the entries themselves, not from stored hashes."""
    leaves = [merkle.leaf_hash(custody.entry(i)) for i in range(new)]

    def mth(start: int, end: int) -> bytes:
        if end - start == 1:
            return leaves[start]
        k = 1 << ((end - start - 1).bit_length() - 1)
        return merkle.node_hash(mth(start, start + k), mth(start + k, end))

    return [mth(a, b) for a, b in tree.consistency_path(old, new)]


async def test_a_failed_batch_fails_its_appenders_and_the_log_goes_on(
    custody: CustodyLog, db: Database, signer: note.Signer
) -> None:
    node = log_nodes.c.node == node_key(0, 0)
    with db.write() as conn:
        original = conn.execute(sa.select(log_nodes.c.hash).where(node)).scalar_one()
        conn.execute(log_nodes.update().where(node).values(hash=b"\x01" * 32))
    reopened = CustodyLog.open(db, signer)  # knows only what is stored
    await reopened.start()
    results = await asyncio.gather(
        *(reopened.append(revoked(i)) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, IntegrityError) for r in results)
    with db.write() as conn:
        conn.execute(log_nodes.update().where(node).values(hash=original))
    assert (await reopened.append(revoked(2))).index == 1
    await reopened.close()


def test_database_url_errors() -> None:
    from evidence.errors import ConfigError

    for url in ("mysql://x/y", "sqlite://", "sqlite:///:memory:", "not a url"):
        with pytest.raises(ConfigError):
            Database.connect(url)


def test_unreachable_postgres_is_storage_unavailable() -> None:
    from evidence.errors import StorageUnavailable

    with pytest.raises(StorageUnavailable):
        Database.connect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_checkpoint_note_uses_the_logs_origin(custody: CustodyLog) -> None:
    text = custody.checkpoint().note
    assert text.startswith(ORIGIN + "\n1\n")
    root_b64 = base64.b64encode(custody.checkpoint().root_hash).decode()
    assert text.split("\n")[2] == root_b64


@dataclass(frozen=True)
class _InsertCase:
    """An effect that adds a row (a case) in the append's transaction."""

    case_id: str

    def apply(self, conn: Connection, index: int) -> None:
        conn.execute(
            cases.insert().values(
                id=self.case_id, reference=f"ref-{self.case_id}-{index}", created_at=FixedClock()()
            )
        )


def _insert_case(case_id: str) -> _InsertCase:
    return _InsertCase(case_id)


def _case_ids(db: Database) -> set[str]:
    with db.read() as conn:
        return {row.id for row in conn.execute(sa.select(cases.c.id))}


async def test_a_record_commits_with_its_entry_and_a_failing_one_drops_only_its_entry(
    custody: CustodyLog, db: Database
) -> None:
    await custody.start()
    results = await asyncio.gather(
        custody.append(revoked(1), _insert_case("a")),
        custody.append(revoked(2), _insert_case("a")),  # same id: this record fails
        custody.append(revoked(3)),
        custody.append(revoked(4), _insert_case("b")),
        return_exceptions=True,
    )
    await custody.close()
    assert isinstance(results[0], Appended)
    assert results[0].index == 1
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert [r.index for r in results[2:] if isinstance(r, Appended)] == [2, 3]  # no gap
    assert custody.size() == 4
    assert [parse_entry(custody.entry(i)) for i in (1, 2, 3)] == [
        revoked(1),
        revoked(3),
        revoked(4),
    ]
    assert _case_ids(db) == {"a", "b"}
    assert fsck(db, custody.vkey).problems == []


async def test_when_every_record_fails_nothing_is_appended_or_signed(
    custody: CustodyLog, db: Database
) -> None:
    custody.append_sync([revoked(0)], _insert_case("x"))
    before = custody.checkpoint()
    await custody.start()
    with pytest.raises(sa.exc.IntegrityError):
        await custody.append(revoked(1), _insert_case("x"))
    assert (await custody.append(revoked(2))).index == before.size
    await custody.close()


def test_a_failing_batch_record_leaves_no_entry(custody: CustodyLog, db: Database) -> None:
    custody.append_sync([revoked(0)], _insert_case("y"))
    before = custody.checkpoint()
    with pytest.raises(sa.exc.IntegrityError):
        custody.append_sync([revoked(1), revoked(2)], _insert_case("y"))
    assert custody.checkpoint() == before
    assert _case_ids(db) == {"y"}
    with pytest.raises(InvalidInput, match="at most 1000"):
        custody.append_sync([revoked(i) for i in range(1001)], _insert_case("z"))


def _roll_back_to(db: Database, size: int, root: bytes) -> None:
    """What restoring an older backup does to the log's tables."""
    with db.write() as conn:
        conn.execute(log_entries.delete().where(log_entries.c.idx >= size))
        conn.execute(log_checkpoints.delete().where(log_checkpoints.c.size > size))
        conn.execute(
            log_nodes.delete().where(
                log_nodes.c.node.in_(
                    [node_key(s.level, s.index) for s in _subtrees_beyond(size, size + 64)]
                )
            )
        )
        conn.execute(log_state.update().values(size=size, root=root))


def _subtrees_beyond(size: int, end: int) -> list[tree.Subtree]:
    """Every perfect subtree that a tree of `end` has and a tree of `size` does not."""
    found = []
    for level in range(8):
        for index in range(end >> level):
            if (index + 1) << level > size:
                found.append(tree.Subtree(level, index))
    return found


def test_a_database_rolled_back_under_a_running_log_is_not_signed_over(
    custody: CustodyLog, db: Database
) -> None:
    custody.append_sync([revoked(i) for i in range(4)])  # size 5
    at_five = custody.checkpoint()
    custody.append_sync([revoked(i) for i in range(4, 6)])  # size 7, signed and published
    _roll_back_to(db, 5, at_five.root_hash)
    with pytest.raises(IntegrityError, match="went back in time"):
        custody.append_sync([revoked(99)])
    assert custody.size() == 5  # nothing was signed over the restored state


def test_the_high_water_mark_catches_a_rollback_after_a_restart(
    db: Database, signer: note.Signer, tmp_path: Path
) -> None:
    mark = tmp_path / "high-water.json"
    first = CustodyLog.open(db, signer, high_water=mark)
    first.append_sync([revoked(i) for i in range(4)])
    at_five = first.checkpoint()
    first.append_sync([revoked(i) for i in range(4, 6)])
    _roll_back_to(db, 5, at_five.root_hash)
    restarted = CustodyLog.open(db, signer, high_water=mark)  # a new process: no memory
    with pytest.raises(IntegrityError, match="does not contain the checkpoint of size 7"):
        restarted.append_sync([revoked(99)])
    # A restored log re-grown past size 7 with other entries is refused too.
    other = CustodyLog.open(db, signer)  # no mark: it signs (monitors catch this)...
    other.append_sync([revoked(i) for i in range(100, 103)])
    with pytest.raises(IntegrityError, match="does not contain the checkpoint of size 7"):
        CustodyLog.open(db, signer, high_water=mark).append_sync([revoked(99)])


def test_starting_the_writer_twice_is_an_error(custody: CustodyLog) -> None:
    async def twice() -> None:
        await custody.start()
        try:
            with pytest.raises(EvidenceError, match="already started"):
                await custody.start()
        finally:
            await custody.close()

    asyncio.run(twice())


async def test_entries_built_under_the_lock_see_each_others_rows(
    custody: CustodyLog, db: Database
) -> None:
    """Builders read state, and effects write rows, under the log's lock: no two see the same."""

    @dataclass(frozen=True)
    class Counted:
        """An entry naming how many cases there are when it is built."""

        def build(self, conn: Connection, index: int) -> DeviceRevoked:
            seen = conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar_one()
            return DeviceRevoked(time="2026-11-24T10:00:00Z", device=f"c{seen}")

    @dataclass(frozen=True)
    class OneMoreCase:
        def apply(self, conn: Connection, index: int) -> None:
            seen = conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar_one()
            conn.execute(
                cases.insert().values(
                    id=f"c{seen}", reference=f"r{index}", created_at=FixedClock()()
                )
            )

    @dataclass(frozen=True)
    class Failing:
        def build(self, conn: Connection, index: int) -> DeviceRevoked:
            raise InvalidInput("no")

    await custody.start()
    results = await asyncio.gather(
        *(custody.append(Counted(), OneMoreCase()) for _ in range(10)),
        custody.append(Failing()),
        return_exceptions=True,
    )
    await custody.close()
    assert sorted(r.index for r in results if isinstance(r, Appended)) == list(range(1, 11))
    assert isinstance(results[-1], InvalidInput)
    devices = {parse_entry(custody.entry(i)).device for i in range(1, 11)}  # type: ignore[attr-defined]
    assert devices == {f"c{n}" for n in range(10)}
    assert _case_ids(db) == devices
    assert fsck(db, custody.vkey).problems == []
