"""Capture manifests: what a device signs about each item it records.

A manifest is canonical JSON (see `canonical`) with exactly these fields::

    {"v": 1, "device": ID, "seq": N, "prev": HEX | null, "case": CASE_ID,
     "kind": KIND, "sha256": HEX, "size": N, "media_type": MIME,
     "captured_at": RFC3339, "ended_at": RFC3339 | null,
     "geo": {"lat": "..", "lon": "..", "accuracy_m": N} | null}

``seq`` counts the device's manifests from 1 and ``prev`` is the SHA-256 of the
device's previous manifest (null exactly when ``seq`` is 1), so a missing or
late upload shows as a gap. The device signs ``CAPTURE_CONTEXT + manifest``
with Ed25519; the context keeps a device signature from being reused in another
protocol. An item's id is the lowercase hex SHA-256 of its manifest bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from evidence.chain import canonical, note
from evidence.chain.fields import HEX64, ID, date_time_in_range
from evidence.errors import VerificationError

CAPTURE_CONTEXT = b"evidence/capture/v1\n"
MANIFEST_VERSION = 1
KINDS = ("footage", "photo", "audio", "visit-record", "document", "statement")
# A manifest is a few hundred bytes; anything far larger is not one.
MAX_MANIFEST_SIZE = 4096

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
# RFC 3339 date-time, upper-case T and Z as RFC 3339 section 5.6 permits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(Z|[+-]([0-9]{2}):([0-9]{2}))"
)
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,2})(\.[0-9]{1,12})?")
FIELDS = frozenset(
    {"v", "device", "seq", "prev", "case", "kind", "sha256", "size", "media_type"}
    | {"captured_at", "ended_at", "geo"}
)


def is_rfc3339(text: object) -> bool:
    """An RFC 3339 date-time with every field in range (a leap second allowed)."""
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return False
    offset_ok = match.group(9) is None or (int(match.group(9)) < 24 and int(match.group(10)) < 60)
    return offset_ok and date_time_in_range(match)


@dataclass(frozen=True)
class Geo:
    lat: str
    lon: str
    accuracy_m: int


@dataclass(frozen=True)
class CaptureManifest:
    device: str
    seq: int
    prev: str | None
    case: str
    kind: str
    sha256: str
    size: int
    media_type: str
    captured_at: str
    ended_at: str | None
    geo: Geo | None

    @property
    def media_family(self) -> str:
        """The top-level media type: ``video``, ``audio``, ``image``, ``application``..."""
        return self.media_type.split("/", 1)[0]


def device_id(vkey: str) -> str:
    """A device's id: 32 hex digits of the SHA-256 of its verifier key's text.

    Derived, so a device knows its own id from its key before it is enrolled.
    """
    return hashlib.sha256(vkey.encode("utf-8")).hexdigest()[:32]


def item_id(manifest_bytes: bytes) -> str:
    """An item's id: the lowercase hex SHA-256 of its manifest's exact bytes."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def _fail(field: str, why: str) -> VerificationError:
    return VerificationError(f"capture manifest: {field} {why}")


def _geo(value: Any) -> Geo | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"lat", "lon", "accuracy_m"}:
        raise _fail("geo", 'must be null or {"lat", "lon", "accuracy_m"}')
    lat, lon, accuracy = value["lat"], value["lon"], value["accuracy_m"]
    for name, text, limit in (("lat", lat, 90), ("lon", lon, 180)):
        if not isinstance(text, str) or not _DECIMAL.fullmatch(text) or abs(float(text)) > limit:
            raise _fail(f"geo.{name}", f"must be a decimal string within ±{limit}")
    if type(accuracy) is not int or accuracy < 0:
        raise _fail("geo.accuracy_m", "must be a non-negative integer")
    return Geo(lat, lon, accuracy)


