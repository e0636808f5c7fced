"""The allocator setting `evidence serve` makes, so that memory stays flat across uploads."""

from __future__ import annotations

import sys

import pytest

from evidence.cli.memory import return_large_blocks


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_glibc_takes_the_mmap_threshold() -> None:
    assert return_large_blocks() is True
    big = bytearray(8 << 20)  # allocated and freed as its own mapping from now on
    del big
