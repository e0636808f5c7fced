"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> base64(key ID || signature)``. The text is separated from the
signatures by the *last* blank line. A key is named by ``(name, key ID)`` where
``key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

Verification follows the specification: signatures by unknown keys are
ignored, a signature by a known key that fails rejects the whole note, and a
note with no verified signature by a known key is rejected.

Key encodings:

* verifier key: ``<name>+<hex key ID>+base64(0x01 || public key)``;
* signer key (the C2SP/Go private-key form):
  ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)``.

Ed25519 is RFC 8032 as implemented by libsodium (through PyNaCl), which also
rejects non-canonical signatures and small-order public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

from evidence.errors import InvalidInput, VerificationError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64

# The specification asks verifiers to bound notes and to accept at least 16
# signatures; a checkpoint with witness cosignatures is far below both limits.
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise VerificationError(f"{what} must be a str, not {type(value).__name__}")
    return value


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 with padding, in its one canonical spelling (unused bits zero)."""
    text = _require_str(text, what)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise VerificationError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{what} is not canonical base64")
    return raw


def b64encode(data: bytes | bytearray | memoryview) -> str:
    """Standard base64 with padding: the one spelling `b64decode_strict` accepts."""
    return base64.b64encode(data).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty strings, without Unicode spaces and without '+'."""
    return (
        isinstance(name, str)
        and bool(name)
        and "+" not in name
        and not any(ch.isspace() for ch in name)
    )


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise VerificationError(f"invalid key name {self.name!r}")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != ED25519_KEY_SIZE:
            raise VerificationError("Ed25519 public key must be 32 bytes")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @property
    def vkey(self) -> str:
        encoded = b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def is_valid_signature(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True


@dataclass(frozen=True, repr=False)
class Signer:
    """An Ed25519 note signer. Its repr never shows the seed."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise InvalidInput(f"invalid key name {self.name!r}")
        if len(self.seed) != ED25519_KEY_SIZE:
            raise InvalidInput("Ed25519 seed must be 32 bytes")

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.verifier.key_id:08x})"

    @property
    def verifier(self) -> Verifier:
        public = nacl.signing.SigningKey(self.seed).verify_key.encode()
        return Verifier(self.name, public)

    def sign(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of `message`."""
        return nacl.signing.SigningKey(self.seed).sign(message).signature

    @property
    def skey(self) -> str:
        """This key in the C2SP private-key form; write it only to a 0600 file."""
        encoded = b64encode(bytes([ALG_ED25519]) + self.seed)
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.verifier.key_id:08x}+{encoded}"


def _split_key(text: str, what: str) -> tuple[str, int, bytes]:
    """Split ``name+hex8+base64(0x01||key)`` into name, key ID and key bytes."""
    name, _, rest = text.partition("+")
    id_hex, _, key_b64 = rest.partition("+")
    if not is_valid_key_name(name):
        raise VerificationError(f"{what}: invalid key name {name!r}")
    if len(id_hex) != 8 or any(c not in "0123456789abcdef" for c in id_hex):
        raise VerificationError(f"{what}: key ID must be 8 lowercase hex digits")
    raw = b64decode_strict(key_b64, f"{what} key")
    if len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != ALG_ED25519:
        raise VerificationError(f"{what}: not an Ed25519 key (type 0x01, 32 bytes)")
    return name, int(id_hex, 16), raw[1:]


def parse_vkey(vkey: str) -> Verifier:
    """Parse a verifier key ``name+hex8+base64(0x01||pubkey)``; check its key ID."""
    vkey = _require_str(vkey, "a verifier key")
    name, kid, public = _split_key(vkey.strip(), "verifier key")
    verifier = Verifier(name, public)
    if verifier.key_id != kid:
        raise VerificationError("verifier key: key ID does not match name and key")
    return verifier


def parse_signer_key(skey: str) -> Signer:
    """Parse a signer key in the C2SP private-key form; check its key ID."""
    skey = _require_str(skey, "a signer key").strip()
    if not skey.startswith(PRIVATE_KEY_PREFIX):
        raise VerificationError(f"signer key must start with {PRIVATE_KEY_PREFIX!r}")
    name, kid, seed = _split_key(skey[len(PRIVATE_KEY_PREFIX) :], "signer key")
    signer = Signer(name, seed)
    if signer.verifier.key_id != kid:
        raise VerificationError("signer key: key ID does not match name and key")
    return signer


