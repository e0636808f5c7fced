"""C2SP signed notes (`evidence.chain.note`).

Besides the specification's own example, the vectors of Go's
golang.org/x/mod/sumdb/note tests (note_test.go, example_test.go: the
PeterNeumann and EnochRoot keys and notes) are used: Ed25519 is deterministic,
so signing the same text with the same key must give the very same note.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence

import pytest
from chain_helpers import stable_repr

from evidence.chain import note
from evidence.chain.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Signer,
    Verifier,
    parse_signer_key,
    parse_vkey,
    sign_note,
    split_note,
    verify_note,
)
from evidence.errors import InvalidInput, VerificationError

# c2sp.org/signed-note, "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# golang.org/x/mod/sumdb/note tests.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = (
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"  # seed: 32 zero bytes
)
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnW"
    "Lox33WWd1RvMc+QQ=\n"
)

ALICE = Signer("example.com/alice", bytes(range(32)))
BOB = Signer("example.com/bob", bytes(range(100, 132)))
TEXT = "line one\nline two\n"


def _sig_line(name: str, kid: int, sig: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(struct.pack('>I', kid) + sig).decode()}\n"


# ---------------------------------------------------------------------------
# Published examples


def test_spec_example() -> None:
    assert verify_note(SPEC_NOTE, SPEC_VKEY) == "This is an example message.\n"
    assert verify_note(SPEC_NOTE.encode(), parse_vkey(SPEC_VKEY)) == "This is an example message.\n"
    v = parse_vkey(SPEC_VKEY)
    assert (v.name, v.key_id, v.vkey) == ("example.com/foo", 0x530D903A, SPEC_VKEY)


def test_go_sumdb_note_keys() -> None:
    peter = parse_signer_key(PETER_SKEY)
    assert peter.name == "PeterNeumann"
    assert peter.skey == PETER_SKEY
    assert peter.verifier.vkey == PETER_VKEY
    assert parse_vkey(PETER_VKEY) == peter.verifier
    enoch = Signer("EnochRoot", bytes(32))
    assert enoch.verifier.vkey == ENOCH_VKEY
    assert enoch.verifier.key_id == 0xAF0CFE78


def test_go_sumdb_note_signatures_are_reproduced_exactly() -> None:
    peter = parse_signer_key(PETER_SKEY)
    enoch = Signer("EnochRoot", bytes(32))
    assert sign_note(GO_TEXT, [peter]) == GO_TEXT + "\n" + PETER_SIG
    assert sign_note(GO_TEXT, [peter, enoch]) == GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG


def test_go_sumdb_note_open_cases() -> None:
    both = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    # One verified, one unknown; both verified; none known.
    assert verify_note(both, PETER_VKEY) == GO_TEXT
    assert verify_note(both, [PETER_VKEY, ENOCH_VKEY]) == GO_TEXT
    assert verify_note(both, [ENOCH_VKEY]) == GO_TEXT
    with pytest.raises(VerificationError, match="no verified signature"):
        verify_note(both, [])
    # Too many signatures.
    with pytest.raises(VerificationError, match="more than"):
        verify_note(GO_TEXT + "\n" + PETER_SIG * 101, PETER_VKEY)
    # An invalid signature by the known key.
    bad = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(VerificationError, match="does not verify"):
        verify_note(bad, PETER_VKEY)
    # Repeated and corrupted signatures by an unknown key are ignored.
    messy = (
        GO_TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2 + ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    )
    assert verify_note(messy, PETER_VKEY) == GO_TEXT
    # Malformed notes.
    for msg in [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
        "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ]:
        with pytest.raises(VerificationError):
            verify_note(msg, PETER_VKEY)
    with pytest.raises(VerificationError, match="UTF-8"):
        verify_note(b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode(), PETER_VKEY)


# ---------------------------------------------------------------------------
# Signing and verifying


def test_round_trip_one_and_several_signers() -> None:
    signed = sign_note(TEXT, [ALICE])
    assert signed.startswith(TEXT + "\n\u2014 example.com/alice ")
    assert verify_note(signed, ALICE.verifier.vkey) == TEXT
    assert verify_note(signed.encode(), ALICE.verifier) == TEXT

    both = sign_note(TEXT, iter([ALICE, BOB]))  # any iterable of signers
    keysets: list[Sequence[str | Verifier]] = [
        [ALICE.verifier.vkey],
        [BOB.verifier],
        [ALICE.verifier, BOB.verifier.vkey],
        (ALICE.verifier.vkey, BOB.verifier.vkey),
    ]
    for keys in keysets:
        assert verify_note(both, keys) == TEXT
    text, sigs = split_note(both)
    assert text == TEXT
    assert [(s.name, s.key_id) for s in sigs] == [
        (ALICE.name, ALICE.verifier.key_id),
        (BOB.name, BOB.verifier.key_id),
    ]
    assert all(len(s.signature) == 64 for s in sigs)


@pytest.mark.parametrize(
    "text",
    [
        "a\n",
        "\n",
        "a\n\nb\n",
        "a\n\n\n\nb\n",
        "ends with a blank line\n\n",
        "two blank lines at the end\n\n\n",
        "\u2014 looks like a signature line\n\n\u2014 x AAAAAAA=\n",
        "unicode: \u00e9\u20ac\U0001f600 \u2028\n",
    ],
)
def test_text_is_split_at_the_last_blank_line(text: str) -> None:
    signed = sign_note(text, [ALICE])
    assert verify_note(signed, ALICE.verifier) == text
    assert split_note(signed)[0] == text


def test_signatures_by_unknown_keys_are_ignored() -> None:
    signed = sign_note(TEXT, [ALICE])
    junk = bytes(64)
    kid = ALICE.verifier.key_id
    for extra in (
        _sig_line(ALICE.name, kid ^ 1, junk),  # same name, other key ID
        _sig_line("example.com/mallory", kid, junk),  # same key ID, other name
        _sig_line("example.com/mallory", 0, b"\x00"),  # short but well-formed
    ):
        assert verify_note(signed + extra, ALICE.verifier) == TEXT
        assert verify_note(signed.replace("\n\n", "\n\n" + extra), ALICE.verifier) == TEXT


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    both = sign_note(TEXT, [ALICE, BOB])
    text, sigs = split_note(both)
    corrupt = bytearray(sigs[1].signature)
    corrupt[10] ^= 0x40
    tampered = (
        text
        + "\n"
        + _sig_line(ALICE.name, sigs[0].key_id, sigs[0].signature)
        + _sig_line(BOB.name, sigs[1].key_id, bytes(corrupt))
    )
    # Bob unknown: his broken signature is ignored and Alice's verifies...
    assert verify_note(tampered, [ALICE.verifier]) == TEXT
    # ...Bob known: his broken signature rejects the note even though Alice's verifies.
    with pytest.raises(VerificationError, match=r"example\.com/bob"):
        verify_note(tampered, [ALICE.verifier, BOB.verifier])
    with pytest.raises(VerificationError, match=r"example\.com/bob"):
        verify_note(tampered, [BOB.verifier, ALICE.verifier])


@pytest.mark.parametrize("length", [1, 32, 63, 65, 128])
def test_a_known_key_with_a_signature_of_the_wrong_length_rejects(length: int) -> None:
    kid = ALICE.verifier.key_id
    with pytest.raises(VerificationError, match="does not verify"):
        verify_note(TEXT + "\n" + _sig_line(ALICE.name, kid, b"\x01" * length), ALICE.verifier)
    assert not ALICE.verifier.is_valid_signature(TEXT.encode(), b"\x01" * length)


def test_a_signature_over_other_text_does_not_verify() -> None:
    signed = sign_note(TEXT, [ALICE])
    for other in ("line one\nline twO\n", "line one\nline two\n\n", "Line one\nline two\n"):
        sig_block = signed[len(TEXT) :]
        with pytest.raises(VerificationError, match="does not verify"):
            verify_note(other + sig_block, ALICE.verifier)


def test_no_known_key() -> None:
    signed = sign_note(TEXT, [ALICE])
    with pytest.raises(VerificationError, match="no verified signature"):
        verify_note(signed, BOB.verifier)
    with pytest.raises(VerificationError, match="no verified signature"):
        verify_note(signed, [BOB.verifier.vkey, PETER_VKEY])
    # The same key under another name is another key.
    renamed = Verifier("example.com/alice2", ALICE.verifier.public_key)
    with pytest.raises(VerificationError, match="no verified signature"):
        verify_note(signed, renamed)


# ---------------------------------------------------------------------------
# Malformed notes


GOOD = sign_note(TEXT, [ALICE])
GOOD_LINE = GOOD[len(TEXT) + 1 :]


@pytest.mark.parametrize(
    ("signed", "match"),
    [
        (TEXT + GOOD_LINE, "no blank line"),
        (GOOD[:-1], "end with a newline"),
        (TEXT + "\n", "end with a newline"),
        (TEXT + "\n\n", "end with a newline"),
        (GOOD + "\n", "end with a newline"),
        (GOOD.replace("\u2014 ", "- "), "em dash"),
        (GOOD.replace("\u2014 ", "\u2014"), "em dash"),
        (GOOD.replace("\u2014 ", "\u2013 "), "em dash"),  # en dash
        (GOOD + "trailer\n", "em dash"),
        (GOOD + "\n\u2014 \n", "invalid key name"),
        (GOOD.replace("\u2014 ", "\u2014  "), "invalid key name"),  # empty name
        (GOOD.replace("example.com/alice", "example.com+alice"), "invalid key name"),
        (GOOD.replace("example.com/alice ", "example.com/alice\u00a0"), "invalid key name"),
        (TEXT + "\n\u2014 example.com/alice\n", "invalid key name"),  # no signature
        (GOOD.replace("example.com/alice ", "example.com/alice  "), "base64"),
        (TEXT + "\n\u2014 a AAAA=AAA\n", "base64"),
        (TEXT + "\n\u2014 a AAAAAAA\n", "base64"),  # missing padding
        (TEXT + "\n\u2014 a AAAA AAA=\n", "base64"),
        (TEXT + "\n\u2014 a AAAA_-A=\n", "base64"),  # URL-safe alphabet
        (TEXT + "\n\u2014 a \u00e9AAAAAA=\n", "base64"),  # non-ASCII
        (TEXT + "\n\u2014 a \n", "too short"),
        (TEXT + "\n\u2014 a AAAAAA==\n", "too short"),  # 4 bytes: a key ID and nothing
    ],
)
def test_malformed_notes(signed: str, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        verify_note(signed, ALICE.verifier)
    with pytest.raises(VerificationError, match=match):
        split_note(signed.encode())


def test_five_byte_signatures_are_well_formed() -> None:
    """The format allows 4+n bytes with n >= 1; from an unknown key it is ignored."""
    text, sigs = split_note(TEXT + "\n\u2014 a AAAAAAA=\n")
    assert text == TEXT
    assert sigs == [note.NoteSignature("a", 0, b"\x00")]


@pytest.mark.parametrize(
    "char", ["\r", "\t", "\x00", "\x01", "\x1b", "\x1f", chr(0xD800), chr(0xDFFF)], ids=stable_repr
)
@pytest.mark.parametrize("where", ["text", "signature line", "blank line"])
def test_control_characters_and_surrogates_anywhere(char: str, where: str) -> None:
    if where == "text":
        signed = GOOD.replace("line one", f"line{char}one")
    elif where == "signature line":
        signed = GOOD[:-1] + char + "\n"
    else:
        signed = GOOD.replace("\n\n", f"\n{char}\n")
    with pytest.raises(VerificationError, match="forbidden character"):
        verify_note(signed, ALICE.verifier)


def test_crlf_line_endings_are_rejected() -> None:
    with pytest.raises(VerificationError, match="forbidden character U\\+000D"):
        verify_note(GOOD.replace("\n", "\r\n").encode(), ALICE.verifier)


@pytest.mark.parametrize(
    "data",
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\x8a", b"\xe2\x80"],
)
def test_invalid_utf8_bytes(data: bytes) -> None:
    signed = GOOD.encode()
    with pytest.raises(VerificationError, match="UTF-8"):
        verify_note(signed.replace(b"line one", b"line" + data + b"one"), ALICE.verifier)
    with pytest.raises(VerificationError, match="UTF-8"):
        verify_note(signed[:-1] + data + b"\n", ALICE.verifier)


def test_signature_count_limit() -> None:
    assert MAX_SIGNATURES >= 16  # the specification's minimum
    unknown = _sig_line("example.com/witness", 1, bytes(64))
    at_limit = GOOD + unknown * (MAX_SIGNATURES - 1)
    assert verify_note(at_limit, ALICE.verifier) == TEXT
    with pytest.raises(VerificationError, match="more than"):
        verify_note(at_limit + unknown, ALICE.verifier)


def test_note_size_limit() -> None:
    sig_block = "\n" + GOOD_LINE  # every Alice signature block has this length
    filler = "x" * 80 + "\n"
    budget = MAX_NOTE_SIZE - len(sig_block.encode())
    text = filler * (budget // len(filler))
    text += "y" * (budget - len(text) - 1) + "\n"
    signed = sign_note(text, [ALICE])
    assert len(signed.encode()) == MAX_NOTE_SIZE
    assert verify_note(signed, ALICE.verifier) == text
    assert verify_note(signed.encode(), ALICE.verifier) == text
    with pytest.raises(InvalidInput, match="signed note would be larger than"):
        sign_note("y" + text, [ALICE])  # the text fits; text and signature would not
    one_more = "y" + signed
    with pytest.raises(VerificationError, match="larger than"):
        verify_note(one_more, ALICE.verifier)
    with pytest.raises(VerificationError, match="larger than"):
        verify_note(one_more.encode(), ALICE.verifier)
    with pytest.raises(InvalidInput, match="larger than"):
        sign_note("z" * MAX_NOTE_SIZE + "\n", [ALICE])
    # Multi-byte characters count as bytes, not characters.
    euros = "\u20ac" * (MAX_NOTE_SIZE // 3 + 1) + "\n"
    assert len(euros) < MAX_NOTE_SIZE < len(euros.encode())
    with pytest.raises(VerificationError, match="larger than"):
        verify_note(euros + sig_block, ALICE.verifier)


def test_sign_note_refuses_more_signers_than_a_verifier_accepts() -> None:
    signers = [note.new_signer(f"signer{i}.example", bytes([i]) * 32) for i in range(101)]
    with pytest.raises(InvalidInput, match="at most 100 signatures"):
        sign_note("text\n", signers)
    assert sign_note("text\n", signers[:100]).count("\u2014 ") == 100


def test_non_canonical_base64_signature_is_rejected() -> None:
    """Regression: the last base64 character of a 68-byte signature carries two
    unused bits (RFC 4648 section 3.5). Setting them gives a different note,
    byte for byte, that decodes to the same signature; accepting it would make
    signed notes malleable. (Go's x/mod/sumdb/note does accept it.)"""
    line = GOOD_LINE
    b64 = line.rsplit(" ", 1)[1].rstrip("\n")
    assert b64.endswith("=")
    assert not b64.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-2])
    assert last & 0b11 == 0  # canonical: unused bits are zero
    variant = b64[:-2] + alphabet[last | 0b01] + "="
    assert base64.b64decode(variant) == base64.b64decode(b64)
    malleated = GOOD.replace(b64, variant)
    assert malleated != GOOD
    with pytest.raises(VerificationError, match="base64"):
        verify_note(malleated, ALICE.verifier)


