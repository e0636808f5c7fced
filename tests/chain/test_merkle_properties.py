"""Property tests of `evidence.chain.merkle` against RFC 6962 section 2.1.

The reference `rfc_mth` in chain_helpers is the RFC's recursive MTH, written
from the text; `RefTree` memoises the same recursion over one 2048-entry data
set, so every prefix tree and every range of it is available cheaply (the
hash of D[a:b] does not depend on the size of the tree around it).
"""

from __future__ import annotations

import itertools

import pytest
from chain_helpers import RefTree, make_entries, rfc_mth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence.chain import merkle, tree
from evidence.errors import InvalidInput, VerificationError

MAX_SIZE = 2000
ENTRIES = make_entries(2048, tag="p")
TREE = RefTree(ENTRIES)

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(sizes)
    return draw(st.integers(min_value=1, max_value=new)), new


@st.composite
def batches(draw: st.DrawFn) -> list[int]:
    """A tree size cut into random consecutive batches (some of them empty)."""
    size = draw(st.integers(min_value=0, max_value=MAX_SIZE))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=size), max_size=8)))
    bounds = [0, *cuts, size]
    return [b - a for a, b in itertools.pairwise(bounds)]


@PROPERTY
@given(size_and_index())
def test_generated_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    size, index = case
    proof = TREE.core_inclusion(index, size)
    assert proof == TREE.path(index, size)
    merkle.verify_inclusion(TREE.leaves[index], index, size, proof, TREE.root(size))
    assert len(proof) <= merkle.MAX_PROOF_HASHES


@PROPERTY
@given(two_sizes())
def test_generated_consistency_proofs_verify(case: tuple[int, int]) -> None:
    old, new = case
    proof = TREE.core_consistency(old, new)
    assert proof == TREE.proof(old, new)
    merkle.verify_consistency(old, new, proof, TREE.root(old), TREE.root(new))


