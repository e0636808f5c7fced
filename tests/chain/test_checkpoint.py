"""Checkpoints (c2sp.org/tlog-checkpoint) and tlog-proofs (c2sp.org/tlog-proof)."""

from __future__ import annotations

import base64

import pytest
from chain_helpers import RefTree, b64, make_entries, stable_repr

from evidence.chain import merkle, note
from evidence.chain.checkpoint import (
    TLOG_PROOF_HEADER,
    Checkpoint,
    TlogProof,
    parse_checkpoint,
    parse_tlog_proof,
    sign_checkpoint,
    verify_checkpoint,
    verify_inclusion_in_checkpoint,
    verify_tlog_proof,
)
from evidence.errors import InvalidInput, VerificationError

ORIGIN = "example.com/evidence-test"
LOG = note.Signer(ORIGIN, bytes(range(7, 39)))
WITNESS = note.Signer("witness.example/w1", bytes(range(50, 82)))
OTHER = note.Signer(ORIGIN, bytes(range(90, 122)))  # same name, another key
TREE = RefTree(make_entries(23, tag="cp"))

# c2sp.org/tlog-checkpoint, the example's note text.
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

# c2sp.org/tlog-proof, the example (its signatures are elided with "[...]").
SPEC_PROOF = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==
\u2014 witness2.example TnKKVHLX[...]xwYwrSjgow==
\u2014 witness3.example S4X82uH5[...]3oEcROGLFQ==
"""


def _checkpoint(size: int, extensions: tuple[str, ...] = ()) -> Checkpoint:
    return Checkpoint(ORIGIN, size, TREE.root(size), extensions)


# ---------------------------------------------------------------------------
# Checkpoint text


def test_spec_example_text() -> None:
    cp = parse_checkpoint(SPEC_TEXT)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.to_text() == SPEC_TEXT


@pytest.mark.parametrize(
    "extensions", [(), ("ext",), ("a b c", "\u2014 not a signature", "x" * 500)]
)
@pytest.mark.parametrize("size", [0, 1, 7, 23])
def test_round_trip(size: int, extensions: tuple[str, ...]) -> None:
    cp = _checkpoint(size, extensions)
    text = cp.to_text()
    assert text == "\n".join([ORIGIN, str(size), b64(TREE.root(size)), *extensions]) + "\n"
    assert parse_checkpoint(text) == cp
    signed = sign_checkpoint(cp, LOG)
    assert signed.startswith(text + "\n\u2014 " + ORIGIN + " ")
    assert verify_checkpoint(signed, LOG.verifier.vkey) == cp
    assert verify_checkpoint(signed.encode(), LOG.verifier) == cp


def test_origin_need_not_look_like_a_url() -> None:
    """Clients must not assume the origin's format: only that it is a non-empty line."""
    for origin in ("log", "a b c", "with+plus", "\u00e9"):
        cp = Checkpoint(origin, 1, TREE.root(1))
        assert parse_checkpoint(cp.to_text()) == cp


def test_big_sizes() -> None:
    for size in (2**53, 2**63 - 1, 2**64 - 1):
        cp = Checkpoint(ORIGIN, size, TREE.root(1))
        assert parse_checkpoint(cp.to_text()).size == size


@pytest.mark.parametrize("size", [2**64, 2**64 + 1, 10**20 - 1, 10**19 * 9])
def test_sizes_beyond_uint64_are_refused(size: int) -> None:
    """Regression: 20-digit sizes above 2**64-1 were accepted; Go's checkpoint
    parser (strconv.ParseUint(s, 10, 64)) refuses them."""
    root = b64(TREE.root(1))
    with pytest.raises(VerificationError, match="larger than 2\\*\\*64-1"):
        parse_checkpoint(f"{ORIGIN}\n{size}\n{root}\n")
    with pytest.raises(InvalidInput, match="larger than 2\\*\\*64-1"):
        Checkpoint(ORIGIN, size, TREE.root(1)).to_text()
    with pytest.raises(VerificationError, match="larger than 2\\*\\*64-1"):
        parse_tlog_proof(f"{TLOG_PROOF_HEADER}\nindex {size}\n\n")


def test_the_largest_tlog_proof_index_parses() -> None:
    assert parse_tlog_proof(f"{TLOG_PROOF_HEADER}\nindex {2**64 - 1}\n\n").index == 2**64 - 1
    proof = TlogProof(2**64 - 1, (), "")
    assert parse_tlog_proof(proof.to_text()) == proof


