"""Short texts people type: names of people and devices, case references.

One rule for all of them: 1 to `limit` characters after trimming spaces, none
of them a control character (which would garble a listing or a log line).
"""

from __future__ import annotations

from evidence.errors import InvalidInput


def is_label(text: str, limit: int) -> bool:
    """Whether `text` (already trimmed) is a label of at most `limit` printable characters."""
    return 0 < len(text) <= limit and not any(ord(c) < 0x20 or c == "\x7f" for c in text)


def check_label(text: str, what: str, limit: int) -> str:
    """`text` trimmed, if it is a label (`is_label`); `InvalidInput` naming `what` otherwise."""
    text = text.strip()
    if not is_label(text, limit):
        raise InvalidInput(f"{what} must be 1 to {limit} printable characters")
    return text
