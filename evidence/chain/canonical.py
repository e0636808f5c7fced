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

`encode` produces these bytes. `decode` is for verification: it accepts only
bytes that are already canonical (it re-encodes what it parsed and compares),
and rejects floats, duplicate keys, invalid UTF-8, lone surrogates and
nesting deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import json
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
    elif isinstance(value, dict):
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


def decode(data: bytes) -> JsonValue:
    """Parse `data`, which must already be canonical JSON; raise `VerificationError` if not."""
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