@pytest.mark.parametrize("index", [2**64, -1, True, "5", None], ids=stable_repr)
def test_tlog_proof_to_text_refuses_an_index_parse_would_refuse(index: object) -> None:
    with pytest.raises(InvalidInput, match="tlog-proof index"):
        TlogProof(index, (), "").to_text()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "end with a newline"),
        (SPEC_TEXT[:-1], "end with a newline"),
        ("example.com/log\n0\n", "needs origin, size and root"),
        ("example.com/log\n", "needs origin, size and root"),
        ("\n", "needs origin, size and root"),
        ("\n5\n" + b64(bytes(32)) + "\n", "origin is empty"),
        ("o\n5\n" + b64(bytes(32)) + "\n\n", "extension lines must be non-empty"),
        ("o\n5\n" + b64(bytes(32)) + "\next\n\n", "extension lines must be non-empty"),
        ("o\n5\n" + b64(bytes(32)) + "\n\next\n", "extension lines must be non-empty"),
        ("o\n01\n" + b64(bytes(32)) + "\n", "leading zeros"),
        ("o\n00\n" + b64(bytes(32)) + "\n", "leading zeros"),
        ("o\n-1\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n+1\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n 1\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n1 \n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n1.0\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n0x1\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n1_000\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n\u0661\n" + b64(bytes(32)) + "\n", "decimal"),  # ARABIC-INDIC DIGIT ONE
        ("o\n\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n" + "1" * 21 + "\n" + b64(bytes(32)) + "\n", "decimal"),
        ("o\n5\n" + b64(bytes(31)) + "\n", "32-byte hash"),
        ("o\n5\n" + b64(bytes(33)) + "\n", "32-byte hash"),
        ("o\n5\n\n", "32-byte hash"),
        ("o\n5\n" + b64(bytes(32))[:-1] + "\n", "base64"),
        ("o\n5\n" + b64(bytes(32)).replace("A", "-", 1) + "\n", "base64"),
        ("o\n5\n" + "\u00e9" + b64(bytes(32))[1:] + "\n", "base64"),
        ("o\n5\n" + b64(bytes(32))[:-2] + "B=\n", "canonical base64"),
        ("o\n5\n" + b64(bytes(32)) + " \n", "base64"),
    ],
)
def test_malformed_checkpoint_text(text: str, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint("", 1, bytes(32)),
        Checkpoint("a\nb", 1, bytes(32)),
        Checkpoint("o", 1, bytes(32), ("",)),
        Checkpoint("o", 1, bytes(32), ("ok", "two\nlines")),
    ],
)
def test_to_text_refuses_what_parse_would_refuse(cp: Checkpoint) -> None:
    with pytest.raises(InvalidInput):
        cp.to_text()


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint(ORIGIN, -1, bytes(32)),
        Checkpoint(ORIGIN, True, bytes(32)),
        Checkpoint(ORIGIN, 1, bytes(31)),
        Checkpoint(ORIGIN, 1, b""),
    ],
    ids=["size -1", "size True", "31-byte root", "empty root"],
)
def test_sign_checkpoint_refuses_a_malformed_size_or_root(cp: Checkpoint) -> None:
    """Regression: `sign_checkpoint` must not sign a checkpoint that
    `verify_checkpoint` would then refuse ("-1", "True", a 31-byte root)."""
    with pytest.raises(InvalidInput):
        sign_checkpoint(cp, LOG)


# ---------------------------------------------------------------------------
# Signed checkpoints


def test_sign_checkpoint_needs_a_key_named_after_the_origin() -> None:
    with pytest.raises(InvalidInput, match="named after its origin"):
        sign_checkpoint(_checkpoint(3), WITNESS)


def test_verify_checkpoint_rejects_an_origin_other_than_the_key_name() -> None:
    # A note signed by the log's key whose text claims another origin.
    cp = Checkpoint("example.com/another-log", 3, TREE.root(3))
    signed = note.sign_note(cp.to_text(), [LOG])
    assert note.verify_note(signed, LOG.verifier) == cp.to_text()
    with pytest.raises(VerificationError, match="origin"):
        verify_checkpoint(signed, LOG.verifier)


def test_verify_checkpoint_with_cosignatures() -> None:
    cp = _checkpoint(9)
    cosigned = note.sign_note(cp.to_text(), [LOG, WITNESS])
    assert verify_checkpoint(cosigned, LOG.verifier.vkey) == cp
    witness_first = note.sign_note(cp.to_text(), [WITNESS, LOG])
    assert verify_checkpoint(witness_first, LOG.verifier) == cp
    # Only the witness: no signature by the log.
    only_witness = note.sign_note(cp.to_text(), [WITNESS])
    with pytest.raises(VerificationError, match="no verified signature"):
        verify_checkpoint(only_witness, LOG.verifier)


