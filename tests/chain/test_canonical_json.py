"""Canonical JSON (`evidence.chain.canonical`): RFC 8785 (JCS) restricted to integers."""

from __future__ import annotations

import copy
import enum
import json
import pickle
import random
import types
from typing import Any

import pytest
from chain_helpers import stable_repr
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.chain import canonical
from evidence.chain.canonical import MAX_DEPTH, MAX_SAFE_INTEGER, decode, encode
from evidence.errors import InvalidInput, VerificationError

# ---------------------------------------------------------------------------
# RFC 8785 examples


def test_rfc8785_sorting_example() -> None:
    """RFC 8785 section 3.2.3: keys sorted by their UTF-16 code units."""
    value = json.loads(
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return",'
        ' "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",'
        ' "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis"}'
    )
    out = encode(value)
    assert [v for v in json.loads(out).values()] == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]
    assert decode(out) == value


def test_keys_outside_the_bmp_sort_by_utf16_not_by_code_point() -> None:
    """U+1F600 is the surrogate pair D83D DE00 in UTF-16, below U+E000: code
    point order (and UTF-8 byte order) would put it last."""
    value = {"\U0001f600": 1, "\ue000": 2, "\uffff": 3, "z": 4}
    assert encode(value) == '{"z":4,"\U0001f600":1,"\ue000":2,"\uffff":3}'.encode()
    assert sorted(value) != list(json.loads(encode(value)))  # not Python's str order
    # The same order is required of input: the code-point order is not canonical.
    with pytest.raises(VerificationError, match="canonical form"):
        decode('{"z":4,"\ue000":2,"\uffff":3,"\U0001f600":1}'.encode())


def test_rfc8785_string_example() -> None:
    """RFC 8785 section 3.2.4 (its non-number part)."""
    text = (
        '{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    assert encode(json.loads(text)) == expected.encode("utf-8")
    assert decode(expected.encode("utf-8")) == json.loads(text)
    # The example's numbers part is floating point, which this profile refuses.
    with pytest.raises(VerificationError, match="not an integer"):
        decode(b'{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}')


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\b", "\\b"),
        ("\t", "\\t"),
        ("\n", "\\n"),
        ("\f", "\\f"),
        ("\r", "\\r"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("\x00", "\\u0000"),
        ("\x01", "\\u0001"),
        ("\x0b", "\\u000b"),
        ("\x1a", "\\u001a"),
        ("\x1f", "\\u001f"),
        # Everything else is itself: "/", DEL, non-ASCII, line separators, astral.
        ("/", "/"),
        ("\x7f", "\x7f"),
        ("é", "é"),
        ("\u2028", "\u2028"),
        ("\ufeff", "\ufeff"),
        ("\U0001f600", "\U0001f600"),
    ],
)
def test_string_escaping(char: str, escaped: str) -> None:
    data = f'"a{escaped}b"'.encode()
    assert encode(f"a{char}b") == data
    assert decode(data) == f"a{char}b"


@pytest.mark.parametrize(
    "data",
    [
        b'"\\u000A"',  # short escape exists
        b'"\\u001F"',  # uppercase hex
        b'"\\/"',  # escaped solidus
        b'"\\u00e9"',  # escaped non-ASCII
        b'"\\u0041"',  # escaped ASCII
        b'"\\ud83d\\ude00"',  # escaped astral character
        b'"\\u007f"',
    ],
)
def test_other_escapes_are_not_canonical(data: bytes) -> None:
    json.loads(data)  # valid JSON...
    with pytest.raises(VerificationError, match="canonical form"):
        decode(data)  # ...but not canonical


def test_raw_control_characters_in_strings_are_not_json() -> None:
    with pytest.raises(VerificationError):
        decode(b'"a\x01b"')
    with pytest.raises(VerificationError):
        decode(b'"a\nb"')


# ---------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize("n", [0, 1, -1, 42, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])
def test_safe_integers(n: int) -> None:
    assert MAX_SAFE_INTEGER == 2**53 - 1
    assert encode(n) == str(n).encode()
    assert decode(str(n).encode()) == n
    assert decode(encode([n])) == [n]


@pytest.mark.parametrize("n", [2**53, -(2**53), 2**64, -(2**100)])
def test_unsafe_integers(n: int) -> None:
    with pytest.raises(InvalidInput, match="outside"):
        encode(n)
    with pytest.raises(VerificationError, match="outside"):
        decode(str(n).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"1.0",
        b"1e5",
        b"1E5",
        b"1e-5",
        b"0.5",
        b"-0.0",
        b"[1.5]",
        b'{"a":2.0}',
    ],
)
def test_floats_are_rejected(data: bytes) -> None:
    with pytest.raises(VerificationError, match="not an integer"):
        decode(data)


