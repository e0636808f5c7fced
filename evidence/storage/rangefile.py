"""A read-only, seekable file over ranged reads, for demuxers that seek (PyAV).

Reads are served from a small window of the object, refilled by one ranged
read at a time, so probing a large object stored remotely costs a few
requests, and memory stays at the window size.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

WINDOW = 1 << 20  # bytes fetched per ranged read

ReadRange = Callable[[int, int], Iterator[bytes]]  # (start, end) -> chunks of [start, end)


class RangeFile(io.RawIOBase):
    def __init__(self, read_range: ReadRange, size: int) -> None:
        self._read_range = read_range
        self._size = size
        self._pos = 0
        self._window_start = 0
        self._window = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        start = self._pos - self._window_start
        if not 0 <= start < len(self._window):
            end = min(self._size, self._pos + max(WINDOW, len(buffer)))
            self._window = b"".join(self._read_range(self._pos, end))
            self._window_start, start = self._pos, 0
        n = min(len(buffer), len(self._window) - start)
        buffer[:n] = self._window[start : start + n]
        self._pos += n
        return n
