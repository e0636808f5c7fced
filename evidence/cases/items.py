"""Cases and their items' metadata, as people read them (blocking: run in a thread).

An ITEM is ``{"id", "case", "device", "seq", "kind", "media_type", "sha256",
"size", "captured_at", "ingested_at", "ingested_entry", "last_entry",
"chain"}``; ``chain`` lists what the device's seq/prev chain showed when the
item arrived (gaps, late or duplicate sequence numbers; ``[]`` when in order).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from evidence.cases.tables import cases, items
from evidence.chain.note import b64encode
from evidence.clock import stored_utc
from evidence.db import Database
from evidence.devices.tables import devices
from evidence.errors import NotFound
from evidence.log.history import item_history


def _item_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "case": row.case_id,
        "device": row.device_id,
        "seq": row.seq,
        "kind": row.kind,
        "media_type": row.media_type,
        "sha256": row.sha256,
        "size": row.size,
        "captured_at": row.captured_at,
        "ingested_at": stored_utc(row.ingested_at).isoformat(),
        "ingested_entry": row.ingested_entry,
        "last_entry": row.last_entry,
        "chain": json.loads(row.chain),
    }


def all_cases(db: Database) -> list[tuple[str, str]]:
    with db.read() as conn:
        rows = conn.execute(sa.select(cases.c.id, cases.c.reference).order_by(cases.c.reference))
        return [(row.id, row.reference) for row in rows]


def case_reference(db: Database, case: str) -> str:
    with db.read() as conn:
        reference = conn.execute(
            sa.select(cases.c.reference).where(cases.c.id == case)
        ).scalar_one_or_none()
    if reference is None:
        raise NotFound(f"no case {case}")
    return str(reference)


def case_items(db: Database, case: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            sa.select(items).where(items.c.case_id == case).order_by(items.c.ingested_entry)
        )
        return [_item_json(row) for row in rows]


def item_case(db: Database, item: str) -> str:
    """The case of `item`; `NotFound` if there is no such item."""
    with db.read() as conn:
        case = conn.execute(
            sa.select(items.c.case_id).where(items.c.id == item)
        ).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no item {item}")
    return str(case)


def item_detail(db: Database, item: str) -> dict[str, Any]:
    """ITEM plus the signed manifest's exact text, its signature and the device's key."""
    with db.read() as conn:
        row = conn.execute(
            sa.select(items, devices.c.vkey.label("device_key"))
            .select_from(items.outerjoin(devices, devices.c.id == items.c.device_id))
            .where(items.c.id == item)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no item {item}")
    return {
        **_item_json(row),
        "manifest": bytes(row.manifest).decode("utf-8"),
        "signature": b64encode(bytes(row.signature)),
        "device_key": row.device_key,
    }


def custody_history(db: Database, item: str) -> tuple[dict[str, Any], frozenset[str]]:
    """Every entry about `item` with its proof in the newest checkpoint, in one snapshot,
    and the ids of the people the entries name (for `evidence.people.accounts.user_names`)."""
    with db.read() as conn:
        last = conn.execute(
            sa.select(items.c.last_entry).where(items.c.id == item)
        ).scalar_one_or_none()
        if last is None:
            raise NotFound(f"no item {item}")
        history = item_history(conn, item, int(last))
    found = {
        "item": item,
        "size": history.size,
        "checkpoint": history.checkpoint,
        "entries": [
            {
                "index": e.index,
                "entry": b64encode(e.data),
                "proof": [b64encode(h) for h in e.proof],
            }
            for e in history.entries
        ],
    }
    return found, history.actors
