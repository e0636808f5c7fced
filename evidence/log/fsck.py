"""`evidence fsck`: re-derive the custody log from its entries and compare with what is stored.

It trusts nothing stored but the entries' bytes and the verifier key it is
given. In one streaming pass over the entries and the checkpoints, in one
snapshot of the database (so appends going on meanwhile do not disturb it),
with memory bounded by a chunk of entries, it:

* checks entries are numbered 0..n-1 without gaps, that each is a valid
  canonical entry, and that entry 0 is ``log.created`` naming this key;
* recomputes every leaf and subtree hash and compares it with the stored one;
* recomputes the root at every checkpoint's size and compares it with the
  checkpoint, whose signature it verifies with the key;
* checks the stored subtree hashes number exactly what the entries produce;
* checks that the newest checkpoint covers every entry and that the state row
  (size, root, origin, key) says what the entries and that checkpoint say.

Checkpoints are mutually consistent when each one's root is the root of a
prefix of the same entries, which is what the pass checks for every one.

Each problem is reported with the entry, subtree or checkpoint it concerns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note
from evidence.chain.entries import LogCreated, parse_entry
from evidence.db import Database
from evidence.errors import VerificationError
from evidence.log.tables import NODE_LEVEL_SHIFT, log_checkpoints, log_entries, log_nodes, log_state

CHUNK = 10_000  # entries read per query: bounded memory whatever the log's size
MAX_PROBLEMS = 1000  # past this many the log is plainly broken; stop listing


@dataclass
class FsckReport:
    entries: int = 0
    nodes: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def _chunks(conn: Connection, table: sa.Table, key: sa.Column[int]) -> Iterator[Any]:
    """Rows of `table` in `key` order, CHUNK at a time."""
    last = -1
    while True:
        rows = conn.execute(
            sa.select(key, *(c for c in table.c if c is not key))
            .where(key > last)
            .order_by(key)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def _stored_nodes(conn: Connection, level: int, first: int, last: int) -> dict[int, bytes]:
    lo, hi = (level << NODE_LEVEL_SHIFT) | first, (level << NODE_LEVEL_SHIFT) | last
    rows = conn.execute(
        sa.select(log_nodes.c.node, log_nodes.c.hash).where(log_nodes.c.node.between(lo, hi))
    )
    return {node & ((1 << NODE_LEVEL_SHIFT) - 1): bytes(h) for node, h in rows}


def fsck(db: Database, vkey: str) -> FsckReport:
    verifier = note.parse_vkey(vkey)
    report = FsckReport()
    with db.read() as conn:
        _check(conn, verifier, report)
    return report


def _check(conn: Connection, verifier: note.Verifier, report: FsckReport) -> None:
    if not sa.inspect(conn).has_table(log_state.name):
        report.problem("this database holds no custody log (no log_state table)")
        return
    state = conn.execute(sa.select(log_state).where(log_state.c.id == 1)).one_or_none()
    if state is None:
        report.problem("the log's state row is missing")
        return
    # Checkpoints stream in size order beside the entries: memory stays small
    # however many there are.
    checkpoints = _verified_checkpoints(conn, verifier, report)
    pending = next(checkpoints, None)  # the next checkpoint to compare
    last_checkpoint: tuple[int, bytes] | None = None

    size = 0  # entries re-derived so far
    frontier: list[bytes] = []  # hashes of merkle.perfect_subtrees(0, size)
    buffer: list[tuple[int, bytes]] = []
    bad_roots: list[int] = []  # checkpoint sizes whose root the entries do not give

    def flush() -> None:
        """Re-derive the hashes of the buffered entries; compare them and the checkpoint roots."""
        nonlocal size, frontier, pending, last_checkpoint
        first, leaves = size, [merkle.leaf_hash(data) for _, data in buffer]
        created: list[tuple[merkle.Subtree, bytes]] = []
        end = first + len(leaves)
        while size < end or (pending is not None and pending[0] == size):
            # Advance to the next checkpoint size in this chunk, or to the chunk's end.
            cut = pending[0] if pending is not None and pending[0] <= end else end
            new, frontier = merkle.append_leaves(size, frontier, leaves[size - first : cut - first])
            created.extend(new)
            size = cut
            if pending is not None and pending[0] == size:
                if merkle.fold_subtrees(frontier) != pending[1]:
                    bad_roots.append(size)
                last_checkpoint, pending = pending, next(checkpoints, None)
            elif size == end:
                break
        _compare_nodes(conn, created, report)
        buffer.clear()

    for expected, (idx, data) in enumerate(_chunks(conn, log_entries, log_entries.c.idx)):
        if idx != expected:
            report.problem(f"entries {expected}..{idx - 1} are missing")
            break  # nothing after a gap can be re-derived
        if idx >= state.size:
            report.problem(f"entry {idx} and any after it are beyond the log's size {state.size}")
            break
        data = bytes(data)
        try:
            entry = parse_entry(data)
        except VerificationError as exc:
            report.problem(f"entry {idx}: not a valid custody entry: {exc}")
        else:
            if idx == 0 and not (
                isinstance(entry, LogCreated)
                and entry.origin == verifier.name
                and entry.key == verifier.vkey
            ):
                report.problem("entry 0: is not log.created with this log's origin and key")
        buffer.append((idx, data))
        if len(buffer) >= CHUNK:
            flush()
    flush()
    report.entries = size
    if size == 0:
        report.problem("the log has no entries: entry 0 (log.created) is missing")
    if bad_roots:
        later = f" (and {len(bad_roots) - 1} later checkpoints)" if len(bad_roots) > 1 else ""
        report.problem(
            f"checkpoint {bad_roots[0]}{later}: signed root is not the root re-derived from "
            f"entries 0..{bad_roots[0] - 1}"
        )
    # Every checkpoint whose root matched is the root of a prefix of the same
    # entries, so those checkpoints are consistent with each other; the ones
    # left over claim entries that are not there.
    while pending is not None:
        report.problem(f"checkpoint {pending[0]}: is beyond the {size} entries re-derived")
        pending = next(checkpoints, None)
    _check_state(state, size, last_checkpoint, verifier, report)
    want_nodes = 2 * size - bin(size).count("1")
    report.nodes = conn.execute(sa.select(sa.func.count()).select_from(log_nodes)).scalar_one()
    if report.nodes != want_nodes:
        report.problem(
            f"{report.nodes} subtree hashes are stored where {size} entries make {want_nodes}"
        )


def _check_state(
    state: Any,
    size: int,
    last_checkpoint: tuple[int, bytes] | None,
    verifier: note.Verifier,
    report: FsckReport,
) -> None:
    """The state row must say what the entries and the newest checkpoint say."""
    if state.size != size:
        report.problem(f"the log's state says {state.size} entries, {size} were re-derived")
    if size and (last_checkpoint is None or last_checkpoint[0] != size):
        newest = last_checkpoint[0] if last_checkpoint else "none"
        report.problem(
            f"no signed checkpoint covers all {size} entries (the newest verified is {newest})"
        )
    elif size and last_checkpoint is not None and bytes(state.root or b"") != last_checkpoint[1]:
        report.problem("the log's state row root is not the newest checkpoint's root")
    if (state.origin, state.vkey) != (verifier.name, verifier.vkey):
        report.problem("the log's state row names another origin or key than this log's")


def _compare_nodes(
    conn: Connection, created: list[tuple[merkle.Subtree, bytes]], report: FsckReport
) -> None:
    """Compare stored subtree hashes: leaves with the entries, others with their stored children.

    Checking each stored hash against its own inputs (not against hashes
    re-derived all the way from the entries) names the one altered row
    instead of every ancestor of it.
    """
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for subtree, h in created:
        by_level.setdefault(subtree.level, []).append((subtree.index, h))
    for level, computed in sorted(by_level.items()):
        first, last = computed[0][0], computed[-1][0]
        stored = _stored_nodes(conn, level, first, last)
        children = _stored_nodes(conn, level - 1, 2 * first, 2 * last + 1) if level else {}
        for idx, leaf in computed:
            if idx not in stored:
                report.problem(f"{_subtree_name(level, idx)}: stored hash is missing")
            elif level == 0 and stored[idx] != leaf:
                report.problem(f"entry {idx}: stored leaf hash does not match the entry's bytes")
            elif (
                level
                and 2 * idx in children
                and 2 * idx + 1 in children
                and stored[idx] != merkle.node_hash(children[2 * idx], children[2 * idx + 1])
            ):
                report.problem(
                    f"{_subtree_name(level, idx)}: stored hash does not match its children"
                )


def _subtree_name(level: int, idx: int) -> str:
    if level == 0:
        return f"entry {idx}"
    first, last = idx << level, ((idx + 1) << level) - 1
    return f"subtree (level {level}, index {idx}) over entries {first}..{last}"


def _verified_checkpoints(
    conn: Connection, verifier: note.Verifier, report: FsckReport
) -> Iterator[tuple[int, bytes]]:
    """Signed checkpoints that verify, as (size, root) in size order; problems for the others."""
    for size, root, signed in _chunks(conn, log_checkpoints, log_checkpoints.c.size):
        try:
            checkpoint = cp.verify_checkpoint(signed, verifier)
        except VerificationError as exc:
            report.problem(f"checkpoint {size}: signature or format does not verify: {exc}")
            continue
        if checkpoint.size != size or checkpoint.root_hash != bytes(root):
            report.problem(f"checkpoint {size}: stored size or root differs from its signed note")
            continue
        report.checkpoints += 1
        yield size, checkpoint.root_hash