# ---------------------------------------------------------------------------
# Keys


def test_key_id_is_the_specified_hash() -> None:
    v = ALICE.verifier
    digest = hashlib.sha256(ALICE.name.encode() + b"\n\x01" + v.public_key).digest()
    assert v.key_id == int.from_bytes(digest[:4], "big")
    assert note.key_id(ALICE.name, v.public_key) == v.key_id
    encoded = base64.b64encode(b"\x01" + v.public_key).decode()
    assert v.vkey == f"{ALICE.name}+{v.key_id:08x}+{encoded}"
    assert parse_vkey(v.vkey) == v
    assert parse_vkey(f"  {v.vkey}\n") == v  # a vkey file with its newline


def _vkey_with(name: str, raw: bytes) -> str:
    """A vkey with a correctly computed key ID for whatever `raw` holds."""
    digest = hashlib.sha256(name.encode() + b"\n" + raw).digest()
    return f"{name}+{digest[:4].hex()}+{base64.b64encode(raw).decode()}"


@pytest.mark.parametrize(
    ("vkey", "match"),
    [
        ("", "invalid key name"),
        ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "invalid key name"),
        ("example.com/foo", "key ID"),
        ("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match"),
        ("example.com/fo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match"),
        ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "lowercase hex"),
        ("example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 lowercase"),
        ("example.com/foo+0530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 lowercase"),
        ("example.com/foo+530d903g+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 lowercase"),
        ("example.com/foo+-30d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 lowercase"),
        ("example.com/foo+530d903a+", "Ed25519"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2", "base64"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k=", "base64"),
        ("example.com/foo+530d903a+\u00e9kyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "base64"),
        ("example foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "invalid key name"),
        ("exa\u3000mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "invalid key name"),
        # Other algorithms and lengths, each with a key ID computed to match.
        (_vkey_with("example.com/foo", b"\x02" + bytes(32)), "not an Ed25519 key"),
        (_vkey_with("example.com/foo", b"\x04" + bytes(32)), "not an Ed25519 key"),
        (_vkey_with("example.com/foo", b"\x01" + bytes(31)), "not an Ed25519 key"),
        (_vkey_with("example.com/foo", b"\x01" + bytes(33)), "not an Ed25519 key"),
        (_vkey_with("example.com/foo", b"\x01"), "not an Ed25519 key"),
    ],
)
def test_vkey_errors(vkey: str, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        parse_vkey(vkey)
    with pytest.raises(VerificationError):
        verify_note(SPEC_NOTE, vkey)


def test_vkey_manglings_from_go() -> None:
    """Port of x/mod's TestNewVerifier: every proper substring and every byte+1 fails."""
    key = PETER_VKEY
    parse_vkey(key)
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                with pytest.raises(VerificationError):
                    parse_vkey(key[i:j])
    for i in range(len(key)):
        mangled = key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]
        with pytest.raises(VerificationError):
            parse_vkey(mangled)


def test_signer_key_round_trip() -> None:
    for signer in (ALICE, BOB, Signer("n", bytes(32)), note.new_signer("a.b/c", b"\xff" * 32)):
        skey = signer.skey
        assert skey.startswith("PRIVATE+KEY+" + signer.name + "+")
        again = parse_signer_key(skey)
        assert again == signer
        assert again.verifier == signer.verifier
        assert parse_signer_key(skey + "\n") == signer


def test_signer_key_manglings_from_go() -> None:
    """Port of x/mod's TestNewSigner."""
    key = PETER_SKEY
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                with pytest.raises(VerificationError):
                    parse_signer_key(key[i:j])
    for i in range(len(key)):
        mangled = key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]
        with pytest.raises(VerificationError):
            parse_signer_key(mangled)