def new_signer(name: str, seed: bytes) -> Signer:
    """A signer named `name` from 32 random bytes from the caller (the core has no randomness)."""
    return Signer(name, seed)


def _check_text(note: str) -> None:
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_SIZE:
        raise VerificationError(f"note is larger than {MAX_NOTE_SIZE} bytes")
    for ch in note:
        if (ch < " " and ch != "\n") or "\ud800" <= ch <= "\udfff":
            raise VerificationError(f"note contains forbidden character U+{ord(ch):04X}")


def sign_note(text: str, signers: Iterable[Signer]) -> str:
    """Sign `text` (which must end in a newline) with every signer; return the note."""
    if not text.endswith("\n"):
        raise InvalidInput("note text must end with a newline")
    try:
        _check_text(text)  # before signing anything
    except VerificationError as exc:
        raise InvalidInput(str(exc)) from exc
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        sig = struct.pack(">I", signer.verifier.key_id) + signer.sign(message)
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {b64encode(sig)}\n")
    if not lines:
        raise InvalidInput("a note needs at least one signer")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidInput(f"a note carries at most {MAX_SIGNATURES} signatures")
    signed = text + "\n" + "".join(lines)
    if len(signed.encode("utf-8")) > MAX_NOTE_SIZE:
        raise InvalidInput(f"the signed note would be larger than {MAX_NOTE_SIZE} bytes")
    return signed


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes


def split_note(note: str | bytes | bytearray | memoryview) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and signature lines, checking the format only."""
    if isinstance(note, bytes | bytearray | memoryview):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationError("note is not valid UTF-8") from exc
        except ValueError as exc:  # a released memoryview
            raise VerificationError(f"note: {exc}") from exc
    note = _require_str(note, "a note")
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("note has no blank line before its signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block.endswith("\n"):
        raise VerificationError("note signatures must end with a newline")
    signatures = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationError("note signature line must start with an em dash and a space")
        name, sep, sig_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or not is_valid_key_name(name):
            raise VerificationError(f"note signature line has an invalid key name {name!r}")
        raw = b64decode_strict(sig_b64, "note signature")
        if len(raw) < 5:
            raise VerificationError("note signature is too short")
        signatures.append(NoteSignature(name, int(struct.unpack(">I", raw[:4])[0]), raw[4:]))
    if len(signatures) > MAX_SIGNATURES:
        raise VerificationError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, signatures


def _verifiers(vkey: str | Verifier | Iterable[str | Verifier]) -> list[Verifier]:
    """`vkey` (one key or an iterable of them, each a str or `Verifier`) as Verifiers."""
    if isinstance(vkey, str | Verifier):
        keys: list[str | Verifier] = [vkey]
    elif isinstance(vkey, bytes | bytearray | memoryview):  # iterable, but of ints
        raise VerificationError(f"a verifier key must be a str, not {type(vkey).__name__}")
    else:
        try:
            keys = list(vkey)
        except TypeError as exc:
            raise VerificationError(
                f"a verifier key must be a str or a Verifier, not {type(vkey).__name__}"
            ) from exc
    return [key if isinstance(key, Verifier) else parse_vkey(key) for key in keys]


def verify_note(
    note: str | bytes | bytearray | memoryview,
    vkey: str | Verifier | Iterable[str | Verifier],
) -> str:
    """Return the text of `note` if a known key verifies it; raise `VerificationError` otherwise.

    `vkey` is one verifier key (string or `Verifier`) or several. Signatures
    from keys not among them are ignored; a failing signature from one of them
    rejects the note.
    """
    known = {(parsed.name, parsed.key_id): parsed for parsed in _verifiers(vkey)}
    text, signatures = split_note(note)
    message = text.encode("utf-8")
    verified = False
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.is_valid_signature(message, sig.signature):
            raise VerificationError(f"note signature by {sig.name} does not verify")
        verified = True
    if not verified:
        raise VerificationError("note has no verified signature by a known key")
    return text
