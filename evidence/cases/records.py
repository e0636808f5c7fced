"""Recording an item as it is ingested: its row, with what its device's chain shows.

Called by ingest inside the append of the item's ``item.ingested`` entry, so the
row commits with the entry or not at all. The chain findings say what the
device's ``seq``/``prev`` chain looked like when the item arrived: every missing
seq below it (in compact ranges), a repeated seq, a ``prev`` that does not match,
or an item that arrived late.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from evidence.cases.tables import items
from evidence.chain import manifest as mf

# A device's chain findings are one line each: past this many gaps, the rest are counted.
MAX_GAP_RANGES = 20


# Statements run for every item, built once: SQLAlchemy then only binds their values.
_INGESTED = sa.select(items.c.ingested_entry).where(items.c.id == sa.bindparam("item"))
_DEVICE_ITEMS = sa.select(items.c.id, items.c.seq).where(
    items.c.device_id == sa.bindparam("device")
)
_INSERT_ITEM = items.insert()


def ingested_index(conn: Connection, item: str) -> int | None:
    """The index of `item`'s `item.ingested` entry; None if it was never ingested."""
    entry = conn.execute(_INGESTED, {"item": item}).scalar_one_or_none()
    return None if entry is None else int(entry)


@dataclass(frozen=True)
class SignedManifest:
    """A checked manifest with its exact bytes and the device's signature over them."""

    manifest: mf.CaptureManifest
    text: bytes
    signature: bytes


def record_item(
    conn: Connection, signed: SignedManifest, item: str, key: str, index: int, now: dt.datetime
) -> None:
    """The item's row, with what its device's chain shows, inside the append of its
    `item.ingested` at `index`."""
    manifest = signed.manifest
    conn.execute(
        _INSERT_ITEM,
        {
            "id": item,
            "case_id": manifest.case,
            "device_id": manifest.device,
            "seq": manifest.seq,
            "prev": manifest.prev,
            "kind": manifest.kind,
            "media_type": manifest.media_type,
            "sha256": manifest.sha256,
            "size": manifest.size,
            "captured_at": manifest.captured_at,
            "manifest": signed.text,
            "signature": signed.signature,
            "object_key": key,
            "ingested_entry": index,
            "last_entry": index,
            "ingested_at": now,
            "chain": json.dumps(chain_findings(conn, manifest, item)),
        },
    )


def chain_findings(conn: Connection, manifest: mf.CaptureManifest, item: str) -> list[str]:
    """What the device's seq/prev chain shows as this item arrives (empty when in order)."""
    findings = []
    rows = conn.execute(_DEVICE_ITEMS, {"device": manifest.device}).all()
    by_seq: dict[int, list[str]] = {}
    for other, seq in rows:
        by_seq.setdefault(seq, []).append(other)
    if manifest.seq in by_seq:
        findings.append(
            f"another item has this device's seq {manifest.seq}: {by_seq[manifest.seq]}"
        )
    gaps = _missing_ranges(sorted(by_seq), manifest.seq)
    if gaps:
        verb = "has" if len(gaps) == 1 and gaps[0][0] == gaps[0][1] else "have"
        findings.append(f"gap: seq {_ranges_text(gaps)} of this device {verb} not arrived")
    before = by_seq.get(manifest.seq - 1)
    if before is not None and manifest.prev not in before:
        findings.append(f"prev does not match the item with seq {manifest.seq - 1}: {before}")
    later = sorted(s for s in by_seq if s > manifest.seq)
    if later:
        findings.append(f"late: arrived after seq {later[-1]} of this device")
    return findings


def _missing_ranges(arrived: list[int], seq: int) -> list[tuple[int, int]]:
    """The seqs below `seq` that are not in `arrived` (sorted), as inclusive ranges."""
    gaps: list[tuple[int, int]] = []
    expected = 1
    for present in arrived:
        if present >= seq:
            break
        if present > expected:
            gaps.append((expected, present - 1))
        expected = max(expected, present + 1)
    if expected < seq:
        gaps.append((expected, seq - 1))
    return gaps


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    """Ranges as one line, such as "1-2, 4, 6-9"; past MAX_GAP_RANGES, the rest are counted."""
    shown = [str(a) if a == b else f"{a}-{b}" for a, b in ranges[:MAX_GAP_RANGES]]
    more = len(ranges) - len(shown)
    return ", ".join(shown) + (f" and {more} more ranges" if more else "")


@dataclass(frozen=True)
class RecordItem:
    """Effect of an item's ``item.ingested`` append: the item's row (`record_item`)."""

    signed: SignedManifest
    item: str
    key: str
    now: dt.datetime

    def apply(self, conn: Connection, index: int) -> None:
        record_item(conn, self.signed, self.item, self.key, index, self.now)


def item_tip(conn: Connection, item: str) -> int | None:
    """The index of `item`'s latest entry (the ``prev`` of its next); None: no such item."""
    prev = conn.execute(
        sa.select(items.c.last_entry).where(items.c.id == item)
    ).scalar_one_or_none()
    return None if prev is None else int(prev)


@dataclass(frozen=True)
class MoveItemTip:
    """Effect of any later entry about an item: it becomes the item's latest entry."""

    item: str

    def apply(self, conn: Connection, index: int) -> None:
        conn.execute(items.update().where(items.c.id == self.item).values(last_entry=index))
