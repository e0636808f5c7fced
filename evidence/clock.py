"""The service's clock and how times are written in entries (RFC 3339, UTC).

Kept apart so that commands that need the time but not the database (the
monitor) do not import SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds, as entries carry it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
