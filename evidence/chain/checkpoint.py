"""C2SP checkpoints (c2sp.org/tlog-checkpoint) and offline proofs (c2sp.org/tlog-proof).

A checkpoint is the note text::

    <origin>
    <tree size, decimal, no leading zeros>
    <root hash, base64>
    [extension lines, each non-empty]

signed as a C2SP signed note by the log's key, whose name is the origin.

A tlog-proof binds one entry to a checkpoint::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <decimal>
    <inclusion proof hashes, base64, one per line, leaf sibling first>

    <checkpoint note, verbatim>
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from evidence.chain import merkle, note
from evidence.errors import InvalidInput, VerificationError

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

# Tree sizes and indexes are unsigned 64-bit integers wherever else they are
# read (RFC 9162 section 4.1; transparency-dev/formats parses a checkpoint's size
# with strconv.ParseUint(s, 10, 64)). A larger one, which every other verifier
# refuses, is refused here too, so that no note verifies for us and not for them.
MAX_UINT64 = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")  # 2**64 - 1 has 20 digits


def _parse_decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise VerificationError(f"{what} {text!r} is not a decimal without leading zeros")
    value = int(text)
    if value > MAX_UINT64:
        raise VerificationError(f"{what} {text} is larger than 2**64-1")
    return value


def _parse_hash(text: str, what: str) -> bytes:
    raw = note.b64decode_strict(text, what)
    if len(raw) != merkle.HASH_SIZE:
        raise VerificationError(f"{what} is not a {merkle.HASH_SIZE}-byte hash")
    return raw


def _require(value: object, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise VerificationError(f"{what} must be a {kind.__name__}, not {type(value).__name__}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def to_text(self) -> str:
        if type(self.size) is not int or self.size < 0:
            raise InvalidInput("checkpoint size must be a non-negative integer")
        if self.size > MAX_UINT64:
            raise InvalidInput(f"checkpoint size {self.size} is larger than 2**64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != merkle.HASH_SIZE:
            raise InvalidInput(f"checkpoint root hash must be {merkle.HASH_SIZE} bytes")
        if not self.origin or "\n" in self.origin:
            raise InvalidInput("checkpoint origin must be one non-empty line")
        if any(not line or "\n" in line for line in self.extensions):
            raise InvalidInput("checkpoint extension lines must be non-empty single lines")
        lines = [self.origin, str(self.size), note.b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (already verified); raise `VerificationError` if malformed."""
    _require(text, str, "checkpoint text")
    if not text.endswith("\n"):
        raise VerificationError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError("checkpoint needs origin, size and root hash lines")
    origin, size, root, *extensions = lines
    if not origin:
        raise VerificationError("checkpoint origin is empty")
    if any(not line for line in extensions):
        raise VerificationError("checkpoint extension lines must be non-empty")
    return Checkpoint(
        origin,
        _parse_decimal(size, "checkpoint size"),
        _parse_hash(root, "checkpoint root hash"),
        tuple(extensions),
    )


def sign_checkpoint(checkpoint: Checkpoint, signer: note.Signer) -> str:
    """The signed note of `checkpoint`; the signer's name must be the origin."""
    if signer.name != checkpoint.origin:
        raise InvalidInput("a log signs checkpoints with a key named after its origin")
    return note.sign_note(checkpoint.to_text(), [signer])


def verify_checkpoint(
    signed: str | bytes | bytearray | memoryview, vkey: str | note.Verifier
) -> Checkpoint:
    """Verify a signed checkpoint with the log's key; its origin must be the key's name."""
    verifier = vkey if isinstance(vkey, note.Verifier) else note.parse_vkey(vkey)
    checkpoint = parse_checkpoint(note.verify_note(signed, verifier))
    if checkpoint.origin != verifier.name:
        raise VerificationError(
            f"checkpoint origin {checkpoint.origin!r} is not the key's name {verifier.name!r}"
        )
    return checkpoint


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed checkpoint note, verbatim
    extra: bytes | None = None

    def to_text(self) -> str:
        if type(self.index) is not int or not 0 <= self.index <= MAX_UINT64:
            raise InvalidInput("tlog-proof index must be an integer from 0 to 2**64-1")
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {note.b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(note.b64encode(h) for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse_tlog_proof(text: str) -> TlogProof:
    """Parse a ``.tlog-proof`` file; raise `VerificationError` if malformed."""
    _require(text, str, "tlog-proof text")
    head, sep, checkpoint_note = text.partition("\n\n")
    if not sep:
        raise VerificationError("tlog-proof has no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise VerificationError(f"tlog-proof must start with {TLOG_PROOF_HEADER!r}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = note.b64decode_strict(rest[0][6:], "tlog-proof extra data")
        rest = rest[1:]
    if not rest or not rest[0].startswith("index "):
        raise VerificationError("tlog-proof has no index line")
    index = _parse_decimal(rest[0][6:], "tlog-proof index")
    hashes = tuple(_parse_hash(line, "tlog-proof hash") for line in rest[1:])
    return TlogProof(index, hashes, checkpoint_note, extra)


def verify_tlog_proof(proof: TlogProof, leaf_hash: bytes, vkey: str | note.Verifier) -> Checkpoint:
    """Verify the checkpoint's signature and the entry's inclusion in it; return the checkpoint."""
    _require(proof, TlogProof, "a tlog-proof")
    checkpoint = verify_checkpoint(proof.checkpoint, vkey)
    merkle.verify_inclusion(
        leaf_hash, proof.index, checkpoint.size, proof.proof, checkpoint.root_hash
    )
    return checkpoint


def verify_inclusion_in_checkpoint(
    entry: bytes | bytearray | memoryview,
    index: int,
    proof: Iterable[bytes] | None,
    checkpoint: Checkpoint,
) -> None:
    """Check that the exact bytes `entry` are leaf `index` of `checkpoint`'s tree."""
    if not isinstance(entry, bytes | bytearray | memoryview):
        raise VerificationError(f"entry must be bytes, not {type(entry).__name__}")
    _require(checkpoint, Checkpoint, "checkpoint")
    try:
        data = bytes(entry)
    except ValueError as exc:  # a released memoryview
        raise VerificationError(f"entry: {exc}") from exc
    merkle.verify_inclusion(
        merkle.leaf_hash(data), index, checkpoint.size, proof, checkpoint.root_hash
    )
