"""Custody log entries: typed, frozen values with canonical bytes.

Every entry is a canonical JSON object with a ``type`` and exactly the fields of
that type; `parse_entry` accepts nothing else. Entries hold no personal data in
clear: ids are opaque (case and device ids, actor ids), names live in the
database, free text lives in items.

Entries about an item carry ``prev``: the log index of that item's previous
entry (``null`` for its first), so an item's whole custody history can be
walked back from its latest entry and each step proven. An export names many
items, so it carries one ``{"item", "prev"}`` pair per item.

``time`` is the log's clock when the entry was made, RFC 3339 in UTC
(``2026-11-24T09:30:00Z``, optionally with fractional seconds). It is what the
operator asserts; the order of entries in the log is what is proven.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from evidence.chain import canonical, note
from evidence.chain.fields import HEX64, ID, date_time_in_range
from evidence.errors import InvalidInput, VerificationError

# RFC 3339 in UTC only: the log's own clock.
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?Z"
)

Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_hex64(v: Any) -> bool:
    return _is_str(v) and HEX64.fullmatch(v) is not None


def _is_id(v: Any) -> bool:
    return _is_str(v) and ID.fullmatch(v) is not None


def _is_time(v: Any) -> bool:
    """RFC 3339 in UTC: fields in range (RFC 3339 section 5.7, leap second allowed)."""
    match = _TIME.fullmatch(v) if _is_str(v) else None
    return match is not None and date_time_in_range(match)


def _is_origin(v: Any) -> bool:
    return _is_str(v) and note.is_valid_key_name(v)


def _is_count(v: Any) -> bool:
    return type(v) is int and v >= 0


def _is_prev(v: Any) -> bool:
    return v is None or _is_count(v)


def _is_vkey(v: Any) -> bool:
    if not _is_str(v):
        return False
    try:
        note.parse_vkey(v)
    except VerificationError:
        return False
    return True


def _is_object(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_item_ref(r: Any) -> bool:
    return (
        isinstance(r, Mapping)
        and set(r) == {"item", "prev"}
        and _is_hex64(r["item"])
        and _is_prev(r["prev"])
    )


def _is_item_refs(v: Any) -> bool:
    """A non-empty list of {"item", "prev"} pairs naming each item once."""
    # Each pair is checked before the items go into a set: an item that is not
    # a string (a list, say) is unhashable and would raise TypeError there.
    return (
        isinstance(v, list | tuple)
        and len(v) > 0
        and all(_is_item_ref(r) for r in v)
        and len({r["item"] for r in v}) == len(v)
    )


# What each field name means, wherever it appears.
FIELD_CHECKS: dict[str, Check] = {
    "action": _is_id,
    "actor": _is_id,
    "case": _is_id,
    "device": _is_id,
    "export": _is_id,
    "hold": _is_id,
    "item": _is_hex64,
    "items": _is_item_refs,
    "key": _is_vkey,
    "kind": _is_id,
    "media_type": _is_str,
    "origin": _is_origin,
    "prev": _is_prev,
    "previous_key": _is_vkey,
    "reason": _is_id,
    "recipe": _is_object,
    "seq": _is_count,
    "sha256": _is_hex64,
    "size": _is_count,
    "time": _is_time,
}


@dataclass(frozen=True)
class CustodyEntry:
    """Base of all entry types. Subclasses set TYPE and declare their fields.

    An entry is immutable all the way down: a field holding an object or an
    array (`ItemDerived.recipe`, `ExportCreated.items`) keeps its own deep,
    frozen copy (`canonical.freeze`), so its bytes cannot change after its
    fields were checked, and every entry is hashable.
    """

    TYPE: ClassVar[str] = ""

    time: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not FIELD_CHECKS[f.name](value):
                raise InvalidInput(f"{self.TYPE} entry: invalid {f.name} {value!r}")
            try:
                frozen = canonical.freeze(value)
            except InvalidInput as exc:
                raise InvalidInput(f"{self.TYPE} entry: invalid {f.name}: {exc}") from exc
            object.__setattr__(self, f.name, frozen)

    def to_json(self) -> dict[str, Any]:
        """The entry as a plain JSON object (fresh dicts and lists, safe to change)."""
        obj: dict[str, Any] = {f.name: canonical.thaw(getattr(self, f.name)) for f in fields(self)}
        obj["type"] = self.TYPE
        return obj

    def to_bytes(self) -> bytes:
        """The entry's canonical bytes: what the log stores and hashes."""
        return canonical.encode(self.to_json())


