"""Building Merkle trees and proofs from stored subtree hashes (RFC 6962 / RFC 9162).

A *perfect subtree* ``(level, index)`` is the complete subtree of ``2**level``
leaves covering ``[index * 2**level, (index + 1) * 2**level)``. Every subtree the
RFC's recursive definitions use is a perfect subtree or a run of them, so a
store that keeps the hashes of perfect subtrees (about two per entry) answers a
root or a proof from O(log n) of them (`perfect_subtrees`), never by hashing
every entry. Proof generation here is two-step and pure: `inclusion_path` and
`consistency_path` name the ranges whose hashes form the proof; the caller
fetches the perfect-subtree hashes of those ranges and folds each with
`fold_subtrees`.

Misuse (a range that is no subtree, an index outside the tree) is a caller's
bug and raises `InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evidence.chain.merkle import EMPTY_ROOT, node_hash
from evidence.errors import InvalidInput


@dataclass(frozen=True)
class Subtree:
    """The perfect subtree of ``2**level`` leaves starting at leaf ``index << level``."""

    level: int
    index: int


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 6962: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees, left to right, whose fold is the hash of ``[start, end)``.

    Valid for every range that the RFC's recursion visits: ``start`` is a
    multiple of a power of two at least ``end - start`` (in particular
    ``start == 0``). Raises InvalidInput for other ranges.
    """
    size = end - start
    if size <= 0:
        raise InvalidInput(f"empty range [{start}, {end})")
    if start & ((1 << (size - 1).bit_length()) - 1):
        raise InvalidInput(f"range [{start}, {end}) is not a subtree of any tree")
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
        raise InvalidInput(f"index {index} is outside a tree of size {size}")
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
        raise InvalidInput(f"no consistency proof from size {old} to size {new}")
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
        raise InvalidInput(f"frontier of a tree of size {size} has {len(levels)} hashes")
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
