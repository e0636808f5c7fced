"""Mutation probes and input checks for `evidence.chain.merkle`'s verifiers.

Valid proofs are generated the way the service generates them
(`inclusion_path` / `consistency_path`, `perfect_subtrees`, `fold_subtrees`)
over a naive RFC 6962 reference tree, checked to equal the RFC's PATH and
PROOF, and then mutated: every mutation of a hash, and every added, removed
or reordered proof element, must be rejected, and so must an index (or a
consistency proof's size1) changed by one. A tree size changed by one does not
always invalidate a proof: the proof of leaf 0 in a tree of 4 is, hash for
hash, also a proof of leaf 0 in a tree of 3 *with the same root* (RFC 9162's
algorithm only binds the size through the root, and a signed checkpoint binds
the root to its size). Those mutations are judged by an independent recursive
verifier written from RFC 6962 section 2.1 (the shape of Go's sumdb/tlog): the
core must agree with it, and must reject the claim against the real root of
the other size.
"""

from __future__ import annotations

import array
import random
from collections.abc import Iterator, Sequence

import pytest
from chain_helpers import RefTree, flip_bit, make_entries, rfc_k, rfc_node, stable_repr

from evidence.chain import merkle, tree
from evidence.errors import VerificationError

TREE = RefTree(make_entries(1100))
RNG_SEED = 6962

Hash = bytes


# ---------------------------------------------------------------------------
# An independent verifier, recursive as in RFC 6962 section 2.1.


def ref_inclusion_ok(leaf: Hash, m: int, n: int, proof: Sequence[Hash], root: Hash) -> bool:
    if not 0 <= m < n:
        return False

    def run(p: Sequence[Hash], m: int, n: int) -> Hash | None:
        if n == 1:
            return None if p else leaf
        if not p:
            return None
        k = rfc_k(n)
        if m < k:
            h = run(p[:-1], m, k)
            return None if h is None else rfc_node(h, p[-1])
        h = run(p[:-1], m - k, n - k)
        return None if h is None else rfc_node(p[-1], h)

    return run(list(proof), m, n) == root


def ref_consistency_ok(m: int, n: int, proof: Sequence[Hash], old: Hash, new: Hash) -> bool:
    if m == 0:  # the module's size-0 policy
        return not proof and old == merkle.EMPTY_ROOT and (n > 0 or new == old)
    if not 0 < m <= n:
        return False

    def run(p: Sequence[Hash], m: int, n: int, whole: bool) -> tuple[Hash, Hash] | None:
        if m == n:
            if whole:
                return None if p else (old, old)
            return (p[0], p[0]) if len(p) == 1 else None
        if not p:
            return None
        k = rfc_k(n)
        if m <= k:
            r = run(p[:-1], m, k, whole)
            return None if r is None else (r[0], rfc_node(r[1], p[-1]))
        r = run(p[:-1], m - k, n - k, False)
        return None if r is None else (rfc_node(p[-1], r[0]), rfc_node(p[-1], r[1]))

    return run(list(proof), m, n, True) == (old, new)


def core_inclusion_ok(leaf: Hash, m: int, n: int, proof: Sequence[Hash], root: Hash) -> bool:
    try:
        merkle.verify_inclusion(leaf, m, n, proof, root)
    except VerificationError:
        return False
    return True


def core_consistency_ok(m: int, n: int, proof: Sequence[Hash], old: Hash, new: Hash) -> bool:
    try:
        merkle.verify_consistency(m, n, proof, old, new)
    except VerificationError:
        return False
    return True


# ---------------------------------------------------------------------------
# Cases


