"""Throttling of failed logins, counted in the database every server shares.

Failed logins are counted in ``login_failures`` per account (keyed by the
SHA-256 of the name given, so that a password typed into the name field is not
stored) and per client address (per /64 for IPv6). Past `ACCOUNT_FAILURES` for
one name or `ADDRESS_FAILURES` from one address within `FAILURE_WINDOW`,
logins get 429 with Retry-After before any password is checked, alike for
names that exist and names that do not. An attempt is counted *before* its
password is checked and uncounted if it succeeds (`reserve_attempt`,
`release_attempt`), so that parallel guesses cannot slip past the limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence

import sqlalchemy as sa

from evidence.clock import stored_utc
from evidence.db import Database
from evidence.people.tables import login_failures, web_sessions

# Five wrong guesses
# per account in a quarter of an hour is generous for a person who mistyped
# and useless for guessing; twenty per address lets an office share a NAT.
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20
FAILURE_WINDOW = dt.timedelta(minutes=15)
# Expired windows and sessions removed at each successful login, at most.
CLEANUP_BATCH = 1000


Limit = tuple[str, int]  # a login_failures key and its limit


def throttle_keys(name: str, address: str) -> list[Limit]:
    """The counters one login attempt counts against: its account and its address."""
    account = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return [(f"user:{account}", ACCOUNT_FAILURES), (f"addr:{address}", ADDRESS_FAILURES)]


_COUNT = login_failures.c["count"]  # `.count` of a row or a collection is tuple's method


def reserve_attempt(db: Database, limits: Sequence[Limit], now: dt.datetime) -> int | None:
    """Count one attempt against each counter, unless one is at its limit.

    Returns None when the attempt may go ahead (it counts as a failure until
    `release_attempt`), else the seconds until it may be tried again. Safe
    with several servers: the counters' rows are locked, in key order.
    """
    keys = sorted(key for key, _ in limits)
    with db.write() as conn:
        for key in keys:  # make sure each row exists, so that it can be locked
            conn.execute(
                db.insert(login_failures)
                .values(key=key, count=0, window_start=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
        rows = conn.execute(
            sa.select(login_failures.c.key, _COUNT, login_failures.c.window_start)
            .where(login_failures.c.key.in_(keys))
            .order_by(login_failures.c.key)
            .with_for_update()
        ).all()
        # key -> (failures, end of the window) for counters whose window is still open
        open_windows = {
            key: (count, stored_utc(start) + FAILURE_WINDOW)
            for key, count, start in rows
            if stored_utc(start) + FAILURE_WINDOW > now
        }
        waits = [
            (open_windows[key][1] - now).total_seconds()
            for key, limit in limits
            if key in open_windows and open_windows[key][0] >= limit
        ]
        if waits:
            return max(1, math.ceil(max(waits)))
        for key in keys:
            counter = login_failures.update().where(login_failures.c.key == key)
            if key in open_windows:
                conn.execute(counter.values({_COUNT: _COUNT + 1}))
            else:  # a new window opens with this attempt
                conn.execute(counter.values({_COUNT: 1, login_failures.c.window_start: now}))
    return None


def release_attempt(db: Database, limits: Sequence[Limit]) -> None:
    """Uncount an attempt that `reserve_attempt` counted: it succeeded."""
    keys = sorted(key for key, _ in limits)
    with db.write() as conn:
        for key in keys:
            conn.execute(
                login_failures.update()
                .where(login_failures.c.key == key, _COUNT > 0)
                .values({_COUNT: _COUNT - 1})
            )
        conn.execute(login_failures.delete().where(login_failures.c.key.in_(keys), _COUNT <= 0))


def forget_expired(db: Database, now: dt.datetime) -> None:
    """Remove counters whose window has passed and sessions that have expired.

    Rows another server holds locked are skipped (they are in use), so this
    never waits for, or deadlocks with, a login in progress.
    """
    cutoff = now - FAILURE_WINDOW
    with db.write() as conn:
        stale = conn.execute(
            sa.select(login_failures.c.key)
            .where(login_failures.c.window_start <= cutoff)
            .limit(CLEANUP_BATCH)
            .with_for_update(skip_locked=True)
        ).scalars()
        keys = list(stale)
        if keys:
            conn.execute(
                login_failures.delete().where(
                    login_failures.c.key.in_(keys), login_failures.c.window_start <= cutoff
                )
            )
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now))
