"""Custody log entries (`evidence.chain.entries`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from chain_helpers import stable_repr
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.chain import canonical, entries, note
from evidence.chain.entries import (
    ENTRY_TYPES,
    FIELD_CHECKS,
    CustodyEntry,
    ExportCreated,
    ItemAccessed,
    ItemDerived,
    ItemIngested,
    LogCreated,
    from_json,
    item_prev_refs,
    parse_entry,
)
from evidence.errors import InvalidInput, VerificationError

VKEY = note.Signer("example.com/log", bytes(range(32))).verifier.vkey
VKEY2 = note.Signer("example.com/log", bytes(range(1, 33))).verifier.vkey
DEVICE_VKEY = note.Signer("device-7", bytes(range(2, 34))).verifier.vkey
H1, H2, H3 = "ab" * 32, "0123456789abcdef" * 4, "f" * 64
TIME = "2026-11-24T09:30:00Z"

# One valid example of every entry type.
EXAMPLES: dict[str, dict[str, Any]] = {
    "log.created": {"time": TIME, "origin": "example.com/log", "key": VKEY},
    "key.rotated": {"time": TIME, "origin": "example.com/log", "key": VKEY2, "previous_key": VKEY},
    "device.enrolled": {"time": TIME, "device": "device-7", "key": DEVICE_VKEY},
    "device.revoked": {"time": TIME, "device": "device-7"},
    "item.ingested": {
        "time": TIME,
        "item": H1,
        "prev": None,
        "case": "case-0001",
        "device": "device-7",
        "seq": 12,
        "kind": "footage",
        "sha256": H2,
        "size": 1048576,
    },
    "item.derived": {
        "time": "2026-11-24T09:31:02.123456Z",
        "item": H1,
        "prev": 4,
        "sha256": H3,
        "size": 99,
        "media_type": "video/mp4",
        "recipe": {"tool": "ffmpeg 6.1", "args": ["-c:v", "libx264", "-crf", "23"], "v": 1},
    },
    "item.accessed": {
        "time": TIME,
        "item": H1,
        "prev": 5,
        "actor": "user:17",
        "action": "play",
    },
    "item.deleted": {
        "time": TIME,
        "item": H1,
        "prev": 9,
        "actor": "user:1",
        "reason": "retention-expired",
    },
    "hold.placed": {"time": TIME, "item": H1, "prev": 6, "actor": "user:2", "hold": "hold-3"},
    "hold.released": {"time": TIME, "item": H1, "prev": 7, "actor": "user:2", "hold": "hold-3"},
    "export.created": {
        "time": TIME,
        "export": "export-11",
        "actor": "user:3",
        "items": [{"item": H1, "prev": 8}, {"item": H2, "prev": None}],
    },
}

# Values every check must refuse (each list is for the check named by the key).
BAD_ID = ["", " a", "a b", "-a", ".a", "a" * 129, "\u00e9", "a/b", "a\n", "a\u00a0", 5, None, True]
BAD_HEX64 = ["AB" * 32, "ab" * 31, "ab" * 33, "g" * 64, "ab" * 32 + "\n", " " + "a" * 63, 5, None]
BAD_TIME = [
    "",
    "2026-11-24T09:30:00",
    "2026-11-24 09:30:00Z",
    "2026-11-24T09:30:00+00:00",
    "2026-11-24T09:30:00.Z",
    "2026-11-24T09:30:00.1234567890Z",
    "2026-11-24t09:30:00z",
    "26-11-24T09:30:00Z",
    "2026-11-24T09:30Z",
    TIME + "\n",
    1764000000,
    None,
]
BAD_COUNT = [-1, True, False, "1", None]
BAD_PREV = [-1, True, False, "1", ""]
BAD_VKEY = ["", "not a vkey", VKEY[:-1], VKEY.replace("+", "-", 1), VKEY.upper(), 5, None]
BAD_OBJECT: list[Any] = [[], "x", None, 5, True]
BAD_ITEMS: list[Any] = [
    [],
    None,
    {"item": H1, "prev": 1},
    [{"item": H1}],
    [{"prev": 1}],
    [{"item": H1, "prev": 1, "extra": 1}],
    [{"item": "AB" * 32, "prev": 1}],
    [{"item": H1, "prev": -1}],
    [{"item": H1, "prev": True}],
    [{"item": H1, "prev": "1"}],
    ["x"],
    [[H1, 1]],
    [{"item": H1, "prev": 1}, None],
    # Unhashable item values: refused as invalid, not a TypeError from building a set.
    [{"item": [H1], "prev": 1}],
    [{"item": {"h": H1}, "prev": 1}],
    [{"item": H1, "prev": 1}, {"item": [H2], "prev": 2}],
    [{"item": [], "prev": None}, {"item": [], "prev": None}],
    [{"item": H1, "prev": [1]}],
]
BAD_STR = [5, None, True, ["video/mp4"]]
BAD_ORIGIN = ["", "a b", "a+b", "a\tb", None]

BAD_VALUES: dict[str, list[Any]] = {
    "action": BAD_ID,
    "actor": BAD_ID,
    "case": BAD_ID,
    "device": BAD_ID,
    "export": BAD_ID,
    "hold": BAD_ID,
    "item": BAD_HEX64,
    "items": BAD_ITEMS,
    "key": BAD_VKEY,
    "kind": BAD_ID,
    "media_type": BAD_STR,
    "origin": BAD_ORIGIN,
    "prev": BAD_PREV,
    "previous_key": BAD_VKEY,
    "reason": BAD_ID,
    "recipe": BAD_OBJECT,
    "seq": BAD_COUNT,
    "sha256": BAD_HEX64,
    "size": BAD_COUNT,
    "time": BAD_TIME,
}


def _make(type_name: str, **changes: Any) -> CustodyEntry:
    return ENTRY_TYPES[type_name](**{**EXAMPLES[type_name], **changes})


def _bad_cases() -> list[Any]:
    cases = []
    for type_name, example in EXAMPLES.items():
        for field in example:
            for i, bad in enumerate(BAD_VALUES[field]):
                cases.append(pytest.param(type_name, field, bad, id=f"{type_name}-{field}-{i}"))
    return cases


# ---------------------------------------------------------------------------
# The set of types


def test_entry_types() -> None:
    assert (
        set(ENTRY_TYPES)
        == set(EXAMPLES)
        == {
            "log.created",
            "key.rotated",
            "device.enrolled",
            "device.revoked",
            "item.ingested",
            "item.derived",
            "item.accessed",
            "item.deleted",
            "hold.placed",
            "hold.released",
            "export.created",
        }
    )
    for type_name, cls in ENTRY_TYPES.items():
        assert type_name == cls.TYPE
        names = {f.name for f in dataclasses.fields(cls)}
        assert names == set(EXAMPLES[type_name])  # the examples are complete
        assert names <= set(FIELD_CHECKS)  # every field has a check
        assert "type" not in names


# ---------------------------------------------------------------------------
# Valid entries


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_round_trip(type_name: str) -> None:
    entry = _make(type_name)
    obj = entry.to_json()
    assert obj == {**EXAMPLES[type_name], "type": type_name}
    data = entry.to_bytes()
    assert data == canonical.encode(obj)
    assert canonical.decode(data) == obj  # canonical: decode re-encodes and compares
    assert parse_entry(data) == entry
    assert type(parse_entry(data)) is type(entry)
    assert from_json(obj) == entry
    assert parse_entry(data).to_bytes() == data


def test_golden_bytes() -> None:
    """The stored form is fixed: others re-hash these exact bytes."""
    entry = _make("item.ingested")
    assert entry.to_bytes() == (
        b'{"case":"case-0001","device":"device-7","item":"' + H1.encode() + b'",'
        b'"kind":"footage","prev":null,"seq":12,"sha256":"' + H2.encode() + b'",'
        b'"size":1048576,"time":"2026-11-24T09:30:00Z","type":"item.ingested"}'
    )
    export = _make("export.created")
    assert export.to_bytes() == (
        b'{"actor":"user:3","export":"export-11","items":[{"item":"' + H1.encode() + b'",'
        b'"prev":8},{"item":"' + H2.encode() + b'","prev":null}],'
        b'"time":"2026-11-24T09:30:00Z","type":"export.created"}'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time", "2026-11-24T09:30:00.1Z"),
        ("time", "2026-11-24T09:30:00.123456789Z"),
        ("time", "2026-12-31T23:59:60Z"),  # a leap second
        ("time", "2024-02-29T00:00:00Z"),
        ("time", "2000-02-29T00:00:00Z"),
        ("time", "0000-01-01T00:00:00Z"),
        ("time", "9999-12-31T23:59:59.999999999Z"),
        ("case", "A"),
        ("case", "a" * 128),
        ("case", "0:a.b_c-d"),
        ("device", "urn:device:42"),
        ("seq", 0),
        ("size", 0),
        ("size", canonical.MAX_SAFE_INTEGER),
        ("prev", 0),
        ("prev", None),
        ("kind", "visit-record"),
    ],
)
def test_valid_field_values(field: str, value: Any) -> None:
    entry = _make("item.ingested", **{field: value})
    assert parse_entry(entry.to_bytes()) == entry


def test_entries_are_frozen() -> None:
    entry = _make("item.accessed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.prev = 3  # type: ignore[attr-defined]


def test_a_recipe_cannot_be_changed_after_construction() -> None:
    """Regression: the recipe dict (and its nested lists) could be mutated after
    construction, changing `to_bytes()` without re-validation."""
    recipe = {"tool": "ffmpeg 6.1", "args": ["-crf", "23"], "opts": {"a": 1}}
    entry = _make("item.derived", recipe=recipe)
    data = entry.to_bytes()
    recipe["tool"] = "changed"
    recipe["args"].append("-y")  # type: ignore[attr-defined]
    recipe["opts"]["b"] = 2  # type: ignore[index]
    assert entry.to_bytes() == data  # the entry kept its own copy
    assert isinstance(entry, ItemDerived)
    with pytest.raises(TypeError):
        entry.recipe["tool"] = "changed"  # type: ignore[index]
    with pytest.raises(TypeError):
        del entry.recipe["tool"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        entry.recipe["args"].append("-y")
    with pytest.raises(TypeError):
        entry.recipe["opts"]["b"] = 2
    assert entry.to_bytes() == data


def test_export_items_cannot_be_changed_after_construction() -> None:
    items = [{"item": H1, "prev": 8}, {"item": H2, "prev": None}]
    entry = _make("export.created", items=items)
    data = entry.to_bytes()
    items[0]["prev"] = 99
    items.append({"item": H3, "prev": 1})
    assert entry.to_bytes() == data
    assert isinstance(entry, ExportCreated)
    with pytest.raises(AttributeError):
        entry.items.append({"item": H3, "prev": 1})  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        entry.items[0]["prev"] = 99  # type: ignore[index]
    assert entry.to_bytes() == data
    assert item_prev_refs(entry) == {H1: 8, H2: None}


def test_to_json_is_a_fresh_plain_copy() -> None:
    """`to_json()` gives plain dicts and lists, as before; changing them changes nothing."""
    entry = _make("item.derived")
    obj = entry.to_json()
    assert type(obj["recipe"]) is dict
    assert type(obj["recipe"]["args"]) is list
    obj["recipe"]["args"].append("-y")
    assert entry.to_json() == {**EXAMPLES["item.derived"], "type": "item.derived"}
    export = _make("export.created").to_json()
    assert type(export["items"]) is list
    assert all(type(ref) is dict for ref in export["items"])


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_entries_are_hashable_and_equal_by_value(type_name: str) -> None:
    entry, again = _make(type_name), parse_entry(_make(type_name).to_bytes())
    assert entry == again
    assert hash(entry) == hash(again)
    assert len({entry, again}) == 1
    assert dataclasses.replace(entry) == entry


def test_frozen_fields_still_compare_equal_to_plain_values() -> None:
    derived = _make("item.derived")
    assert isinstance(derived, ItemDerived)
    assert derived.recipe == EXAMPLES["item.derived"]["recipe"]
    export = _make("export.created")
    assert isinstance(export, ExportCreated)
    assert list(export.items) == EXAMPLES["export.created"]["items"]
    assert _make("item.derived", recipe={"v": 1}) != _make("item.derived", recipe={"v": 2})
    # A tuple in, as in a list in: the same entry, the same bytes.
    assert _make("item.derived", recipe={"args": ("a",)}) == _make(
        "item.derived", recipe={"args": ["a"]}
    )


@pytest.mark.parametrize(
    "value", [{1, 2}, frozenset(), object(), b"bytes", bytearray(2)], ids=stable_repr
)
def test_a_recipe_holds_only_json_like_values(value: Any) -> None:
    """What cannot be frozen (or is not JSON at all) is refused at construction."""
    with pytest.raises(InvalidInput, match="invalid recipe"):
        _make("item.derived", recipe={"x": [value]})


def test_a_recipe_nested_beyond_the_recursion_limit_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="invalid recipe"):
        _make("item.derived", recipe={"deep": _nested(100_000)})


def _nested(n: int) -> Any:
    value: Any = []
    for _ in range(n):
        value = [value]
    return value


def test_values_outside_canonical_json_fail_when_encoded() -> None:
    """The field checks do not look inside a recipe or bound a count; canonical
    encoding then refuses what JSON cannot carry exactly, with InvalidInput."""
    for changes in (
        {"recipe": {"crf": 23.5}},
        {"recipe": {1: "x"}},
        {"recipe": {"deep": _nested(canonical.MAX_DEPTH + 2)}},
        {"size": 2**53},
    ):
        entry = _make("item.derived", **changes)
        with pytest.raises(InvalidInput):
            entry.to_bytes()


# ---------------------------------------------------------------------------
# Invalid field values


@pytest.mark.parametrize(("type_name", "field", "bad"), _bad_cases())
def test_invalid_field_values(type_name: str, field: str, bad: Any) -> None:
    with pytest.raises(InvalidInput, match=f"invalid {field}"):
        _make(type_name, **{field: bad})
    obj = {**EXAMPLES[type_name], "type": type_name, field: bad}
    with pytest.raises(VerificationError, match=f"invalid {field}"):
        from_json(obj)
    with pytest.raises(VerificationError, match=f"invalid {field}"):
        parse_entry(canonical.encode(obj))


@pytest.mark.parametrize("origin", [5, True, ["example.com"], {"example.com": 1}, ("a",)])
def test_origin_must_be_a_string(origin: Any) -> None:
    """Regression: `note.is_valid_key_name` assumes a str; used alone as the
    origin check it let a list or dict of non-space strings through (stored as
    the log's origin) and raised TypeError for an int or bool."""
    with pytest.raises(InvalidInput, match="invalid origin"):
        _make("log.created", origin=origin)
    obj = {**EXAMPLES["log.created"], "type": "log.created", "origin": origin}
    with pytest.raises(VerificationError, match="invalid origin"):
        parse_entry(canonical.encode(obj))


@pytest.mark.parametrize(
    "time",
    [
        "\u0662\u0660\u0662\u0666-11-24T09:30:00Z",  # ARABIC-INDIC digits
        "2026-11-24T09:30:00.\uff11Z",  # FULLWIDTH DIGIT ONE
        "\U0001d7ee\U0001d7ec\U0001d7ee\U0001d7f2-11-24T09:30:00Z",  # MATHEMATICAL digits
    ],
)
def test_time_digits_must_be_ascii(time: str) -> None:
    """Regression: `\\d` in a str pattern matches any Unicode decimal digit."""
    with pytest.raises(InvalidInput, match="invalid time"):
        _make("device.revoked", time=time)
    obj = {**EXAMPLES["device.revoked"], "type": "device.revoked", "time": time}
    with pytest.raises(VerificationError, match="invalid time"):
        parse_entry(canonical.encode(obj))


@pytest.mark.parametrize(
    "time",
    [
        "2026-13-24T09:30:00Z",  # month 13
        "2026-00-01T09:30:00Z",
        "2026-11-32T09:30:00Z",
        "2026-11-00T09:30:00Z",
        "2026-11-24T24:30:00Z",
        "2026-11-24T09:60:00Z",
        "2026-11-24T09:30:61Z",
        "2026-02-29T09:30:00Z",  # not a leap year
        "1900-02-29T09:30:00Z",  # nor is a century not divisible by 400
        "2026-04-31T09:30:00Z",
    ],
)
def test_time_fields_must_be_in_range(time: str) -> None:
    """Regression: `time` is RFC 3339 in UTC, so month, day, hour, minute and
    second must be in range (RFC 3339 section 5.7), not just have the shape."""
    with pytest.raises(InvalidInput, match="invalid time"):
        _make("device.revoked", time=time)


# ---------------------------------------------------------------------------
# Invalid documents


@pytest.mark.parametrize(
    "entry_type", ["item.unknown", "", "ITEM.INGESTED", "log.created ", 5, None, ["log.created"]]
)
def test_unknown_type(entry_type: Any) -> None:
    obj = {**EXAMPLES["log.created"], "type": entry_type}
    with pytest.raises(VerificationError, match="unknown entry type"):
        parse_entry(canonical.encode(obj))
    with pytest.raises(VerificationError, match="unknown entry type"):
        from_json(obj)


def test_missing_type() -> None:
    with pytest.raises(VerificationError, match="unknown entry type None"):
        parse_entry(canonical.encode(EXAMPLES["log.created"]))


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_missing_and_extra_fields(type_name: str) -> None:
    full = {**EXAMPLES[type_name], "type": type_name}
    for field in EXAMPLES[type_name]:
        obj = {k: v for k, v in full.items() if k != field}
        with pytest.raises(VerificationError, match=rf"missing \['{field}'\], unexpected \[\]"):
            parse_entry(canonical.encode(obj))
    for extra in ("extra", "note", "name", "Type", "prev" if "prev" not in full else "seq"):
        if extra in full:
            continue
        obj = {**full, extra: None}
        with pytest.raises(VerificationError, match=rf"unexpected \['{extra}'\]"):
            parse_entry(canonical.encode(obj))
    with pytest.raises(VerificationError, match="missing"):
        parse_entry(canonical.encode({"type": type_name}))


@pytest.mark.parametrize("doc", [b"[]", b'"log.created"', b"1", b"null", b"true", b'[{"a":1}]'])
def test_non_object_documents(doc: bytes) -> None:
    with pytest.raises(VerificationError, match="an entry is a JSON object"):
        parse_entry(doc)


def test_non_canonical_bytes_are_refused() -> None:
    data = _make("item.accessed").to_bytes()
    for variant in (
        data + b"\n",
        b" " + data,
        data.replace(b":", b": "),
        data.replace(b'"action":"play","actor":"user:17"', b'"actor":"user:17","action":"play"'),
        data.replace(b'"prev":5', b'"prev":5.0'),
        data.replace(b"play", b"\\u0070lay"),
        data.replace(b'"type"', b'"type":"x","type"'),
    ):
        assert variant != data
        with pytest.raises(VerificationError):
            parse_entry(variant)


# ---------------------------------------------------------------------------
# item_prev_refs


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("item.ingested", {H1: None}),
        ("item.derived", {H1: 4}),
        ("item.accessed", {H1: 5}),
        ("item.deleted", {H1: 9}),
        ("hold.placed", {H1: 6}),
        ("hold.released", {H1: 7}),
        ("export.created", {H1: 8, H2: None}),
        ("log.created", {}),
        ("key.rotated", {}),
        ("device.enrolled", {}),
        ("device.revoked", {}),
    ],
)
def test_item_prev_refs(type_name: str, expected: dict[str, int | None]) -> None:
    assert item_prev_refs(_make(type_name)) == expected