def _inclusion_cases() -> list[tuple[int, int]]:
    rng = random.Random(RNG_SEED)
    cases = [(i, n) for n in range(1, 25) for i in range(n)]
    for n in (31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 1000, 1023, 1024, 1025):
        for i in {0, 1, n // 2, n - 2, n - 1, rng.randrange(n), rng.randrange(n)}:
            cases.append((i, n))
    return cases


def _consistency_cases() -> list[tuple[int, int]]:
    rng = random.Random(RNG_SEED + 1)
    cases = [(m, n) for n in range(1, 25) for m in range(1, n + 1)]
    for n in (32, 33, 64, 100, 128, 129, 256, 257, 1000, 1024, 1025):
        for m in {1, 2, n // 2, n - 1, n, rng.randrange(1, n + 1), rng.randrange(1, n + 1)}:
            cases.append((m, n))
    return cases


INCLUSION_CASES = _inclusion_cases()
CONSISTENCY_CASES = _consistency_cases()


def _bit_flips(h: Hash, every_bit: bool) -> Iterator[Hash]:
    """Every bit of `h`, or one bit per byte (a different one in each byte)."""
    bits = range(256) if every_bit else (byte * 8 + byte % 8 for byte in range(32))
    for bit in bits:
        yield flip_bit(h, bit)


def _structural_mutations(proof: list[Hash], rng: random.Random) -> Iterator[list[Hash]]:
    """The proof with an element added, removed, duplicated or two elements swapped."""
    extra = rng.randbytes(32)
    for pos in range(len(proof) + 1):
        yield [*proof[:pos], extra, *proof[pos:]]
        if pos < len(proof):
            yield [*proof[:pos], proof[pos], *proof[pos:]]  # duplicated
            yield proof[:pos] + proof[pos + 1 :]  # removed
    for a in range(len(proof)):
        for b in range(a + 1, len(proof)):
            swapped = list(proof)
            swapped[a], swapped[b] = swapped[b], swapped[a]
            yield swapped
    if len(proof) > 2:
        yield list(reversed(proof))


def _hash_mutations(proof: list[Hash], every_bit: bool) -> Iterator[list[Hash]]:
    """The proof with one bit of one of its hashes flipped."""
    for pos, h in enumerate(proof):
        for mutated in _bit_flips(h, every_bit):
            yield [*proof[:pos], mutated, *proof[pos + 1 :]]


# ---------------------------------------------------------------------------
# Inclusion


def test_generated_inclusion_proofs_are_the_rfc_paths() -> None:
    for index, size in INCLUSION_CASES:
        proof = TREE.core_inclusion(index, size)
        assert proof == TREE.path(index, size), (index, size)
        root = TREE.root(size)
        assert merkle.verify_inclusion(TREE.leaves[index], index, size, proof, root) is None  # type: ignore[func-returns-value]
        assert ref_inclusion_ok(TREE.leaves[index], index, size, proof, TREE.root(size))


def test_inclusion_hash_bit_flips_are_rejected() -> None:
    for index, size in INCLUSION_CASES:
        every_bit = size <= 8
        leaf, root = TREE.leaves[index], TREE.root(size)
        proof = TREE.core_inclusion(index, size)
        for mutated in _hash_mutations(proof, every_bit):
            assert not core_inclusion_ok(leaf, index, size, mutated, root), (index, size)
        for bad_leaf in _bit_flips(leaf, every_bit):
            assert not core_inclusion_ok(bad_leaf, index, size, proof, root), (index, size)
        for bad_root in _bit_flips(root, every_bit):
            assert not core_inclusion_ok(leaf, index, size, proof, bad_root), (index, size)


def test_inclusion_structural_mutations_are_rejected() -> None:
    rng = random.Random(RNG_SEED)
    for index, size in INCLUSION_CASES:
        leaf, root = TREE.leaves[index], TREE.root(size)
        proof = TREE.core_inclusion(index, size)
        for mutated in _structural_mutations(proof, rng):
            assert not core_inclusion_ok(leaf, index, size, mutated, root), (index, size, mutated)


def test_inclusion_index_off_by_one_is_rejected() -> None:
    for index, size in INCLUSION_CASES:
        leaf, root = TREE.leaves[index], TREE.root(size)
        proof = TREE.core_inclusion(index, size)
        for i in (index - 1, index + 1):
            if i >= 0:
                assert not core_inclusion_ok(leaf, i, size, proof, root), (index, size, i)
                assert not ref_inclusion_ok(leaf, i, size, proof, root)
        # The right leaf at a wrong index with that index's own proof fails too.
        if index + 1 < size:
            other = TREE.core_inclusion(index + 1, size)
            assert not core_inclusion_ok(leaf, index + 1, size, other, root)


def test_inclusion_size_off_by_one_agrees_with_the_rfc() -> None:
    verdicts = set()
    for index, size in INCLUSION_CASES:
        leaf, root = TREE.leaves[index], TREE.root(size)
        proof = TREE.core_inclusion(index, size)
        for n in (size - 1, size + 1):
            want = ref_inclusion_ok(leaf, index, n, proof, root)
            assert core_inclusion_ok(leaf, index, n, proof, root) == want, (index, size, n)
            verdicts.add(want)
            if want:
                # Only the shape matched: the real tree of size n has another root.
                assert not core_inclusion_ok(leaf, index, n, proof, TREE.root(n))
    assert verdicts == {True, False}


def test_inclusion_proof_for_a_shape_twin_is_accepted_like_the_rfc_does() -> None:
    """Documented RFC behaviour, not a weakness of this code: the proof of leaf 0
    in a tree of 4 is, hash for hash, a proof of leaf 0 in a tree of 3 whose
    root is the same value: the sizes are bound by the signed checkpoint."""
    proof = TREE.core_inclusion(0, 4)
    merkle.verify_inclusion(TREE.leaves[0], 0, 3, proof, TREE.root(4))
    assert ref_inclusion_ok(TREE.leaves[0], 0, 3, proof, TREE.root(4))


# ---------------------------------------------------------------------------
# Consistency


def test_generated_consistency_proofs_are_the_rfc_proofs() -> None:
    for old, new in CONSISTENCY_CASES:
        proof = TREE.core_consistency(old, new)
        assert proof == TREE.proof(old, new), (old, new)
        r1, r2 = TREE.root(old), TREE.root(new)
        assert merkle.verify_consistency(old, new, proof, r1, r2) is None  # type: ignore[func-returns-value]
        assert ref_consistency_ok(old, new, proof, TREE.root(old), TREE.root(new))


def test_consistency_hash_bit_flips_are_rejected() -> None:
    for old, new in CONSISTENCY_CASES:
        every_bit = new <= 8
        r1, r2 = TREE.root(old), TREE.root(new)
        proof = TREE.core_consistency(old, new)
        for mutated in _hash_mutations(proof, every_bit):
            assert not core_consistency_ok(old, new, mutated, r1, r2), (old, new)
        for bad in _bit_flips(r1, every_bit):
            assert not core_consistency_ok(old, new, proof, bad, r2), (old, new)
        for bad in _bit_flips(r2, every_bit):
            assert not core_consistency_ok(old, new, proof, r1, bad), (old, new)


def test_consistency_structural_mutations_are_rejected() -> None:
    rng = random.Random(RNG_SEED)
    for old, new in CONSISTENCY_CASES:
        r1, r2 = TREE.root(old), TREE.root(new)
        proof = TREE.core_consistency(old, new)
        for mutated in _structural_mutations(proof, rng):
            assert not core_consistency_ok(old, new, mutated, r1, r2), (old, new, mutated)
        # Swapped roots are a classic mistake; they verify only when they are equal.
        if r1 != r2:
            assert not core_consistency_ok(old, new, proof, r2, r1)


def test_consistency_size1_off_by_one_is_rejected() -> None:
    for old, new in CONSISTENCY_CASES:
        r1, r2 = TREE.root(old), TREE.root(new)
        proof = TREE.core_consistency(old, new)
        for m in (old - 1, old + 1):
            assert not core_consistency_ok(m, new, proof, r1, r2), (old, new, m)
            assert not ref_consistency_ok(m, new, proof, r1, r2)


def test_consistency_size2_off_by_one_agrees_with_the_rfc() -> None:
    verdicts = set()
    for old, new in CONSISTENCY_CASES:
        r1, r2 = TREE.root(old), TREE.root(new)
        proof = TREE.core_consistency(old, new)
        for n in (new - 1, new + 1):
            want = ref_consistency_ok(old, n, proof, r1, r2)
            assert core_consistency_ok(old, n, proof, r1, r2) == want, (old, new, n)
            verdicts.add(want)
            if want and n != old:
                assert not core_consistency_ok(old, n, proof, r1, TREE.root(n))
    assert verdicts == {True, False}


# ---------------------------------------------------------------------------
# Malformed arguments: always VerificationError, never another exception.

GOOD_LEAF = TREE.leaves[2]
GOOD_PROOF = TREE.core_inclusion(2, 7)
GOOD_ROOT = TREE.root(7)
BAD_HASHES: list[object] = [
    b"",
    b"\x00" * 31,
    b"\x00" * 33,
    bytearray(31),
    memoryview(bytes(33)),
    "a" * 32,
    [0] * 32,
    None,
    0,
]


def test_valid_baselines() -> None:
    merkle.verify_inclusion(GOOD_LEAF, 2, 7, GOOD_PROOF, GOOD_ROOT)
    merkle.verify_inclusion(GOOD_LEAF, 2, 7, tuple(GOOD_PROOF), GOOD_ROOT)
    merkle.verify_consistency(3, 7, TREE.core_consistency(3, 7), TREE.root(3), GOOD_ROOT)


@pytest.mark.parametrize("bad", BAD_HASHES, ids=stable_repr)
def test_inclusion_rejects_malformed_hashes(bad: object) -> None:
    with pytest.raises(VerificationError, match="leaf hash"):
        merkle.verify_inclusion(bad, 2, 7, GOOD_PROOF, GOOD_ROOT)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="root"):
        merkle.verify_inclusion(GOOD_LEAF, 2, 7, GOOD_PROOF, bad)  # type: ignore[arg-type]
    for pos in range(len(GOOD_PROOF)):
        proof = [*GOOD_PROOF[:pos], bad, *GOOD_PROOF[pos + 1 :]]
        with pytest.raises(VerificationError, match=rf"proof\[{pos}\]"):
            merkle.verify_inclusion(GOOD_LEAF, 2, 7, proof, GOOD_ROOT)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", BAD_HASHES, ids=stable_repr)
def test_consistency_rejects_malformed_hashes(bad: object) -> None:
    proof = TREE.core_consistency(3, 7)
    r1 = TREE.root(3)
    with pytest.raises(VerificationError, match="root1"):
        merkle.verify_consistency(3, 7, proof, bad, GOOD_ROOT)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="root2"):
        merkle.verify_consistency(3, 7, proof, r1, bad)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match=r"proof\[1\]"):
        merkle.verify_consistency(3, 7, [proof[0], bad], r1, GOOD_ROOT)  # type: ignore[list-item]
    # Hashes are checked even where no hashing happens (equal sizes, size 0).
    with pytest.raises(VerificationError):
        merkle.verify_consistency(7, 7, [], bad, GOOD_ROOT)  # type: ignore[arg-type]
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 7, [], merkle.EMPTY_ROOT, bad)  # type: ignore[arg-type]


