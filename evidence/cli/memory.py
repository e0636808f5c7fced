"""Keep the server's memory flat: large buffers go back to the system when freed.

An upload moves through part-sized buffers (8 MiB) in worker threads. glibc's
malloc serves such blocks with mmap at first, but after the first one is freed
it raises its mmap threshold to that size, so later blocks come from per-thread
arenas, which keep the memory after it is freed: a server that has received a
few uploads then holds twice the memory it needs (measured with bench/ingest.py:
a peak of about 200 MB instead of 120 MB for a 1 GiB upload). Fixing the
threshold at 1 MiB (`mallopt(M_MMAP_THRESHOLD)`, which also turns the dynamic
raising off) keeps every block that large in its own mapping, returned to the
system on free. Same effect as ``MALLOC_MMAP_THRESHOLD_=1048576`` in the
environment; done in process so that `evidence serve` needs no wrapper.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Final

M_MMAP_THRESHOLD: Final = -3  # glibc's malloc.h
MMAP_THRESHOLD: Final = 1 << 20


def return_large_blocks() -> bool:
    """Set glibc's mmap threshold (see the module docstring); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