@pytest.mark.parametrize("data", [b"NaN", b"Infinity", b"-Infinity", b"[NaN]"])
def test_non_finite_constants_are_rejected(data: bytes) -> None:
    with pytest.raises(VerificationError, match="not JSON"):
        decode(data)


@pytest.mark.parametrize("data", [b"-0", b"01", b"+1", b"00", b"0x10"])
def test_non_canonical_integer_spellings_are_rejected(data: bytes) -> None:
    with pytest.raises(VerificationError):
        decode(data)


def test_huge_integer_literal_is_a_verification_error() -> None:
    """Regression: Python refuses int literals over 4300 digits with a plain
    ValueError, which must not escape `decode` as anything but VerificationError."""
    with pytest.raises(VerificationError):
        decode(b"1" * 5000)
    with pytest.raises(VerificationError):
        decode(b'{"size":' + b"9" * 4301 + b"}")


# ---------------------------------------------------------------------------
# Structure


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"a":1,"a":1}', "duplicate key"),
        (b'{"x":{"k":true,"k":false}}', "duplicate key"),
        (b'{"b":1,"a":2}', "canonical form"),
        (b' {"a":1}', "canonical form"),
        (b'{"a":1} ', "canonical form"),
        (b'{"a": 1}', "canonical form"),
        (b'{"a":1,\n"b":2}', "canonical form"),
        (b"[1, 2]", "canonical form"),
        (b"\t1", "canonical form"),
        (b"", "Expecting value"),
        (b"[1,]", "canonical JSON"),
        (b'{"a":1', "canonical JSON"),
        (b"true false", "Extra data"),
        (b"\xef\xbb\xbf1", "canonical JSON"),  # UTF-8 BOM
        (b"True", "canonical JSON"),
        (b"nul", "canonical JSON"),
    ],
)
def test_malformed_or_non_canonical_documents(data: bytes, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b'"\xff"',
        b'"\xc3"',  # truncated sequence
        b'"\xc0\xaf"',  # overlong "/"
        b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8
        b'"\xf4\x90\x80\x80"',  # above U+10FFFF
        b"\x80",
    ],
)
def test_invalid_utf8_is_rejected(data: bytes) -> None:
    with pytest.raises(VerificationError, match="invalid UTF-8"):
        decode(data)


@pytest.mark.parametrize("data", [b'"\\ud800"', b'"\\udc00"', b'"a\\ud83d"', b'{"\\udfff":1}'])
def test_lone_surrogate_escapes_are_rejected(data: bytes) -> None:
    with pytest.raises(VerificationError, match="surrogate"):
        decode(data)


def test_lone_surrogates_are_refused_by_encode() -> None:
    with pytest.raises(InvalidInput, match="surrogate"):
        encode("\ud800")
    with pytest.raises(InvalidInput, match="surrogate"):
        encode({"\udc00": 1})
    with pytest.raises(InvalidInput, match="surrogate"):
        encode(["ok", "a\udfffb"])


def _nested_lists(n: int) -> Any:
    value: Any = []
    for _ in range(n - 1):
        value = [value]
    return value