@PROPERTY
@given(batches())
def test_append_leaves_in_batches_matches_the_rfc(cuts: list[int]) -> None:
    size, frontier = 0, list[bytes]()
    created: dict[tree.Subtree, bytes] = {}
    for n in cuts:
        new, frontier = tree.append_leaves(size, frontier, TREE.leaves[size : size + n])
        for subtree, h in new:
            assert subtree not in created, subtree  # each subtree is completed once
            assert h == TREE.subtree(subtree), subtree
            created[subtree] = h
        size += n
        # The frontier is exactly the perfect subtrees of the new size, and folds to its root.
        perfect = tree.perfect_subtrees(0, size) if size else []
        assert frontier == [TREE.subtree(s) for s in perfect]
        assert tree.fold_subtrees(frontier) == TREE.root(size)
    assert tree.fold_subtrees(frontier) == rfc_mth(ENTRIES[:size])
    # Every perfect subtree inside [0, size), and nothing else, was created.
    expected = {
        tree.Subtree(level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
    }
    assert set(created) == expected


@PROPERTY
@given(
    st.integers(min_value=1, max_value=2**40),
    st.integers(min_value=0, max_value=2**20),
)
def test_perfect_subtrees_cover_an_aligned_range_exactly(size: int, slot: int) -> None:
    align = 1 << (size - 1).bit_length()  # smallest power of two >= size
    start = slot * align
    subtrees = tree.perfect_subtrees(start, start + size)
    pos = start
    levels = []
    for s in subtrees:
        assert s.index << s.level == pos  # contiguous, aligned, left to right
        pos += 1 << s.level
        levels.append(s.level)
    assert pos == start + size
    assert levels == sorted(set(levels), reverse=True)  # strictly decreasing: one per set bit
    assert len(subtrees) == bin(size).count("1")


@PROPERTY
@given(st.integers(min_value=1, max_value=1024), st.integers(min_value=0, max_value=1))
def test_perfect_subtrees_fold_to_the_range_hash(size: int, slot: int) -> None:
    align = 1 << (size - 1).bit_length()
    start = slot * align
    if start + size > len(ENTRIES):
        start = 0
    assert TREE.fold(start, start + size) == rfc_mth(ENTRIES[start : start + size])


@PROPERTY
@given(st.integers(min_value=2, max_value=4096), st.integers(min_value=1, max_value=4096))
def test_perfect_subtrees_refuses_misaligned_ranges(size: int, start: int) -> None:
    align = 1 << (size - 1).bit_length()
    if start % align == 0:
        tree.perfect_subtrees(start, start + size)
    else:
        with pytest.raises(InvalidInput, match="not a subtree"):
            tree.perfect_subtrees(start, start + size)


def test_reference_mth_small_cases() -> None:
    """The reference itself, by hand, against RFC 6962 section 2.1."""
    import hashlib

    def h(b: bytes) -> bytes:
        return hashlib.sha256(b).digest()

    d = [b"a", b"b", b"c"]
    leaves = [h(b"\x00" + x) for x in d]
    assert rfc_mth([]) == h(b"") == merkle.EMPTY_ROOT
    assert rfc_mth(d[:1]) == leaves[0] == merkle.leaf_hash(b"a")
    assert rfc_mth(d[:2]) == h(b"\x01" + leaves[0] + leaves[1])
    assert rfc_mth(d) == h(b"\x01" + h(b"\x01" + leaves[0] + leaves[1]) + leaves[2])
    assert merkle.node_hash(leaves[0], leaves[1]) == rfc_mth(d[:2])


# ---------------------------------------------------------------------------
# Size 0, as merkle.py's docstring states the policy:
#   the empty root is SHA-256(""); consistency from 0 needs an empty proof and
#   root1 == EMPTY_ROOT; there is no inclusion in the empty tree.


def test_size_zero_policy() -> None:
    assert (
        bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        == merkle.EMPTY_ROOT
    )
    assert tree.fold_subtrees([]) == merkle.EMPTY_ROOT == rfc_mth([])
    created, frontier = tree.append_leaves(0, [], [])
    assert (created, frontier) == ([], [])

    # Every tree is consistent with the empty tree, with an empty proof...
    for new in (0, 1, 2, 7, 1000):
        merkle.verify_consistency(0, new, [], merkle.EMPTY_ROOT, TREE.root(new))
    assert tree.consistency_path(0, 0) == tree.consistency_path(0, 9) == []
    # ...but only if the older root really is the empty root...
    with pytest.raises(VerificationError, match="empty tree"):
        merkle.verify_consistency(0, 7, [], TREE.root(7), TREE.root(7))
    # ...and never with a non-empty proof.
    with pytest.raises(VerificationError, match="must be empty"):
        merkle.verify_consistency(0, 7, [TREE.root(7)], merkle.EMPTY_ROOT, TREE.root(7))

    # No inclusion proof exists in the empty tree.
    with pytest.raises(InvalidInput, match="outside"):
        tree.inclusion_path(0, 0)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(merkle.EMPTY_ROOT, 0, 0, [], merkle.EMPTY_ROOT)


def test_size_zero_to_zero_requires_the_empty_root() -> None:
    """Regression: the size-0 policy ("only if the older root given really is
    the empty root") applies from size 0 to size 0 too, where two equal
    arbitrary roots were once accepted."""
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    bogus = TREE.root(5)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 0, [], bogus, bogus)


# ---------------------------------------------------------------------------
# Argument errors of the proof builders (InvalidInput: caller bugs, not bad input)


@pytest.mark.parametrize(("index", "size"), [(-1, 5), (5, 5), (6, 5), (0, 0)])
def test_inclusion_path_refuses_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(InvalidInput, match="outside"):
        tree.inclusion_path(index, size)


@pytest.mark.parametrize(("old", "new"), [(-1, 5), (6, 5), (1, 0)])
def test_consistency_path_refuses_bad_arguments(old: int, new: int) -> None:
    with pytest.raises(InvalidInput, match="no consistency proof"):
        tree.consistency_path(old, new)


@pytest.mark.parametrize(("start", "end"), [(0, 0), (5, 5), (5, 4)])
def test_perfect_subtrees_refuses_empty_ranges(start: int, end: int) -> None:
    with pytest.raises(InvalidInput, match="empty range"):
        tree.perfect_subtrees(start, end)


def test_append_leaves_refuses_a_wrong_frontier() -> None:
    frontier = [TREE.subtree(s) for s in tree.perfect_subtrees(0, 7)]
    assert len(frontier) == 3
    with pytest.raises(InvalidInput, match="frontier"):
        tree.append_leaves(7, frontier[:2], [TREE.leaves[7]])
    with pytest.raises(InvalidInput, match="frontier"):
        tree.append_leaves(0, frontier[:1], [])
    created, new = tree.append_leaves(7, frontier, [TREE.leaves[7]])
    assert new == [TREE.root(8)]
    assert [s for s, _ in created] == [
        tree.Subtree(0, 7),
        tree.Subtree(1, 3),
        tree.Subtree(2, 1),
        tree.Subtree(3, 0),
    ]
