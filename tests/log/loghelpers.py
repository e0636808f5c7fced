"""Shared values of the custody log tests."""

from __future__ import annotations

import datetime as dt

ORIGIN = "test.example/custody"
SEED = bytes(range(32))


class FixedClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now