def test_verify_checkpoint_rejects_another_key_of_the_same_name() -> None:
    signed = sign_checkpoint(_checkpoint(5), OTHER)
    with pytest.raises(VerificationError, match="no verified signature"):
        verify_checkpoint(signed, LOG.verifier)


def test_verify_checkpoint_rejects_malformed_text_even_if_signed() -> None:
    for text in (f"{ORIGIN}\n05\n{b64(bytes(32))}\n", f"{ORIGIN}\n5\n", f"{ORIGIN}\n5\nx\n"):
        signed = note.sign_note(text, [LOG])
        with pytest.raises(VerificationError):
            verify_checkpoint(signed, LOG.verifier)


def test_verify_checkpoint_rejects_a_bad_vkey() -> None:
    signed = sign_checkpoint(_checkpoint(5), LOG)
    with pytest.raises(VerificationError):
        verify_checkpoint(signed, LOG.verifier.vkey[:-2])


def test_every_byte_of_a_signed_checkpoint_matters() -> None:
    signed = sign_checkpoint(_checkpoint(23, ("ext",)), LOG).encode()
    for pos in range(len(signed)):
        for mask in (0x01, 0x80):
            mutated = bytearray(signed)
            mutated[pos] ^= mask
            with pytest.raises(VerificationError):
                verify_checkpoint(bytes(mutated), LOG.verifier)


# ---------------------------------------------------------------------------
# tlog-proof


def _tlog_proof(index: int, size: int, extra: bytes | None = None) -> TlogProof:
    signed = sign_checkpoint(_checkpoint(size), LOG)
    return TlogProof(index, tuple(TREE.core_inclusion(index, size)), signed, extra)


def test_spec_example_proof_parses_and_round_trips() -> None:
    proof = parse_tlog_proof(SPEC_PROOF)
    assert proof.index == 73894
    assert proof.extra is not None
    assert proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert len(proof.proof) == 5
    assert proof.proof[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert proof.checkpoint.startswith("example.com/fancylog\n109482\n")
    assert proof.checkpoint.endswith("3oEcROGLFQ==\n")
    assert proof.to_text() == SPEC_PROOF
    # The example's signatures are elided, so it cannot verify.
    with pytest.raises(VerificationError):
        verify_tlog_proof(proof, bytes(32), "example.com/fancylog+00000000+" + b64(bytes(33)))


@pytest.mark.parametrize("extra", [None, b"", b"\x00", b"context: item 1234", bytes(range(256))])
@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 2), (5, 23), (22, 23), (16, 17)])
def test_tlog_proof_round_trip_and_verify(extra: bytes | None, index: int, size: int) -> None:
    proof = _tlog_proof(index, size, extra)
    text = proof.to_text()
    lines = text.split("\n")
    assert lines[0] == TLOG_PROOF_HEADER
    head = 1
    if extra is not None:
        assert lines[1] == "extra " + b64(extra)
        head = 2
    assert lines[head] == f"index {index}"
    assert lines[head + 1 : head + 1 + len(proof.proof)] == [b64(h) for h in proof.proof]
    assert lines[head + 1 + len(proof.proof)] == ""
    assert text.endswith("\n\n" + proof.checkpoint)

    again = parse_tlog_proof(text)
    assert again == proof
    cp = verify_tlog_proof(again, TREE.leaves[index], LOG.verifier.vkey)
    assert cp == _checkpoint(size)
    assert verify_tlog_proof(again, TREE.leaves[index], LOG.verifier) == cp


def test_verify_tlog_proof_failures() -> None:
    proof = _tlog_proof(5, 23)
    leaf = TREE.leaves[5]
    with pytest.raises(VerificationError):
        verify_tlog_proof(proof, TREE.leaves[6], LOG.verifier)  # another entry
    with pytest.raises(VerificationError):
        verify_tlog_proof(TlogProof(6, proof.proof, proof.checkpoint), leaf, LOG.verifier)
    with pytest.raises(VerificationError):
        verify_tlog_proof(proof, leaf, WITNESS.verifier)  # another key
    with pytest.raises(VerificationError):
        verify_tlog_proof(proof, leaf, OTHER.verifier)  # same name, another key
    tampered = proof.checkpoint.replace("\n23\n", "\n24\n")
    with pytest.raises(VerificationError):
        verify_tlog_proof(TlogProof(5, proof.proof, tampered), leaf, LOG.verifier)
    # A proof for another tree size, under this checkpoint.
    wrong = TlogProof(5, tuple(TREE.core_inclusion(5, 22)), proof.checkpoint)
    with pytest.raises(VerificationError):
        verify_tlog_proof(wrong, leaf, LOG.verifier)
    # The proof's text, mutated byte by byte, never verifies.
    text = proof.to_text()
    for pos in range(len(text)):
        mutated = text[:pos] + chr(ord(text[pos]) ^ 1) + text[pos + 1 :]
        try:
            parsed = parse_tlog_proof(mutated)
        except VerificationError:
            continue
        with pytest.raises(VerificationError):
            verify_tlog_proof(parsed, leaf, LOG.verifier)


