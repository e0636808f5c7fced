"""Shared helpers for the tests of `evidence.chain`.

The reference Merkle tree here is written straight from RFC 6962 section 2.1
(MTH, PATH, PROOF/SUBPROOF), recursively and without any of the shortcuts of
`evidence.chain.merkle`, so that the core is checked against the text of the
RFC rather than against itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pytest

from evidence.chain import tree

REPO = Path(__file__).resolve().parents[2]

TESSERA_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
TESSERA_ORIGIN = "example.com/log/testdata"


TESTDATA = REPO / "tests" / "testdata"


def find_testdata_dir() -> Path:
    """$EVIDENCE_TESTDATA_DIR, else the repository's tests/testdata (not checked)."""
    env = os.environ.get("EVIDENCE_TESTDATA_DIR")
    return Path(env) if env else TESTDATA


def require_testdata(*parts: str) -> Path:
    """The test-data path, or FAIL (never skip) with a message saying where it was looked for."""
    path = find_testdata_dir().joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"test data {path} is missing: it ships in the repository ({TESTDATA}, see its "
            "README.md); EVIDENCE_TESTDATA_DIR names another copy"
        )
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_leaf(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def rfc_node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def rfc_k(n: int) -> int:
    """RFC 6962: the largest power of two smaller than n (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 (and RFC 9162 2.1.1) define it."""
    n = len(entries)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return rfc_leaf(entries[0])
    k = rfc_k(n)
    return rfc_node(rfc_mth(entries[:k]), rfc_mth(entries[k:]))


class RefTree:
    """A naive RFC 6962 tree over `entries`, with memoised range hashes.

    `hash(start, end)` is MTH(D[start:end]) by the RFC recursion; `path` and
    `proof` are PATH and PROOF of RFC 6962 sections 2.1.1 and 2.1.2, returning
    the proof hashes directly. `core_*` build the same proofs the way the
    service does: `tree.inclusion_path` / `consistency_path` name ranges,
    `perfect_subtrees` splits each range and `fold_subtrees` folds it.
    """

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self.leaves = [rfc_leaf(e) for e in self.entries]

        @cache
        def mth(start: int, end: int) -> bytes:
            n = end - start
            if n == 0:
                return sha256(b"")
            if n == 1:
                return self.leaves[start]
            k = rfc_k(n)
            return rfc_node(mth(start, start + k), mth(start + k, end))

        self._mth = mth

    def __len__(self) -> int:
        return len(self.entries)

    def hash(self, start: int, end: int) -> bytes:
        return self._mth(start, end)

    def root(self, size: int | None = None) -> bytes:
        return self._mth(0, len(self) if size is None else size)

    # RFC 6962 section 2.1.1: PATH(m, D[n]).
    def path(self, m: int, size: int | None = None) -> list[bytes]:
        def rec(m: int, start: int, end: int) -> list[bytes]:
            n = end - start
            if n == 1:
                return []
            k = rfc_k(n)
            if m < k:
                return [*rec(m, start, start + k), self.hash(start + k, end)]
            return [*rec(m - k, start + k, end), self.hash(start, start + k)]

        return rec(m, 0, len(self) if size is None else size)

    # RFC 6962 section 2.1.2: PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    def proof(self, m: int, n: int) -> list[bytes]:
        def sub(m: int, start: int, end: int, b: bool) -> list[bytes]:
            n = end - start
            if m == n:
                return [] if b else [self.hash(start, end)]
            k = rfc_k(n)
            if m <= k:
                return [*sub(m, start, start + k, b), self.hash(start + k, end)]
            return [*sub(m - k, start + k, end, False), self.hash(start, start + k)]

        if m == 0:
            return []
        return sub(m, 0, n, True)

    def subtree(self, s: tree.Subtree) -> bytes:
        return self.hash(s.index << s.level, (s.index + 1) << s.level)

    def fold(self, start: int, end: int) -> bytes:
        """Hash of [start, end) the service's way: perfect subtrees, then fold."""
        return tree.fold_subtrees([self.subtree(s) for s in tree.perfect_subtrees(start, end)])

    def core_inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        size = len(self) if size is None else size
        return [self.fold(a, b) for a, b in tree.inclusion_path(index, size)]

    def core_consistency(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self) if new is None else new
        return [self.fold(a, b) for a, b in tree.consistency_path(old, new)]


def make_entries(n: int, tag: str = "e") -> list[bytes]:
    """n distinct entries of varied lengths (the empty entry included)."""
    return [b"" if i == 0 else f"{tag}{i}:".encode() * (i % 4 + 1) for i in range(n)]


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def stable_repr(value: object) -> str:
    """`repr(value)` without memory addresses: a test id that is the same in every process
    (pytest-xdist's workers must collect the same ids)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))