def test_bytes_like_hashes_are_accepted() -> None:
    """Hashes may be any bytes-like value of 32 bytes (bytes, bytearray, memoryview)."""
    for convert in (bytes, bytearray, memoryview):
        proof = [convert(h) for h in GOOD_PROOF]
        merkle.verify_inclusion(convert(GOOD_LEAF), 2, 7, proof, convert(GOOD_ROOT))  # type: ignore[arg-type]
        cproof = [convert(h) for h in TREE.core_consistency(3, 7)]
        merkle.verify_consistency(3, 7, cproof, convert(TREE.root(3)), convert(GOOD_ROOT))  # type: ignore[arg-type]


def test_hash_length_is_counted_in_bytes_not_in_items() -> None:
    """BUG (see report): `merkle._hash` checks ``len(value)``, which for a
    memoryview is its number of items, not of bytes: a 128-byte memoryview of
    32 four-byte items passes as a "32-byte hash", and where no hashing happens
    (a tree of size 1, equal sizes) such a value verifies."""
    wide = memoryview(array.array("I", range(32)))
    assert len(wide) == 32
    assert wide.nbytes == 128
    with pytest.raises(VerificationError, match="32-byte hash"):
        merkle.verify_inclusion(wide, 0, 1, [], wide)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="32-byte hash"):
        merkle.verify_consistency(5, 5, [], wide, wide)  # type: ignore[arg-type]
    grid = memoryview(bytes(64)).cast("B", (32, 2))
    with pytest.raises(VerificationError, match="32-byte hash"):
        merkle.verify_consistency(3, 3, [], grid, grid)  # type: ignore[arg-type]