def test_extra_data_is_not_authenticated() -> None:
    """The spec: applications must not trust `extra`; changing it does not break the proof."""
    proof = _tlog_proof(5, 23, b"one")
    changed = parse_tlog_proof(proof.to_text().replace(b64(b"one"), b64(b"two")))
    assert changed.extra == b"two"
    verify_tlog_proof(changed, TREE.leaves[5], LOG.verifier)


GOOD_PROOF = _tlog_proof(5, 23, b"x").to_text()
HASH = b64(bytes(32))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no blank line"),
        (GOOD_PROOF.replace("\n\n", "\n"), "no blank line"),
        ("c2sp.org/tlog-proof@v2\nindex 0\n\n", "must start with"),
        ("C2SP.org/tlog-proof@v1\nindex 0\n\n", "must start with"),
        (" c2sp.org/tlog-proof@v1\nindex 0\n\n", "must start with"),
        ("c2sp.org/tlog-proof@v1 \nindex 0\n\n", "must start with"),
        ("\nc2sp.org/tlog-proof@v1\nindex 0\n\n", "must start with"),
        ("c2sp.org/tlog-proof@v1\n\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\nextra AA==\n\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\n" + HASH + "\nindex 0\n\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\nindex 0\nextra AA==\n\n", "base64"),
        ("c2sp.org/tlog-proof@v1\nextra AA==\nextra AA==\nindex 0\n\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\nindex  0\n\n", "leading zeros"),
        ("c2sp.org/tlog-proof@v1\nindex 01\n\n", "leading zeros"),
        ("c2sp.org/tlog-proof@v1\nindex -1\n\n", "decimal"),
        ("c2sp.org/tlog-proof@v1\nindex \n\n", "decimal"),
        ("c2sp.org/tlog-proof@v1\nindex 1 \n\n", "decimal"),
        ("c2sp.org/tlog-proof@v1\nindex\t1\n\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\nextra AA=\nindex 0\n\n", "base64"),
        ("c2sp.org/tlog-proof@v1\nextra AB==\nindex 0\n\n", "canonical base64"),
        ("c2sp.org/tlog-proof@v1\nextra \u00e9\nindex 0\n\n", "base64"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + HASH[:-4] + "\n\n", "32-byte hash"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + HASH + "=\n\n", "base64"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + HASH + " \n\n", "base64"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + HASH + "\n \n\n", "base64"),
    ],
)
def test_malformed_tlog_proofs(text: str, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        parse_tlog_proof(text)


# ---------------------------------------------------------------------------
# Inclusion of exact entry bytes


def test_verify_inclusion_in_checkpoint() -> None:
    cp = _checkpoint(23)
    for index in range(23):
        proof = TREE.core_inclusion(index, 23)
        verify_inclusion_in_checkpoint(TREE.entries[index], index, proof, cp)
        with pytest.raises(VerificationError):
            verify_inclusion_in_checkpoint(TREE.entries[index] + b" ", index, proof, cp)
        # The leaf hash itself is not the entry: no second-preimage confusion.
        with pytest.raises(VerificationError):
            verify_inclusion_in_checkpoint(TREE.leaves[index], index, proof, cp)
    with pytest.raises(VerificationError):
        verify_inclusion_in_checkpoint(TREE.entries[0], 0, [], Checkpoint(ORIGIN, 0, TREE.root(0)))
    # An interior node passed off as an entry (RFC 6962's second-preimage attack).
    left, right = TREE.hash(0, 16), TREE.hash(16, 23)
    with pytest.raises(VerificationError):
        verify_inclusion_in_checkpoint(
            b"\x01" + left + right, 0, [], Checkpoint(ORIGIN, 1, cp.root_hash)
        )
    assert merkle.node_hash(left, right) == cp.root_hash