E = TypeVar("E", bound=CustodyEntry)
ENTRY_TYPES: dict[str, type[CustodyEntry]] = {}


def _entry_type(cls: type[E]) -> type[E]:
    ENTRY_TYPES[cls.TYPE] = cls
    return cls


@_entry_type
@dataclass(frozen=True)
class LogCreated(CustodyEntry):
    """First entry of every log: its origin and the public key that signs its checkpoints."""

    TYPE: ClassVar[str] = "log.created"
    origin: str
    key: str


@_entry_type
@dataclass(frozen=True)
class KeyRotated(CustodyEntry):
    """The log's checkpoints are signed by `key` from the next checkpoint on."""

    TYPE: ClassVar[str] = "key.rotated"
    origin: str
    key: str
    previous_key: str


@_entry_type
@dataclass(frozen=True)
class DeviceEnrolled(CustodyEntry):
    TYPE: ClassVar[str] = "device.enrolled"
    device: str
    key: str


@_entry_type
@dataclass(frozen=True)
class DeviceRevoked(CustodyEntry):
    TYPE: ClassVar[str] = "device.revoked"
    device: str


@_entry_type
@dataclass(frozen=True)
class ItemIngested(CustodyEntry):
    """An original arrived: `item` is the SHA-256 of its signed capture manifest."""

    TYPE: ClassVar[str] = "item.ingested"
    item: str
    prev: int | None
    case: str
    device: str
    seq: int
    kind: str
    sha256: str
    size: int


@_entry_type
@dataclass(frozen=True)
class ItemDerived(CustodyEntry):
    """A new file (`sha256`, `size`, `media_type`) was made from `item` by `recipe`."""

    TYPE: ClassVar[str] = "item.derived"
    item: str
    prev: int | None
    sha256: str
    size: int
    media_type: str
    recipe: Mapping[str, Any]  # held frozen: see `CustodyEntry`


@_entry_type
@dataclass(frozen=True)
class ItemAccessed(CustodyEntry):
    TYPE: ClassVar[str] = "item.accessed"
    item: str
    prev: int | None
    actor: str
    action: str


@_entry_type
@dataclass(frozen=True)
class ItemDeleted(CustodyEntry):
    TYPE: ClassVar[str] = "item.deleted"
    item: str
    prev: int | None
    actor: str
    reason: str


@_entry_type
@dataclass(frozen=True)
class HoldPlaced(CustodyEntry):
    TYPE: ClassVar[str] = "hold.placed"
    item: str
    prev: int | None
    actor: str
    hold: str


@_entry_type
@dataclass(frozen=True)
class HoldReleased(CustodyEntry):
    TYPE: ClassVar[str] = "hold.released"
    item: str
    prev: int | None
    actor: str
    hold: str


@_entry_type
@dataclass(frozen=True)
class ExportCreated(CustodyEntry):
    """An export bundle of `items` (each with its previous entry) was made by `actor`."""

    TYPE: ClassVar[str] = "export.created"
    export: str
    actor: str
    items: Sequence[Mapping[str, Any]]  # held frozen, as a tuple: see `CustodyEntry`


def from_json(obj: Mapping[str, Any]) -> CustodyEntry:
    """Build the typed entry from a decoded JSON object with exactly its type's fields."""
    if not isinstance(obj, Mapping):
        raise VerificationError("an entry is a JSON object")
    entry_type = obj.get("type")
    cls = ENTRY_TYPES.get(entry_type) if isinstance(entry_type, str) else None
    if cls is None:
        raise VerificationError(f"unknown entry type {entry_type!r}")
    names = {f.name for f in fields(cls)}
    given = set(obj) - {"type"}
    if given != names:
        missing, extra = sorted(names - given), sorted(given - names)
        raise VerificationError(f"{cls.TYPE} entry: missing {missing}, unexpected {extra}")
    try:
        return cls(**{name: obj[name] for name in names})
    except InvalidInput as exc:
        raise VerificationError(str(exc)) from exc


def parse_entry(data: bytes) -> CustodyEntry:
    """Parse an entry's stored bytes, which must be canonical; raise `VerificationError`."""
    return from_json(canonical.decode(data))


def item_prev_refs(entry: CustodyEntry) -> dict[str, int | None]:
    """For each item `entry` is about, the index of that item's previous entry."""
    if isinstance(entry, ExportCreated):
        return {ref["item"]: ref["prev"] for ref in entry.items}
    item = getattr(entry, "item", None)
    if item is None:
        return {}
    prev: int | None = getattr(entry, "prev", None)
    return {item: prev}