@pytest.mark.parametrize(
    ("skey", "match"),
    [
        (PETER_VKEY, "must start with"),
        ("private+key+" + PETER_SKEY[12:], "must start with"),
        (PETER_SKEY.replace("c74f20a3", "c74f20a4"), "does not match"),
        (PETER_SKEY.replace("c74f20a3", "C74F20A3"), "lowercase hex"),
        ("PRIVATE+KEY+" + _vkey_with("n", b"\x02" + bytes(32)), "not an Ed25519 key"),
        ("PRIVATE+KEY+" + _vkey_with("n", b"\x01" + bytes(64)), "not an Ed25519 key"),
        ("PRIVATE+KEY+" + PETER_VKEY, "does not match"),  # a public key is not a seed
        ("PRIVATE+KEY++c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "invalid key name"),
    ],
)
def test_signer_key_errors(skey: str, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        parse_signer_key(skey)


def test_signer_repr_hides_the_seed() -> None:
    seed = bytes(range(200, 232))
    signer = Signer("example.com/secret", seed)
    for shown in (repr(signer), str(signer), f"{signer!r}", repr([signer])):
        assert "example.com/secret" in shown
        assert f"{signer.verifier.key_id:08x}" in shown
        assert repr(seed) not in shown
        assert seed.hex() not in shown
        assert base64.b64encode(seed).decode() not in shown
        assert base64.b64encode(b"\x01" + seed).decode() not in shown
        assert "seed" not in shown


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "\u3000"]
)
def test_invalid_key_names(name: str) -> None:
    assert not note.is_valid_key_name(name)
    with pytest.raises(InvalidInput, match="invalid key name"):
        Signer(name, bytes(32))
    with pytest.raises(VerificationError, match="invalid key name"):
        Verifier(name, ALICE.verifier.public_key)


