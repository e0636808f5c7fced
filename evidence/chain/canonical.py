"""Canonical JSON: RFC 8785 (JCS) restricted to integers.

Every signed or hashed JSON document in `evidence` is in this form:

* objects with keys sorted by their UTF-16 code units (RFC 8785, section 3.2.3);
* no insignificant whitespace; UTF-8;
* strings escaped exactly as RFC 8785 section 3.2.2.2 says: ``"`` and ``\\``,
  the short escapes ``\\b \\t \\n \\f \\r``, other controls below U+0020 as
  ``\\u00xx`` (lowercase hex), every other character as itself;
* numbers are integers within the I-JSON safe range (RFC 7493 section 2.2),
  never floating point: decimals such as coordinates are strings;
* ``true``, ``false``, ``null``.

`encode` produces these bytes from any mapping (objects) and list or tuple
(arrays). `decode` is for verification: it accepts only bytes that are already
canonical (it re-encodes what it parsed and compares), and rejects floats,
duplicate keys, invalid UTF-8, lone surrogates and nesting deeper than
`MAX_DEPTH`.

`freeze` makes a deep, immutable and hashable copy of a JSON value (objects
become `FrozenObject`, arrays tuples) for the frozen dataclasses that hold one;
`thaw` turns it back into plain dicts and lists. Both encode to the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from evidence.errors import InvalidInput, VerificationError

# RFC 7493 section 2.2: integers outside this range lose precision in other
# JSON implementations (every JavaScript one), so they are refused.
MAX_SAFE_INTEGER = 2**53 - 1

# Nesting limit: no evidence document comes near it; it keeps a hostile
# document from exhausting the stack of a verifier.
MAX_DEPTH = 32

JsonValue = Any  # None | bool | int | str | list[JsonValue] | dict[str, JsonValue]


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


# The json module's string encoder for ensure_ascii=False escapes exactly what
# RFC 8785 escapes, with lowercase hex, and leaves every other character as itself.
_encode_string = json.encoder.encode_basestring


def _encode(value: JsonValue, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"canonical JSON: nesting deeper than {MAX_DEPTH}")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif type(value) is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise InvalidInput(f"canonical JSON: integer {value} outside ±(2^53-1)")
        out.append(str(value))
    elif type(value) is str:
        out.append(_encode_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, Mapping):
        keys = list(value)
        if not all(type(k) is str for k in keys):
            raise InvalidInput("canonical JSON: object keys must be strings")
        out.append("{")
        for i, key in enumerate(sorted(keys, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _encode(value[key], out, depth + 1)
        out.append("}")
    else:
        raise InvalidInput(
            f"canonical JSON: {type(value).__name__} is not allowed "
            "(only integers, strings, booleans, null, arrays and objects)"
        )


def encode(value: JsonValue) -> bytes:
    """Return the canonical JSON bytes of `value`.

    Raises `InvalidInput` for floats, integers outside the safe range,
    non-string keys, lone surrogates, other types and excessive nesting.
    """
    out: list[str] = []
    _encode(value, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("canonical JSON: string contains a lone surrogate") from exc


def _reject_float(text: str) -> Any:
    raise VerificationError(f"canonical JSON: number {text!r} is not an integer")


def _parse_int(text: str) -> int:
    # Checked before int() so that a huge literal is refused cheaply.
    if len(text.lstrip("-")) > len(str(MAX_SAFE_INTEGER)):
        raise VerificationError(f"canonical JSON: integer {text[:20]}... outside ±(2^53-1)")
    return int(text)


def _reject_constant(text: str) -> Any:
    raise VerificationError(f"canonical JSON: {text} is not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise VerificationError(f"canonical JSON: duplicate key {key!r}")
        obj[key] = value
    return obj


def decode(data: bytes | bytearray | memoryview) -> JsonValue:
    """Parse `data`, which must already be canonical JSON; raise `VerificationError` if not."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise VerificationError(f"canonical JSON: expected bytes, not {type(data).__name__}")
    try:
        data = bytes(data)
    except ValueError as exc:  # a released memoryview
        raise VerificationError(f"canonical JSON: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"canonical JSON: invalid UTF-8 at byte {exc.start}") from exc
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_float=_reject_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise VerificationError(f"canonical JSON: {exc.msg} at character {exc.pos}") from exc
    except RecursionError as exc:
        raise VerificationError("canonical JSON: nesting too deep") from exc
    try:
        canonical = encode(value)
    except InvalidInput as exc:
        raise VerificationError(str(exc)) from exc
    if canonical != data:
        raise VerificationError("canonical JSON: input is not in canonical form")
    return value


# -- frozen values ------------------------------------------------------------

# The leaves `freeze` keeps as they are: immutable, and what JSON's scalars map
# to. Floats are kept (not refused) so that `encode`, not `freeze`, says why a
# float is not canonical JSON.
_FROZEN_LEAVES = (type(None), bool, int, float, str)


class FrozenObject(Mapping[str, Any]):
    """An immutable, hashable JSON object whose values are frozen too (see `freeze`).

    It equals any mapping with the same items, arrays compared as lists
    (``FrozenObject`` holds tuples where the mapping may hold lists).
    """

    __slots__ = ("_hash", "_items")

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self._items: dict[str, Any] = {key: freeze(value) for key, value in obj.items()}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return bool(thaw(self) == thaw(other))

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[type[FrozenObject], tuple[dict[str, Any]]]:
        return (FrozenObject, (self._items,))


def _freeze(value: JsonValue) -> JsonValue:
    if isinstance(value, (FrozenObject, *_FROZEN_LEAVES)):
        return value
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, Mapping):
        return FrozenObject(value)
    raise InvalidInput(f"canonical JSON: {type(value).__name__} cannot be frozen")


def freeze(value: JsonValue) -> JsonValue:
    """A deep, immutable, hashable copy of `value`: objects as `FrozenObject`, arrays as tuples.

    Raises `InvalidInput` for values that are not JSON (floats excepted: see
    `_FROZEN_LEAVES`) and for nesting beyond what the interpreter can recurse.
    """
    try:
        return _freeze(value)
    except RecursionError as exc:
        raise InvalidInput("canonical JSON: nesting too deep to freeze") from exc


def thaw(value: JsonValue) -> JsonValue:
    """A plain copy of `value`: every mapping as a dict, every list or tuple as a list."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(item) for item in value]
    return value