def _nested_dicts(n: int) -> Any:
    value: Any = {}
    for _ in range(n - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("nest", [_nested_lists, _nested_dicts])
def test_nesting_limit(nest: Any) -> None:
    ok = nest(MAX_DEPTH)
    assert decode(encode(ok)) == ok
    too_deep = nest(MAX_DEPTH + 2)
    with pytest.raises(InvalidInput, match="nesting"):
        encode(too_deep)
    data = json.dumps(too_deep, separators=(",", ":")).encode()
    with pytest.raises(VerificationError, match="nesting"):
        decode(data)


def test_nesting_far_beyond_the_recursion_limit() -> None:
    with pytest.raises(VerificationError, match="nesting"):
        decode(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(VerificationError):
        decode(b'{"a":' * 50_000)
    with pytest.raises(InvalidInput, match="nesting"):
        encode(_nested_lists(100_000))


class _Color(enum.IntEnum):
    RED = 1


class _Str(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        float("nan"),
        float("inf"),
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        frozenset(),
        object(),
        1j,
        _Color.RED,
        _Str("subclass"),
        [1, 2.5],
        {"a": {"b": b""}},
    ],
    ids=stable_repr,
)
def test_encode_refuses_other_types(value: Any) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        encode(value)


@pytest.mark.parametrize("key", [1, 1.5, None, True, (1, 2), b"a"], ids=stable_repr)
def test_encode_refuses_non_string_keys(key: Any) -> None:
    with pytest.raises(InvalidInput, match="keys must be strings"):
        encode({key: 1})
    with pytest.raises(InvalidInput, match="keys must be strings"):
        encode({"ok": 1, key: 2})


def test_literals_tuples_and_empty_containers() -> None:
    assert encode(None) == b"null"
    assert encode(True) == b"true"
    assert encode(False) == b"false"
    assert encode((1, "a", (None,))) == b'[1,"a",[null]]'
    assert encode([]) == b"[]"
    assert encode({}) == b"{}"
    assert encode("") == b'""'
    assert encode({"b": [True, False], "a": {}}) == b'{"a":{},"b":[true,false]}'
    for data in (b"null", b"true", b"false", b"[]", b"{}", b'""', b'[{"a":[]}]'):
        assert encode(decode(data)) == data


def test_any_mapping_is_an_object() -> None:
    """`encode` takes any Mapping (a frozen one included), not only dict."""
    proxy = types.MappingProxyType({"b": 1, "a": types.MappingProxyType({"c": (True,)})})
    assert encode(proxy) == b'{"a":{"c":[true]},"b":1}'
    frozen = canonical.freeze({"b": 1, "a": [{"c": [True]}]})
    assert encode(frozen) == b'{"a":[{"c":[true]}],"b":1}'
    with pytest.raises(InvalidInput, match="keys must be strings"):
        encode(types.MappingProxyType({1: 1}))


def test_freeze_makes_a_deep_immutable_hashable_copy() -> None:
    value = {"a": [1, {"b": ["x", None]}], "c": {"d": True}, "e": 2.5, "f": (1, [2])}
    frozen = canonical.freeze(value)
    assert frozen == value  # a Mapping equals a dict with the same items
    assert hash(frozen) == hash(canonical.freeze(canonical.thaw(frozen)))
    assert frozen["a"] == (1, {"b": ("x", None)})
    assert frozen["f"] == (1, (2,))
    value["a"][1]["b"].append("y")  # type: ignore[index]
    assert frozen["a"][1]["b"] == ("x", None)
    with pytest.raises(TypeError):
        frozen["a"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        frozen["c"]["d"] = False
    assert repr(frozen).startswith("{'a': (1, {'b': ('x', None)})")
    assert len(frozen) == 4
    assert sorted(frozen) == ["a", "c", "e", "f"]
    assert canonical.freeze(frozen) is frozen  # already frozen: nothing to copy
    assert canonical.freeze(canonical.freeze([1])) == (1,)
    pickled = pickle.loads(pickle.dumps(frozen))  # noqa: S301 - our own bytes
    for copied in (pickled, copy.deepcopy(frozen)):
        assert copied == frozen
        assert type(copied) is canonical.FrozenObject
        assert hash(copied) == hash(frozen)
    assert frozen != [("a", 1)]
    assert frozen != {**value, "e": 3}


def test_thaw_gives_plain_dicts_and_lists() -> None:
    value = {"a": [1, {"b": ["x", None]}], "c": {}, "d": [[], ()]}
    thawed = canonical.thaw(canonical.freeze(value))
    assert thawed == {"a": [1, {"b": ["x", None]}], "c": {}, "d": [[], []]}
    assert type(thawed) is dict
    assert type(thawed["a"]) is list
    assert type(thawed["a"][1]) is dict
    assert canonical.thaw(7) == 7
    assert encode(thawed) == encode(canonical.freeze(value)) == encode(value)


@pytest.mark.parametrize(
    "value", [{1, 2}, frozenset(), b"x", bytearray(1), object()], ids=stable_repr
)
def test_freeze_refuses_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(InvalidInput, match="cannot be frozen"):
        canonical.freeze({"a": [value]})


def test_freeze_refuses_nesting_beyond_the_recursion_limit() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nesting too deep"):
        canonical.freeze(deep)


def test_module_constants() -> None:
    assert canonical.MAX_DEPTH == 32


# ---------------------------------------------------------------------------
# Properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same value with every object's keys inserted in a random order."""
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffled(value[k], rng) for k in keys}
    return value


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data
    assert json.loads(data) == value  # plain JSON to everyone else


@settings(max_examples=200, deadline=None)
@given(json_values, st.randoms(use_true_random=False))
def test_encoding_is_independent_of_key_order(value: Any, rng: random.Random) -> None:
    assert encode(_shuffled(value, rng)) == encode(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), st.integers(min_value=0, max_value=9), min_size=2))
def test_keys_come_out_in_utf16_order(value: dict[str, int]) -> None:
    keys = list(json.loads(encode(value)))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))
    # Which, for these strings, is the order of UTF-16 code units one by one.
    encoded = [k.encode("utf-16-be") for k in keys]
    units = [[int.from_bytes(e[i : i + 2], "big") for i in range(0, len(e), 2)] for e in encoded]
    assert units == sorted(units)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_pretty_printed_documents_are_refused(value: Any) -> None:
    pretty = json.dumps(value, indent=1, ensure_ascii=True).encode()
    if pretty == encode(value):
        assert decode(pretty) == value
    else:
        with pytest.raises(VerificationError):
            decode(pretty)