@pytest.mark.parametrize("name", ["a", "example.com/log", "\u00e9", "x/y/z?q=1", "\U0001f600"])
def test_valid_key_names(name: str) -> None:
    assert note.is_valid_key_name(name)
    signer = Signer(name, bytes(32))
    assert verify_note(sign_note(TEXT, [signer]), signer.verifier.vkey) == TEXT


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_key_lengths(length: int) -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        Signer("n", bytes(length))
    with pytest.raises(VerificationError, match="32 bytes"):
        Verifier("n", bytes(length))


def test_sign_note_input_errors() -> None:
    with pytest.raises(InvalidInput, match="end with a newline"):
        sign_note("no newline", [ALICE])
    with pytest.raises(InvalidInput, match="end with a newline"):
        sign_note("", [ALICE])
    with pytest.raises(InvalidInput, match="at least one signer"):
        sign_note(TEXT, [])
    with pytest.raises(InvalidInput, match="at least one signer"):
        sign_note(TEXT, iter(()))
    for bad in ("a\rb\n", "a\tb\n", "\x00\n", "a\ud800\n", "a\r\n"):
        with pytest.raises(InvalidInput, match="forbidden character"):
            sign_note(bad, [ALICE])


def test_raw_sign_and_verify() -> None:
    message = b"raw message"
    sig = ALICE.sign(message)
    assert len(sig) == 64
    assert ALICE.verifier.is_valid_signature(message, sig)
    assert not ALICE.verifier.is_valid_signature(message + b"!", sig)
    assert not BOB.verifier.is_valid_signature(message, sig)
    assert not ALICE.verifier.is_valid_signature(message, sig[:63])
    # A non-canonical S (s + L) is refused by libsodium.
    ell = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + ell
    assert not ALICE.verifier.is_valid_signature(message, sig[:32] + s.to_bytes(32, "little"))


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xfe", bytes(range(256)), bytes(32)])
def test_b64encode_is_the_inverse_of_b64decode_strict(data: bytes) -> None:
    """One public encoder, the canonical spelling that `b64decode_strict` accepts."""
    text = note.b64encode(data)
    assert text == base64.b64encode(data).decode("ascii")
    assert note.b64decode_strict(text, "x") == data
    assert note.b64encode(bytearray(data)) == note.b64encode(memoryview(data)) == text
