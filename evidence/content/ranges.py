"""HTTP ``Range`` on an item's content (RFC 9110 section 14), and download names. Pure.

* one satisfiable byte range (``a-b``, ``a-``, ``-n``): 206 with
  ``Content-Range``; ``b`` past the end is cut to the end;
* no ``Range``, a range unit other than ``bytes`` (which RFC 9110 says to
  ignore) or more than one range: the whole item, 200 (RFC 9110 lets a server
  ignore a multi-range request; a browser's player never sends one);
* a range that starts at or past the end, ``-0``, any range of an empty item,
  or a malformed ``bytes=`` value (``bytes=5-2``, ``bytes=x``, ``bytes=``):
  416 with ``Content-Range: bytes */SIZE`` and the usual JSON error body;
* with ``If-Range``: the whole item, 200 (no ETag or Last-Modified is sent,
  so no validator a client names can match).
"""

from __future__ import annotations

import re

from evidence.errors import InvalidInput

# Digits of a byte position that can matter: 19 reach past any object (2**63).
# A longer number means "beyond the end"; int() of thousands of digits is refused.
MAX_POSITION_DIGITS = 19
_BEYOND = 1 << 63
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")

# File names for downloads: the item id and one of these extensions, nothing else.
EXTENSIONS = {
    "application/json": "json",
    "application/pdf": "pdf",
    "audio/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/webm": "weba",
    "audio/x-wav": "wav",
    "image/gif": "gif",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "text/plain": "txt",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
}


class RangeNotSatisfiable(InvalidInput):
    """A ``Range`` this item cannot satisfy, or a malformed ``bytes=`` value."""

    code = "range_not_satisfiable"
    http_status = 416


def _position(digits: str) -> int:
    return _BEYOND if len(digits) > MAX_POSITION_DIGITS else int(digits)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The bytes ``[start, end)`` a ``Range`` header asks of an object of `size` bytes.

    None for the whole object (no header, another unit, several ranges);
    `RangeNotSatisfiable` for a range outside the object or a malformed one.
    """
    if header is None:
        return None
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None  # RFC 9110 section 14.2: ignore a range unit not understood
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) > 1:
        return None  # several ranges: the whole item instead (RFC 9110 lets us)
    match = _RANGE_SPEC.fullmatch(specs[0]) if specs else None
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(f"malformed Range {header[:100]!r}: send bytes=FIRST-LAST")
    first, last = match.groups()
    if first == "":  # the last `last` bytes
        count = _position(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(f"the suffix range {specs[0]!r} selects no byte")
        return max(0, size - count), size
    start = _position(first)
    if last != "" and _position(last) < start:
        raise RangeNotSatisfiable(f"malformed Range {header[:100]!r}: LAST is before FIRST")
    if start >= size:
        raise RangeNotSatisfiable(f"the item has {size} bytes: a range cannot start at {start}")
    end = size if last == "" else min(_position(last) + 1, size)
    return start, end


def download_name(item: str, media_type: str) -> str:
    """The file name of a download: the item id and an extension for its media type."""
    return f"{item}.{EXTENSIONS.get(media_type, 'bin')}"