def test_item_prev_refs_of_an_export_with_one_item() -> None:
    export = ExportCreated(time=TIME, export="e1", actor="u1", items=[{"item": H3, "prev": 0}])
    assert item_prev_refs(export) == {H3: 0}


# ---------------------------------------------------------------------------
# Properties

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z")
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
counts = st.integers(min_value=0, max_value=canonical.MAX_SAFE_INTEGER)
prevs = st.none() | counts
times = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}Z".format,
    st.integers(0, 9999),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(["", ".5", ".000001", ".123456789"]),
)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "time": times,
            "item": hex64,
            "prev": prevs,
            "case": ids,
            "device": ids,
            "seq": counts,
            "kind": ids,
            "sha256": hex64,
            "size": counts,
        }
    )
)
def test_item_ingested_round_trips(fields: dict[str, Any]) -> None:
    entry = ItemIngested(**fields)
    assert parse_entry(entry.to_bytes()) == entry
    assert item_prev_refs(entry) == {entry.item: entry.prev}


@settings(max_examples=100, deadline=None)
@given(
    times,
    ids,
    ids,
    st.lists(
        st.fixed_dictionaries({"item": hex64, "prev": prevs}),
        min_size=1,
        unique_by=lambda r: r["item"],
    ),
)
def test_export_created_round_trips(
    time: str, export: str, actor: str, items: list[dict[str, Any]]
) -> None:
    entry = ExportCreated(time=time, export=export, actor=actor, items=items)
    assert parse_entry(entry.to_bytes()) == entry
    assert item_prev_refs(entry) == {r["item"]: r["prev"] for r in items}


@settings(max_examples=100, deadline=None)
@given(times, hex64, prevs, ids, ids)
def test_item_accessed_round_trips(
    time: str, item: str, prev: int | None, actor: str, action: str
) -> None:
    entry = ItemAccessed(time=time, item=item, prev=prev, actor=actor, action=action)
    assert parse_entry(entry.to_bytes()) == entry


def test_log_created_names_the_log_key() -> None:
    signer = note.Signer("example.com/custody", bytes(range(3, 35)))
    entry = LogCreated(time=TIME, origin=signer.name, key=signer.verifier.vkey)
    parsed = parse_entry(entry.to_bytes())
    assert isinstance(parsed, LogCreated)
    assert note.parse_vkey(parsed.key) == signer.verifier
    assert entries.ENTRY_TYPES["log.created"] is LogCreated


def test_export_names_each_item_once() -> None:
    item = "ab" * 32
    with pytest.raises(InvalidInput, match="invalid items"):
        ExportCreated(
            time="2026-11-24T10:00:00Z",
            export="e1",
            actor="a1",
            items=[{"item": item, "prev": 1}, {"item": item, "prev": 2}],
        )
