"""The service's clock and how times are written in entries (RFC 3339, UTC).

Kept apart so that commands that need the time but not the database (the
monitor) do not import SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds, as entries carry it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stored_utc(when: dt.datetime) -> dt.datetime:
    """A time read back from the database, in UTC.

    SQLite hands back naive datetimes (they were stored in UTC); PostgreSQL its
    own zone object, which `email.utils` does not take for UTC.
    """
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


# The one clock type: the app holds one (`evidence.web.keys.CLOCK`), and the
# custody log, logins and admin commands all read the time through it.
Clock = Callable[[], dt.datetime]