def test_proof_none_is_the_empty_proof() -> None:
    """JSON null (Go's nil slice, as in the RFC 6962 vectors) is the empty proof."""
    leaf = TREE.leaves[0]
    merkle.verify_inclusion(leaf, 0, 1, None, leaf)
    merkle.verify_consistency(4, 4, None, TREE.root(4), TREE.root(4))
    merkle.verify_consistency(0, 4, None, merkle.EMPTY_ROOT, TREE.root(4))
    with pytest.raises(VerificationError, match="too short"):
        merkle.verify_inclusion(leaf, 0, 2, None, TREE.root(2))
    with pytest.raises(VerificationError, match="empty"):
        merkle.verify_consistency(1, 2, None, leaf, TREE.root(2))


@pytest.mark.parametrize("proof", [b"", bytes(32), bytes(64), bytearray(64), "", "a" * 64])
def test_a_proof_is_not_one_string(proof: object) -> None:
    """A bytes or str value is a sequence too; taking it as a proof would be a caller bug."""
    with pytest.raises(VerificationError, match="not one string"):
        merkle.verify_inclusion(GOOD_LEAF, 2, 7, proof, GOOD_ROOT)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="not one string"):
        merkle.verify_consistency(3, 7, proof, TREE.root(3), GOOD_ROOT)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, -(2**64), True, False, 2.0, "2", None], ids=stable_repr)