def parse_manifest(data: bytes) -> CaptureManifest:
    """Parse a manifest's exact bytes: canonical, complete, every field well formed.

    Raises `VerificationError` naming the first problem found.
    """
    if len(data) > MAX_MANIFEST_SIZE:
        raise VerificationError(f"capture manifest is larger than {MAX_MANIFEST_SIZE} bytes")
    obj = canonical.decode(data)
    if not isinstance(obj, dict):
        raise VerificationError("capture manifest must be a JSON object")
    if set(obj) != FIELDS:
        missing, extra = sorted(FIELDS - set(obj)), sorted(set(obj) - FIELDS)
        raise VerificationError(f"capture manifest: missing {missing}, unexpected {extra}")
    if obj["v"] != MANIFEST_VERSION or type(obj["v"]) is not int:
        raise _fail("v", f"must be {MANIFEST_VERSION}")
    for name in ("device", "case"):
        if not isinstance(obj[name], str) or not ID.fullmatch(obj[name]):
            raise _fail(name, "must be an opaque id")
    seq, prev = obj["seq"], obj["prev"]
    if type(seq) is not int or seq < 1:
        raise _fail("seq", "must be an integer from 1")
    if prev is not None and not (isinstance(prev, str) and HEX64.fullmatch(prev)):
        raise _fail("prev", "must be null or 64 lowercase hex digits")
    if (seq == 1) != (prev is None):
        raise _fail("prev", "must be null exactly when seq is 1")
    if obj["kind"] not in KINDS:
        raise _fail("kind", f"must be one of {', '.join(KINDS)}")
    if not isinstance(obj["sha256"], str) or not HEX64.fullmatch(obj["sha256"]):
        raise _fail("sha256", "must be 64 lowercase hex digits")
    if type(obj["size"]) is not int or obj["size"] < 0:
        raise _fail("size", "must be a non-negative integer")
    if not isinstance(obj["media_type"], str) or not _MEDIA_TYPE.fullmatch(obj["media_type"]):
        raise _fail("media_type", "must be a lower-case MIME type such as video/mp4")
    if not is_rfc3339(obj["captured_at"]):
        raise _fail("captured_at", "must be an RFC 3339 date-time")
    if obj["ended_at"] is not None and not is_rfc3339(obj["ended_at"]):
        raise _fail("ended_at", "must be null or an RFC 3339 date-time")
    return CaptureManifest(
        device=obj["device"],
        seq=seq,
        prev=prev,
        case=obj["case"],
        kind=obj["kind"],
        sha256=obj["sha256"],
        size=obj["size"],
        media_type=obj["media_type"],
        captured_at=obj["captured_at"],
        ended_at=obj["ended_at"],
        geo=_geo(obj["geo"]),
    )


def manifest_bytes(manifest: CaptureManifest) -> bytes:
    """The canonical bytes of `manifest` (what a device signs)."""
    geo = None
    if manifest.geo is not None:
        geo = {
            "lat": manifest.geo.lat,
            "lon": manifest.geo.lon,
            "accuracy_m": manifest.geo.accuracy_m,
        }
    data = canonical.encode(
        {
            "v": MANIFEST_VERSION,
            "device": manifest.device,
            "seq": manifest.seq,
            "prev": manifest.prev,
            "case": manifest.case,
            "kind": manifest.kind,
            "sha256": manifest.sha256,
            "size": manifest.size,
            "media_type": manifest.media_type,
            "captured_at": manifest.captured_at,
            "ended_at": manifest.ended_at,
            "geo": geo,
        }
    )
    parse_manifest(data)  # never produce a manifest the service would refuse
    return data


def sign_manifest(data: bytes, signer: note.Signer) -> bytes:
    """The device's 64-byte Ed25519 signature over the context and the manifest."""
    return signer.sign(CAPTURE_CONTEXT + data)


def verify_manifest_signature(data: bytes, signature: bytes, device_key: note.Verifier) -> None:
    """Check the device's signature over the context and the manifest's exact bytes."""
    if not device_key.is_valid_signature(CAPTURE_CONTEXT + data, signature):
        raise VerificationError("capture manifest signature does not verify with the device's key")
