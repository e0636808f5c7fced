"""Merkle tree hashing, proofs and their verification: RFC 6962 section 2.1, RFC 9162 section 2.1.

Hashes: ``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``,
and the root of the empty tree is ``SHA-256("")`` (RFC 9162 section 2.1.1).

A *perfect subtree* ``(level, index)`` is the complete subtree of ``2**level``
leaves covering ``[index * 2**level, (index + 1) * 2**level)``. Every subtree the
RFC's recursive definitions use is a perfect subtree or a run of them, so a
store that keeps the hashes of perfect subtrees (about two per entry) answers a
root or a proof from O(log n) of them (`perfect_subtrees`), never by hashing
every entry. Proof generation here is two-step and pure: `inclusion_path` and
`consistency_path` name the ranges whose hashes form the proof; the caller
fetches the perfect-subtree hashes of those ranges and folds each with
`fold_subtrees`.

Size-0 policy: the empty tree has root ``SHA-256("")``. Every tree is
consistent with the empty tree, with an empty proof, but only if the older
root given really is the empty root: `verify_consistency` checks it (a caller
that passes anything else for size 0 is confused, and a verifier should say
so). No inclusion proof exists in the empty tree. Hashes must be 32 bytes in
every case, including the sizes where no hashing happens.

Proof policy: a proof is any iterable of hashes (a list, a tuple, an iterator),
read up to one hash past `MAX_PROOF_HASHES`; ``None`` (JSON null, Go's nil
slice) is the empty proof. A single bytes or str value, or anything that is not
iterable, is refused. Every malformed input raises `VerificationError`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evidence.errors import VerificationError

HASH_SIZE = 32  # SHA-256
LEAF_PREFIX = b"\x00"  # RFC 6962 section 2.1: domain separation of leaves...
NODE_PREFIX = b"\x01"  # ...and interior nodes
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 section 2.1.1: MTH({})

# A proof for a tree of fewer than 2**64 entries has at most 64 hashes (plus one
# for a consistency proof from a power-of-two size); anything longer is refused
# before any hashing.
MAX_PROOF_HASHES = 65


@dataclass(frozen=True)
class Subtree:
    """The perfect subtree of ``2**level`` leaves starting at leaf ``index << level``."""

    level: int
    index: int


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 6962: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees, left to right, whose fold is the hash of ``[start, end)``.

    Valid for every range that the RFC's recursion visits: ``start`` is a
    multiple of a power of two at least ``end - start`` (in particular
    ``start == 0``). Raises ValueError for other ranges.
    """
    size = end - start
    if size <= 0:
        raise ValueError(f"empty range [{start}, {end})")
    if start & ((1 << (size - 1).bit_length()) - 1):
        raise ValueError(f"range [{start}, {end}) is not a subtree of any tree")
    result = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            result.append(Subtree(level, start >> level))
            start += 1 << level
    return result


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its perfect subtrees' hashes, left to right (see `perfect_subtrees`).

    The largest subtree is the left child of the range's root; the rest fold
    into its right child, recursively: ``H(h0, H(h1, H(h2, ...)))``.
    """
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = node_hash(h, result)
    return result


def inclusion_path(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges ``[start, end)`` whose hashes are the inclusion proof of ``index`` (RFC 6962 PATH).

    Ordered from the leaf's sibling up to the root's child.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    path: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(old: int, new: int) -> list[tuple[int, int]]:
    """Ranges whose hashes are the consistency proof from size `old` to `new` (RFC 6962 PROOF)."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    path: list[tuple[int, int]] = []
    if old == 0 or old == new:
        return path
    start, end, whole = 0, new, True
    while old != end:
        k = _largest_power_of_two_below(end - start)
        if old <= start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start, whole = start + k, False
    if not whole:
        path.append((start, end))
    path.reverse()
    return path


def _hash(name: str, value: bytes | bytearray | memoryview) -> bytes:
    """`value` as bytes if it is a 32-byte hash (any bytes-like type); raise otherwise."""
    try:
        raw = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None
    except ValueError:  # a released memoryview
        raw = None
    if raw is None or len(raw) != HASH_SIZE:  # counted in bytes, whatever the item size
        raise VerificationError(f"{name} is not a {HASH_SIZE}-byte hash")
    return raw


