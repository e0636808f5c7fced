"""An item's custody history: every entry about it, each with its inclusion proof.

The history is found by walking the ``prev`` chain back from the item's latest
entry to its ``item.ingested``; every step is checked (the entry exists, is in
the checkpoint, parses, is about the item, and its ``prev`` goes back). Each
proof is the entry's inclusion proof in the newest checkpoint, read in the
caller's snapshot, so the whole history verifies offline with the log's key.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from evidence.chain import merkle
from evidence.chain.entries import ItemIngested, item_prev_refs, parse_entry
from evidence.errors import IntegrityError, VerificationError
from evidence.log.custody import range_hashes
from evidence.log.tables import log_checkpoints, log_entries


@dataclass(frozen=True)
class ProvenEntry:
    index: int
    data: bytes
    proof: list[bytes]


@dataclass(frozen=True)
class ItemHistory:
    """An item's entries, oldest first, proven in the checkpoint of `size` (`note`)."""

    size: int
    checkpoint: str
    entries: list[ProvenEntry]
    actors: frozenset[str]  # the people the entries name


def item_history(conn: Connection, item: str, last_entry: int) -> ItemHistory:
    """The history of `item` whose latest entry is `last_entry`, in `conn`'s snapshot."""
    checkpoint = conn.execute(
        sa.select(log_checkpoints.c.size, log_checkpoints.c.note)
        .order_by(log_checkpoints.c.size.desc())
        .limit(1)
    ).one()
    size = int(checkpoint.size)
    found: list[ProvenEntry] = []
    actors: set[str] = set()
    index: int | None = last_entry
    while index is not None:
        data, prev, actor = _entry_about(conn, item, index, size)
        found.append(
            ProvenEntry(index, data, range_hashes(conn, merkle.inclusion_path(index, size)))
        )
        if actor is not None:
            actors.add(actor)
        index = prev
    found.reverse()
    return ItemHistory(size, checkpoint.note, found, frozenset(actors))


def _entry_about(
    conn: Connection, item: str, index: int, size: int
) -> tuple[bytes, int | None, str | None]:
    """Entry `index` of `item`'s chain: its bytes, its ``prev`` and its actor, checked."""
    if index >= size:
        raise IntegrityError(f"item {item}'s entry {index} is not in the newest checkpoint")
    stored = conn.execute(
        sa.select(log_entries.c.data).where(log_entries.c.idx == index)
    ).scalar_one_or_none()
    if stored is None:
        raise IntegrityError(f"item {item}'s chain names entry {index}, which is missing")
    data = bytes(stored)
    try:
        entry = parse_entry(data)
    except VerificationError as exc:
        raise IntegrityError(f"entry {index} does not parse: {exc}") from exc
    refs = item_prev_refs(entry)
    if item not in refs:
        raise IntegrityError(f"entry {index} in item {item}'s chain is not about it")
    prev = refs[item]
    if prev is not None and prev >= index:
        raise IntegrityError(f"entry {index} of item {item} names a later prev {prev}")
    if prev is None and not isinstance(entry, ItemIngested):
        raise IntegrityError(f"item {item}'s chain ends at entry {index}, not item.ingested")
    actor = getattr(entry, "actor", None)
    return data, prev, actor if isinstance(actor, str) else None
