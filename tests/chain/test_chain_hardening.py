"""Bad input of every type: the public verifiers and parsers of `evidence.chain`
raise `VerificationError`, never TypeError, AttributeError or another foreign
exception, whatever a caller (or a decoded document) hands them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chain_helpers import RefTree, make_entries, stable_repr

from evidence.chain import canonical, checkpoint, entries, merkle, note
from evidence.errors import VerificationError

TREE = RefTree(make_entries(7))
LEAF, ROOT = TREE.leaves[2], TREE.root(7)
INCLUSION = TREE.core_inclusion(2, 7)
CONSISTENCY = TREE.core_consistency(3, 7)
ROOT3 = TREE.root(3)

SIGNER = note.Signer("example.com/hardening", bytes(range(32)))
VKEY = SIGNER.verifier.vkey
CHECKPOINT = checkpoint.Checkpoint(SIGNER.name, 7, ROOT)
SIGNED = checkpoint.sign_checkpoint(CHECKPOINT, SIGNER)
ENTRY = b"entry"

# Values of the wrong type, for any argument.
WRONG_TYPES: list[Any] = [None, 5, 2.5, True, object(), ["x"], {"a": 1}, {1, 2}, (1,), 1j]


def _raises_verification_error(call: Callable[[], object]) -> None:
    with pytest.raises(VerificationError):
        call()


# ---------------------------------------------------------------------------
# merkle: a proof is any iterable of 32-byte hashes, or None for the empty proof


def _gen(hashes: list[bytes]) -> Iterator[bytes]:
    yield from hashes


def test_a_proof_may_be_an_iterator_or_a_generator() -> None:
    merkle.verify_inclusion(LEAF, 2, 7, iter(INCLUSION), ROOT)
    merkle.verify_inclusion(LEAF, 2, 7, _gen(INCLUSION), ROOT)
    merkle.verify_inclusion(LEAF, 2, 7, tuple(INCLUSION), ROOT)
    merkle.verify_consistency(3, 7, iter(CONSISTENCY), ROOT3, ROOT)
    merkle.verify_consistency(3, 7, _gen(CONSISTENCY), ROOT3, ROOT)
    # A wrong proof, as an iterator, is still just wrong.
    with pytest.raises(VerificationError, match="does not match"):
        merkle.verify_inclusion(LEAF, 2, 7, iter(reversed(INCLUSION)), ROOT)


@pytest.mark.parametrize("proof", [5, 2.5, True, object(), 1j], ids=stable_repr)
def test_a_proof_that_is_not_iterable_is_refused(proof: Any) -> None:
    with pytest.raises(VerificationError, match="sequence of hashes"):
        merkle.verify_inclusion(LEAF, 2, 7, proof, ROOT)
    with pytest.raises(VerificationError, match="sequence of hashes"):
        merkle.verify_consistency(3, 7, proof, ROOT3, ROOT)


@pytest.mark.parametrize(
    "element", [None, 5, "ab" * 16, ["x"], {"h": 1}, object(), 1.5], ids=stable_repr
)
def test_a_proof_with_a_non_bytes_element_is_refused(element: Any) -> None:
    for proof in ([element], [*INCLUSION[:1], element], iter([element]), _gen([element])):
        with pytest.raises(VerificationError, match=r"proof\[\d\] is not a 32-byte hash"):
            merkle.verify_inclusion(LEAF, 2, 7, proof, ROOT)
    for proof in ([element], [*CONSISTENCY[:1], element], iter([element])):
        with pytest.raises(VerificationError, match=r"proof\[\d\] is not a 32-byte hash"):
            merkle.verify_consistency(3, 7, proof, ROOT3, ROOT)


def test_an_endless_proof_is_refused_without_reading_it_all() -> None:
    with pytest.raises(VerificationError, match="more than any tree needs"):
        merkle.verify_inclusion(LEAF, 2, 7, itertools.repeat(ROOT), ROOT)
    with pytest.raises(VerificationError, match="more than any tree needs"):
        merkle.verify_consistency(3, 7, itertools.count(), ROOT3, ROOT)


@pytest.mark.parametrize("bad", WRONG_TYPES, ids=stable_repr)
def test_merkle_verifiers_refuse_wrong_types_in_every_argument(bad: Any) -> None:
    for call in (
        lambda: merkle.verify_inclusion(bad, 2, 7, INCLUSION, ROOT),
        lambda: merkle.verify_inclusion(LEAF, 2, 7, INCLUSION, bad),
        lambda: merkle.verify_consistency(3, 7, CONSISTENCY, bad, ROOT),
        lambda: merkle.verify_consistency(3, 7, CONSISTENCY, ROOT3, bad),
    ):
        _raises_verification_error(call)
    if type(bad) is not int:  # an int is the right type for a size or an index
        for call in (
            lambda: merkle.verify_inclusion(LEAF, bad, 7, INCLUSION, ROOT),
            lambda: merkle.verify_inclusion(LEAF, 2, bad, INCLUSION, ROOT),
            lambda: merkle.verify_consistency(bad, 7, CONSISTENCY, ROOT3, ROOT),
            lambda: merkle.verify_consistency(3, bad, CONSISTENCY, ROOT3, ROOT),
        ):
            _raises_verification_error(call)
    if bad is not None:  # None is the empty proof
        _raises_verification_error(lambda: merkle.verify_inclusion(LEAF, 2, 7, [bad], ROOT))


# ---------------------------------------------------------------------------
# note: keys are str or Verifier, notes are str or bytes-like


@pytest.mark.parametrize(
    "vkey",
    [
        VKEY.encode(),
        bytearray(VKEY.encode()),
        memoryview(VKEY.encode()),
        [VKEY.encode()],
        [VKEY, VKEY.encode()],
        (SIGNER.verifier, b"x"),
        *WRONG_TYPES,
        [None],
        [5],
        [[VKEY]],
    ],
    ids=stable_repr,
)
def test_verify_note_refuses_a_vkey_of_another_type(vkey: Any) -> None:
    note_text = note.sign_note("hello\n", [SIGNER])
    with pytest.raises(VerificationError, match="verifier key"):
        note.verify_note(note_text, vkey)


def test_verify_note_takes_a_vkey_or_verifier_or_any_iterable_of_them() -> None:
    note_text = note.sign_note("hello\n", [SIGNER])
    for vkey in (VKEY, SIGNER.verifier, [VKEY], (SIGNER.verifier,), iter([VKEY]), {VKEY}):
        assert note.verify_note(note_text, vkey) == "hello\n"


@pytest.mark.parametrize("bad", WRONG_TYPES, ids=stable_repr)
def test_note_parsers_refuse_wrong_types(bad: Any) -> None:
    _raises_verification_error(lambda: note.verify_note(bad, VKEY))
    _raises_verification_error(lambda: note.split_note(bad))
    _raises_verification_error(lambda: note.parse_vkey(bad))
    _raises_verification_error(lambda: note.parse_signer_key(bad))
    _raises_verification_error(lambda: note.Verifier(bad, bytes(32)))
    _raises_verification_error(lambda: note.Verifier("name", bad))
    assert note.is_valid_key_name(bad) is False


@pytest.mark.parametrize("bad", [b"AAAA", *WRONG_TYPES], ids=stable_repr)
def test_b64decode_strict_refuses_what_is_not_a_str(bad: Any) -> None:
    with pytest.raises(VerificationError, match="proof hash must be a str"):
        note.b64decode_strict(bad, "proof hash")


def test_parse_vkey_refuses_bytes() -> None:
    with pytest.raises(VerificationError, match="verifier key must be a str"):
        note.parse_vkey(VKEY.encode())  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="signer key must be a str"):
        note.parse_signer_key(SIGNER.skey.encode())  # type: ignore[arg-type]


def test_a_note_may_be_any_bytes_like_value() -> None:
    data = note.sign_note("hello\n", [SIGNER]).encode()
    for value in (data, bytearray(data), memoryview(data)):
        assert note.verify_note(value, VKEY) == "hello\n"


# ---------------------------------------------------------------------------
# canonical.decode takes bytes-like values only


@pytest.mark.parametrize("bad", ['{"a":1}', "1", "", *WRONG_TYPES], ids=stable_repr)
def test_canonical_decode_refuses_what_is_not_bytes(bad: Any) -> None:
    with pytest.raises(VerificationError, match="canonical JSON: expected bytes"):
        canonical.decode(bad)


def test_canonical_decode_takes_any_bytes_like_value() -> None:
    for value in (b'{"a":[1]}', bytearray(b'{"a":[1]}'), memoryview(b'{"a":[1]}')):
        assert canonical.decode(value) == {"a": [1]}


def _released(data: bytes) -> memoryview:
    view = memoryview(data)
    view.release()
    return view


def test_a_released_memoryview_is_refused_not_a_value_error() -> None:
    with pytest.raises(VerificationError, match="released"):
        canonical.decode(_released(b"{}"))
    with pytest.raises(VerificationError, match="32-byte hash"):
        merkle.verify_inclusion(_released(LEAF), 2, 7, INCLUSION, ROOT)
    with pytest.raises(VerificationError, match=r"proof\[0\] is not a 32-byte hash"):
        merkle.verify_inclusion(LEAF, 2, 7, [_released(INCLUSION[0])], ROOT)
    with pytest.raises(VerificationError, match="released"):
        note.verify_note(_released(SIGNED.encode()), VKEY)
    with pytest.raises(VerificationError, match="released"):
        checkpoint.verify_inclusion_in_checkpoint(_released(ENTRY), 2, INCLUSION, CHECKPOINT)


# ---------------------------------------------------------------------------
# checkpoint and tlog-proof


@pytest.mark.parametrize(
    "vkey", [VKEY.encode(), bytearray(VKEY.encode()), [VKEY], *WRONG_TYPES], ids=stable_repr
)
def test_verify_checkpoint_refuses_a_vkey_of_another_type(vkey: Any) -> None:
    with pytest.raises(VerificationError, match="verifier key"):
        checkpoint.verify_checkpoint(SIGNED, vkey)
    proof = checkpoint.TlogProof(2, tuple(INCLUSION), SIGNED)
    with pytest.raises(VerificationError, match="verifier key"):
        checkpoint.verify_tlog_proof(proof, LEAF, vkey)


def test_verify_checkpoint_takes_a_bytes_like_note() -> None:
    for signed in (SIGNED, SIGNED.encode(), bytearray(SIGNED.encode())):
        assert checkpoint.verify_checkpoint(signed, VKEY) == CHECKPOINT


@pytest.mark.parametrize("bad", [SIGNED.encode(), *WRONG_TYPES], ids=stable_repr)
def test_checkpoint_parsers_refuse_wrong_types(bad: Any) -> None:
    with pytest.raises(VerificationError, match="must be a str"):
        checkpoint.parse_checkpoint(bad)
    with pytest.raises(VerificationError, match="must be a str"):
        checkpoint.parse_tlog_proof(bad)


@pytest.mark.parametrize("bad", WRONG_TYPES, ids=stable_repr)
def test_checkpoint_verifiers_refuse_wrong_types_in_every_argument(bad: Any) -> None:
    proof = checkpoint.TlogProof(2, tuple(INCLUSION), SIGNED)
    _raises_verification_error(lambda: checkpoint.verify_checkpoint(bad, VKEY))
    _raises_verification_error(lambda: checkpoint.verify_tlog_proof(bad, LEAF, VKEY))
    _raises_verification_error(lambda: checkpoint.verify_tlog_proof(proof, bad, VKEY))
    for field in ("index", "proof", "checkpoint"):
        if field == "index" and type(bad) is int:
            continue  # the right type
        bad_proof = checkpoint.TlogProof(**{**proof.__dict__, field: bad})
        with pytest.raises(VerificationError):
            checkpoint.verify_tlog_proof(bad_proof, LEAF, VKEY)
    for call in (
        lambda: checkpoint.verify_inclusion_in_checkpoint(bad, 2, INCLUSION, CHECKPOINT),
        lambda: checkpoint.verify_inclusion_in_checkpoint(ENTRY, 2, INCLUSION, bad),
    ):
        _raises_verification_error(call)
    if type(bad) is not int:
        _raises_verification_error(
            lambda: checkpoint.verify_inclusion_in_checkpoint(ENTRY, bad, INCLUSION, CHECKPOINT)
        )


def test_verify_inclusion_in_checkpoint_takes_bytes_like_entries() -> None:
    tree = RefTree([b"a", b"b", b"c"])
    cp = checkpoint.Checkpoint(SIGNER.name, 3, tree.root())
    for entry in (b"b", bytearray(b"b"), memoryview(b"b")):
        checkpoint.verify_inclusion_in_checkpoint(entry, 1, tree.core_inclusion(1), cp)
    with pytest.raises(VerificationError, match="entry must be bytes"):
        checkpoint.verify_inclusion_in_checkpoint("b", 1, tree.core_inclusion(1), cp)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# entries


@pytest.mark.parametrize("bad", ['{"type":"device.revoked"}', *WRONG_TYPES], ids=stable_repr)
def test_parse_entry_refuses_what_is_not_bytes(bad: Any) -> None:
    with pytest.raises(VerificationError):
        entries.parse_entry(bad)


@pytest.mark.parametrize("bad", [None, 5, "x", ["type", "device.revoked"], b"{}"], ids=stable_repr)
def test_from_json_refuses_what_is_not_an_object(bad: Any) -> None:
    with pytest.raises(VerificationError, match="an entry is a JSON object"):
        entries.from_json(bad)