def test_inclusion_rejects_malformed_index_and_size(bad: object) -> None:
    with pytest.raises(VerificationError, match="index"):
        merkle.verify_inclusion(GOOD_LEAF, bad, 7, GOOD_PROOF, GOOD_ROOT)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="size"):
        merkle.verify_inclusion(GOOD_LEAF, 2, bad, GOOD_PROOF, GOOD_ROOT)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, True, False, 3.0, "3", None], ids=stable_repr)
def test_consistency_rejects_malformed_sizes(bad: object) -> None:
    proof = TREE.core_consistency(3, 7)
    with pytest.raises(VerificationError, match="size1"):
        merkle.verify_consistency(bad, 7, proof, TREE.root(3), GOOD_ROOT)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="size2"):
        merkle.verify_consistency(3, bad, proof, TREE.root(3), GOOD_ROOT)  # type: ignore[arg-type]


def test_bool_size_is_not_one() -> None:
    """`True == 1` in Python; a verifier must not accept it as a tree size."""
    leaf = TREE.leaves[0]
    merkle.verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(leaf, 0, True, [], leaf)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(leaf, False, 1, [], leaf)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(True, 1, [], leaf, leaf)


@pytest.mark.parametrize(("index", "size"), [(7, 7), (8, 7), (0, 0), (2**64, 7)])
def test_inclusion_rejects_index_outside_tree(index: int, size: int) -> None:
    with pytest.raises(VerificationError, match="outside"):
        merkle.verify_inclusion(GOOD_LEAF, index, size, GOOD_PROOF, GOOD_ROOT)


