"""Viewings: which content requests are logged, and the entry that logs one.

Before any byte goes out, each content request that *starts a viewing*
appends ``item.accessed`` (the person's id, ``"view"`` or ``"download"``, the
item, ``prev``: the item's previous entry), built under the log's lock
(`AccessEntry`) with the effects that move the item's latest entry and record
the viewing, so concurrent viewers never fork the item's chain. The rule: a request starts a
viewing unless it *continues* one, and it continues one only when all of
these hold:

* it is not a download (every ``?download=1`` is logged);
* it asks for one byte range that starts after byte 0 (a player fetching
  more of a recording, or seeking in it);
* the same person's last logged access to this item (view or download) was
  less than `VIEWING_WINDOW` ago.

The window counts from the last *logged* access, not the last request, so a
viewing that goes on longer than the window is logged again. The last logged
access is kept in the database (``item_viewings``, written in the append's
own transaction), so every server process applies the same rule. The
object is opened first (a store that cannot open it: 503, nothing logged);
if the append then fails, nothing is sent: 503. The reverse can happen: an
entry logged for a request whose bytes then failed to arrive (the store or
the client failed); an access is never sent unlogged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from evidence.cases.records import item_tip
from evidence.cases.tables import items
from evidence.chain.entries import ItemAccessed
from evidence.clock import format_time, stored_utc
from evidence.content.tables import item_viewings
from evidence.db import Database
from evidence.errors import NotFound
from evidence.ids import CaseId, ItemId, UserId

# A player fetches a recording in many range requests, and a person pauses,
# seeks and resumes; a break longer than this is a new viewing, logged again.
VIEWING_WINDOW = dt.timedelta(minutes=30)


def starts_viewing(
    *,
    download: bool,
    span: tuple[int, int] | None,
    last_access: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """Whether a content request starts a viewing (is logged); see the module docstring."""
    if download or span is None or span[0] == 0 or last_access is None:
        return True
    return now - last_access >= VIEWING_WINDOW


@dataclass(frozen=True)
class ContentTarget:
    """What serving an item's content needs: where it is, and the asker's last access."""

    item: ItemId
    case: CaseId
    object_key: str
    media_type: str
    size: int
    last_access: dt.datetime | None


def content_target(db: Database, item: ItemId, actor: UserId) -> ContentTarget:
    with db.read() as conn:
        row = conn.execute(
            sa.select(items.c.case_id, items.c.object_key, items.c.media_type, items.c.size).where(
                items.c.id == item
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"no item {item}")
        last = conn.execute(
            sa.select(item_viewings.c.accessed_at).where(
                item_viewings.c.item_id == item, item_viewings.c.actor_id == actor
            )
        ).scalar_one_or_none()
    return ContentTarget(
        item,
        CaseId(row.case_id),
        row.object_key,
        row.media_type,
        int(row.size),
        None if last is None else stored_utc(last),
    )


@dataclass(frozen=True)
class AccessEntry:
    """The ``item.accessed`` entry of `actor`'s `action` on `item`, built under the log's
    lock: its ``prev`` is the item's latest entry at that moment (`item_tip`)."""

    item: ItemId
    actor: UserId
    action: str
    now: dt.datetime

    def build(self, conn: Connection, index: int) -> ItemAccessed:
        prev = item_tip(conn, self.item)
        if prev is None:
            raise NotFound(f"no item {self.item}")
        return ItemAccessed(
            time=format_time(self.now),
            item=self.item,
            prev=prev,
            actor=self.actor,
            action=self.action,
        )


@dataclass(frozen=True)
class RecordViewing:
    """Effect of an ``item.accessed`` entry: it is the person's last logged access (the
    viewing it starts), which is what `starts_viewing` is asked about next time."""

    item: ItemId
    actor: UserId
    action: str
    now: dt.datetime

    def apply(self, conn: Connection, index: int) -> None:
        viewing = {"action": self.action, "entry": index, "accessed_at": self.now}
        key = (item_viewings.c.item_id == self.item, item_viewings.c.actor_id == self.actor)
        if conn.execute(item_viewings.update().where(*key).values(**viewing)).rowcount == 0:
            conn.execute(
                item_viewings.insert().values(item_id=self.item, actor_id=self.actor, **viewing)
            )
