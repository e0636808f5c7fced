"""Field formats that custody entries and capture manifests share (see DESIGN.md).

One definition of each, so that an id, a SHA-256 or a time is checked the same
way wherever it appears.
"""

from __future__ import annotations

import re

HEX64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 in lower-case hex
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # opaque ids: no spaces, no names


def date_time_in_range(match: re.Match[str]) -> bool:
    """Whether the date and time of an RFC 3339 match are in range (section 5.7).

    Groups 1 to 6 of the match are year, month, day, hour, minute, second; a
    leap second (60) is allowed, and the day must exist in its month.
    """
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return (
        1 <= month <= 12
        and 1 <= day <= days[month - 1]
        and hour < 24
        and minute < 60
        and second <= 60
    )