def test_consistency_rejects_size1_larger_than_size2() -> None:
    with pytest.raises(VerificationError, match="larger"):
        merkle.verify_consistency(8, 7, [], GOOD_ROOT, GOOD_ROOT)
    with pytest.raises(VerificationError, match="larger"):
        merkle.verify_consistency(1, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)


def test_too_long_proofs_are_rejected_before_hashing() -> None:
    too_long = [GOOD_ROOT] * (merkle.MAX_PROOF_HASHES + 1)
    with pytest.raises(VerificationError, match="more than any tree needs"):
        merkle.verify_inclusion(GOOD_LEAF, 2, 7, too_long, GOOD_ROOT)
    with pytest.raises(VerificationError, match="more than any tree needs"):
        merkle.verify_consistency(3, 7, too_long, TREE.root(3), GOOD_ROOT)
    # A malformed element past the limit is never even looked at.
    with pytest.raises(VerificationError, match="more than any tree needs"):
        merkle.verify_inclusion(GOOD_LEAF, 2, 7, [*too_long, b""], GOOD_ROOT)
    # At the limit the proof is checked normally (and is wrong for this tree).
    with pytest.raises(VerificationError, match="too long"):
        merkle.verify_inclusion(GOOD_LEAF, 2, 7, too_long[:-1], GOOD_ROOT)


def test_max_proof_hashes_is_enough_for_any_64_bit_tree() -> None:
    """The longest proofs for sizes up to 2**64 fit the limit, so it refuses nothing valid."""
    big = 2**64 - 1
    assert len(tree.inclusion_path(0, 2**63 + 1)) == 64
    assert len(tree.inclusion_path(big - 1, big)) == 63
    assert len(tree.consistency_path(2**63 - 1, 2**64 - 1)) <= merkle.MAX_PROOF_HASHES
    assert max(len(tree.consistency_path(m, big)) for m in (1, 3, 2**40 + 1, big - 1)) <= 65


def test_wrong_length_proofs_give_precise_errors() -> None:
    proof = TREE.core_inclusion(5, 13)
    with pytest.raises(VerificationError, match="too short"):
        merkle.verify_inclusion(TREE.leaves[5], 5, 13, proof[:-1], TREE.root(13))
    with pytest.raises(VerificationError, match="too long"):
        merkle.verify_inclusion(TREE.leaves[5], 5, 13, [*proof, proof[0]], TREE.root(13))
    cproof = TREE.core_consistency(5, 13)
    with pytest.raises(VerificationError, match="too short"):
        merkle.verify_consistency(5, 13, cproof[:-1], TREE.root(5), TREE.root(13))
    with pytest.raises(VerificationError, match="too long"):
        merkle.verify_consistency(5, 13, [*cproof, cproof[0]], TREE.root(5), TREE.root(13))
    with pytest.raises(VerificationError, match="empty"):
        merkle.verify_consistency(5, 13, [], TREE.root(5), TREE.root(13))
    with pytest.raises(VerificationError, match="must be empty"):
        merkle.verify_consistency(13, 13, cproof, TREE.root(13), TREE.root(13))
    with pytest.raises(VerificationError, match="root1 and root2"):
        merkle.verify_consistency(13, 13, [], TREE.root(12), TREE.root(13))


def test_power_of_two_size1_uses_root1_as_first_subtree() -> None:
    """RFC 9162 2.1.4.2 step 2: for a power-of-two size1 the proof omits root1."""
    for old in (1, 2, 4, 8, 16, 512):
        proof = TREE.core_consistency(old, 1000)
        assert TREE.root(old) not in proof
        merkle.verify_consistency(old, 1000, proof, TREE.root(old), TREE.root(1000))
        # Prepending root1 by hand is the "preceding root1" mutation: rejected.
        with pytest.raises(VerificationError):
            merkle.verify_consistency(
                old, 1000, [TREE.root(old), *proof], TREE.root(old), TREE.root(1000)
            )