def _check_size(name: str, value: int) -> None:
    if type(value) is not int or value < 0:
        raise VerificationError(f"{name} must be a non-negative integer")


def _proof(proof: Iterable[bytes] | None) -> list[bytes]:
    """The proof's hashes as bytes; None (JSON null) is the empty proof (module docstring)."""
    if proof is None:
        return []
    if isinstance(proof, bytes | bytearray | memoryview | str):
        raise VerificationError("a proof is a sequence of hashes, not one string of bytes")
    try:
        # One past the limit is enough to refuse it, and stops an endless iterator.
        hashes = list(itertools.islice(proof, MAX_PROOF_HASHES + 1))
    except TypeError as exc:
        raise VerificationError(
            f"a proof is a sequence of hashes, not {type(proof).__name__}"
        ) from exc
    if len(hashes) > MAX_PROOF_HASHES:
        raise VerificationError(
            f"proof has more than {MAX_PROOF_HASHES} hashes: more than any tree needs"
        )
    return [_hash(f"proof[{i}]", h) for i, h in enumerate(hashes)]


def _expect_equal(name: str, computed: bytes, expected: bytes) -> None:
    if not hmac.compare_digest(computed, expected):
        raise VerificationError(f"{name} does not match")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Iterable[bytes] | None, root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` with `root`.

    RFC 9162 section 2.1.3.2. Raises `VerificationError` on any failure: wrong
    hash lengths, index out of range, a proof too short or too long, or a root
    that does not match.
    """
    _check_size("size", size)
    _check_size("index", index)
    leaf_hash, root, proof = _hash("leaf hash", leaf_hash), _hash("root", root), _proof(proof)
    if index >= size:
        raise VerificationError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    _expect_equal("root computed from the inclusion proof", r, root)


def verify_consistency(
    size1: int, size2: int, proof: Iterable[bytes] | None, root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size2` with `root2` extends the tree of `size1` with `root1`.

    RFC 9162 section 2.1.4.2, with the size-0 policy of this module's
    docstring. Raises `VerificationError` on any failure.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    root1, root2, proof = _hash("root1", root1), _hash("root2", root2), _proof(proof)
    if size1 > size2:
        raise VerificationError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == size2 or size1 == 0:
        if proof:
            raise VerificationError("consistency proof must be empty for these sizes")
        if size1 == 0:
            _expect_equal("root1 of the empty tree", root1, EMPTY_ROOT)
        if size1 == size2:
            _expect_equal("root1 and root2 of the same size", root1, root2)
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = proof
    if size1 & (size1 - 1) == 0:  # RFC 9162: a power of two is its own first subtree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    _expect_equal("root1 computed from the consistency proof", fr, root1)
    _expect_equal("root2 computed from the consistency proof", sr, root2)


def append_leaves(
    size: int, frontier: Sequence[bytes], leaf_hashes: Sequence[bytes]
) -> tuple[list[tuple[Subtree, bytes]], list[bytes]]:
    """Extend a tree of `size` leaves by `leaf_hashes`.

    `frontier` holds the hashes of ``perfect_subtrees(0, size)`` (left to
    right). Returns every perfect subtree completed by the new leaves (the
    leaves themselves at level 0 included) with its hash, and the new frontier;
    the new root is ``fold_subtrees(new_frontier)``.
    """
    levels = [s.level for s in perfect_subtrees(0, size)] if size else []
    if len(levels) != len(frontier):
        raise ValueError(f"frontier of a tree of size {size} has {len(levels)} hashes")
    stack = list(zip(levels, frontier, strict=True))
    created: list[tuple[Subtree, bytes]] = []
    for i, h in enumerate(leaf_hashes, start=size):
        level, index = 0, i
        created.append((Subtree(0, i), h))
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            h = node_hash(left, h)
            level, index = level + 1, index >> 1
            created.append((Subtree(level, index), h))
        stack.append((level, h))
    return created, [h for _, h in stack]
