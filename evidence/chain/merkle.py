"""Merkle tree hashing and the verification of proofs: RFC 6962 section 2.1, RFC 9162 section 2.1.

Hashes: ``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``,
and the root of the empty tree is ``SHA-256("")`` (RFC 9162 section 2.1.1).

Building trees and proofs (perfect subtrees, proof paths, appends) is
`evidence.chain.tree`; this module is what a verifier needs.

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
from collections.abc import Iterable

from evidence.errors import VerificationError

HASH_SIZE = 32  # SHA-256
LEAF_PREFIX = b"\x00"  # RFC 6962 section 2.1: domain separation of leaves...
NODE_PREFIX = b"\x01"  # ...and interior nodes
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 section 2.1.1: MTH({})

# A proof for a tree of fewer than 2**64 entries has at most 64 hashes (plus one
# for a consistency proof from a power-of-two size); anything longer is refused
# before any hashing.
MAX_PROOF_HASHES = 65


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


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
