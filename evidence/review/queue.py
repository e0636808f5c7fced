"""The queue of review-copy jobs: ingest adds one for every item, in the item's append."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from evidence.review.tables import jobs

_INSERT_JOB = jobs.insert()  # run for every item: built once


def queue_review_copy(conn: Connection, item: str, now: dt.datetime) -> None:
    """Queue the making of `item`'s review copy (a job a worker takes later)."""
    conn.execute(
        _INSERT_JOB, {"kind": "review-copy", "item_id": item, "state": "queued", "created_at": now}
    )


@dataclass(frozen=True)
class QueueReviewCopy:
    """Effect of an item's ``item.ingested`` append: its review-copy job (`queue_review_copy`)."""

    item: str
    now: dt.datetime

    def apply(self, conn: Connection, index: int) -> None:
        queue_review_copy(conn, self.item, self.now)
