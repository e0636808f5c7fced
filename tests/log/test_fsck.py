"""`fsck` re-derives the log from its entries and names exactly what was altered."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from evidence.chain import note
from evidence.chain.entries import DeviceRevoked
from evidence.db import Database
from evidence.log.custody import CustodyLog
from evidence.log.fsck import fsck
from evidence.log.tables import log_checkpoints, log_entries, log_nodes, log_state, node_key


@pytest.fixture
def filled(custody: CustodyLog) -> CustodyLog:
    """A log of 1 + 40 entries in batches of 1, 2, ... so it has many checkpoints."""
    n = 0
    for batch in range(1, 9):
        custody.append_sync(
            [DeviceRevoked(time="2026-11-24T10:00:00Z", device=f"d{n + i}") for i in range(batch)]
        )
        n += batch
    custody.append_sync([DeviceRevoked(time="2026-11-24T10:00:00Z", device=f"d{n}")] * 4)
    assert custody.size() == 41
    return custody


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_clean_log_has_no_problems(db: Database, filled: CustodyLog) -> None:
    report = fsck(db, filled.vkey)
    assert report.ok
    assert (report.entries, report.nodes, report.checkpoints) == (41, 2 * 41 - 3, 10)


def test_a_changed_byte_in_an_entry_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        data = conn.execute(
            sa.select(log_entries.c.data).where(log_entries.c.idx == 17)
        ).scalar_one()
        conn.execute(
            log_entries.update().where(log_entries.c.idx == 17).values(data=flip_byte(data, 30))
        )
    problems = fsck(db, filled.vkey).problems
    assert "entry 17: stored leaf hash does not match the entry's bytes" in problems
    # Checkpoints 22, 29, 37 and 41 signed a root that these entries no longer give.
    assert any(p.startswith("checkpoint 22 (and 3 later checkpoints)") for p in problems)


def test_an_entry_changed_into_invalid_json_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_entries.update().where(log_entries.c.idx == 3).values(data=b"{ }"))
    problems = fsck(db, filled.vkey).problems
    assert any(p.startswith("entry 3: not a valid custody entry") for p in problems)


def test_a_changed_stored_hash_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        node = node_key(3, 1)  # entries 8..15
        h = conn.execute(sa.select(log_nodes.c.hash).where(log_nodes.c.node == node)).scalar_one()
        conn.execute(
            log_nodes.update().where(log_nodes.c.node == node).values(hash=flip_byte(h, 0))
        )
    problems = fsck(db, filled.vkey).problems
    assert (
        "subtree (level 3, index 1) over entries 8..15: stored hash does not match its children"
        in problems
    )
    # Its parent was computed from the true hash, so it no longer matches the altered child.
    assert (
        "subtree (level 4, index 0) over entries 0..15: stored hash does not match its children"
        in problems
    )
    assert len(problems) == 2


def test_a_changed_leaf_hash_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(
            log_nodes.update().where(log_nodes.c.node == node_key(0, 40)).values(hash=b"\x00" * 32)
        )
    assert (
        "entry 40: stored leaf hash does not match the entry's bytes"
        in fsck(db, filled.vkey).problems
    )


def test_a_missing_stored_hash_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_nodes.delete().where(log_nodes.c.node == node_key(1, 5)))
    problems = fsck(db, filled.vkey).problems
    assert "subtree (level 1, index 5) over entries 10..11: stored hash is missing" in problems
    assert "78 subtree hashes are stored where 41 entries make 79" in problems


def test_a_changed_byte_in_a_checkpoint_is_named(db: Database, filled: CustodyLog) -> None:
    with db.read() as conn:
        signed = conn.execute(
            sa.select(log_checkpoints.c.note).where(log_checkpoints.c.size == 11)
        ).scalar_one()
    for at in (0, len(signed) - 10):  # in the origin and in the signature
        with db.write() as conn:
            conn.execute(
                log_checkpoints.update()
                .where(log_checkpoints.c.size == 11)
                .values(note=signed[:at] + chr(ord(signed[at]) ^ 1) + signed[at + 1 :])
            )
        problems = fsck(db, filled.vkey).problems
        assert len(problems) == 1
        assert problems[0].startswith("checkpoint 11: signature or format does not verify")


def test_a_changed_checkpoint_root_column_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(
            log_checkpoints.update().where(log_checkpoints.c.size == 7).values(root=b"\x00" * 32)
        )
    assert fsck(db, filled.vkey).problems == [
        "checkpoint 7: stored size or root differs from its signed note"
    ]


def test_a_removed_entry_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_entries.delete().where(log_entries.c.idx.in_([20, 21])))
    problems = fsck(db, filled.vkey).problems
    assert "entries 20..21 are missing" in problems
    assert "the log's state says 41 entries, 20 were re-derived" in problems
    assert "checkpoint 22: is beyond the 20 entries re-derived" in problems


def test_another_key_verifies_nothing(db: Database, filled: CustodyLog) -> None:
    other = note.new_signer(filled.origin, b"\x09" * 32).verifier.vkey
    problems = fsck(db, other).problems
    assert "entry 0: is not log.created with this log's origin and key" in problems
    assert sum("signature or format does not verify" in p for p in problems) == 10


def test_a_missing_state_row_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_state.delete())
    assert fsck(db, filled.vkey).problems == ["the log's state row is missing"]


def test_a_changed_state_row_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_state.update().values(root=b"\x00" * 32))
    assert fsck(db, filled.vkey).problems == [
        "the log's state row root is not the newest checkpoint's root"
    ]
    with db.write() as conn:
        conn.execute(log_state.update().values(root=filled.checkpoint().root_hash, origin="x"))
    assert fsck(db, filled.vkey).problems == [
        "the log's state row names another origin or key than this log's"
    ]


def test_a_deleted_newest_checkpoint_is_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_checkpoints.delete().where(log_checkpoints.c.size == 41))
    assert fsck(db, filled.vkey).problems == [
        "no signed checkpoint covers all 41 entries (the newest verified is 37)"
    ]


def test_entries_beyond_the_state_are_named(db: Database, filled: CustodyLog) -> None:
    with db.write() as conn:
        conn.execute(log_entries.insert().values(idx=41, data=filled.entry(40)))
    problems = fsck(db, filled.vkey).problems
    assert problems == ["entry 41 and any after it are beyond the log's size 41"]


def test_a_database_without_a_log_is_named(tmp_path: Path) -> None:
    empty = Database.connect(f"sqlite:///{tmp_path / 'empty.db'}", migrate=False)
    try:
        vkey = note.new_signer("x.example/log", b"\x03" * 32).verifier.vkey
        assert fsck(empty, vkey).problems == [
            "this database holds no custody log (no log_state table)"
        ]
    finally:
        empty.close()
    migrated = Database.connect(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        problems = fsck(migrated, vkey).problems
        assert "the log has no entries: entry 0 (log.created) is missing" in problems
    finally:
        migrated.close()


def test_fsck_sees_one_snapshot_while_appends_go_on(db: Database, filled: CustodyLog) -> None:
    """Appends from another thread during fsck do not make it report problems."""
    import threading

    stop = threading.Event()

    def append_forever() -> None:
        while not stop.is_set():
            filled.append_sync([DeviceRevoked(time="2026-11-24T10:00:00Z", device="busy")] * 20)

    writer = threading.Thread(target=append_forever)
    writer.start()
    try:
        for _ in range(5):
            assert fsck(db, filled.vkey).problems == []
    finally:
        stop.set()
        writer.join()
