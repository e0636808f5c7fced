"""Capture manifests: strict parsing, the device signature's context, item and device ids."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from evidence.chain import canonical, note
from evidence.chain import manifest as mf
from evidence.errors import VerificationError

SIGNER = note.new_signer("camera-1.example", b"\x05" * 32)
GOOD: dict[str, Any] = {
    "v": 1,
    "device": "3f1c9a",
    "seq": 2,
    "prev": "ab" * 32,
    "case": "9b0e77",
    "kind": "footage",
    "sha256": "cd" * 32,
    "size": 1234,
    "media_type": "video/mp4",
    "captured_at": "2026-11-24T09:30:00Z",
    "ended_at": "2026-11-24T09:41:07.250+01:00",
    "geo": {"lat": "51.5072", "lon": "-0.1276", "accuracy_m": 12},
}


def encoded(**changes: Any) -> bytes:
    obj = {**GOOD, **changes}
    return canonical.encode({k: v for k, v in obj.items() if v is not ...})


def test_a_complete_manifest_parses_and_round_trips() -> None:
    data = encoded()
    parsed = mf.parse_manifest(data)
    assert parsed.seq == 2
    assert parsed.geo == mf.Geo("51.5072", "-0.1276", 12)
    assert parsed.media_family == "video"
    assert mf.manifest_bytes(parsed) == data
    first = mf.parse_manifest(encoded(seq=1, prev=None, geo=None, ended_at=None))
    assert mf.manifest_bytes(first) == encoded(seq=1, prev=None, geo=None, ended_at=None)


def test_item_and_device_ids() -> None:
    data = encoded()
    assert mf.item_id(data) == hashlib.sha256(data).hexdigest()
    vkey = SIGNER.verifier.vkey
    assert mf.device_id(vkey) == hashlib.sha256(vkey.encode()).hexdigest()[:32]


def test_the_signature_covers_the_context_and_the_exact_bytes() -> None:
    data = encoded()
    signature = mf.sign_manifest(data, SIGNER)
    mf.verify_manifest_signature(data, signature, SIGNER.verifier)
    assert SIGNER.verifier.is_valid_signature(mf.CAPTURE_CONTEXT + data, signature)
    assert not SIGNER.verifier.is_valid_signature(data, signature)  # context is required
    with pytest.raises(VerificationError, match="does not verify"):
        mf.verify_manifest_signature(data + b" ", signature, SIGNER.verifier)
    other = note.new_signer("camera-2.example", b"\x06" * 32).verifier
    with pytest.raises(VerificationError):
        mf.verify_manifest_signature(data, signature, other)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "v must be 1"),
        ({"v": True}, "v must be 1"),
        ({"device": "has space"}, "device"),
        ({"case": 7}, "case"),
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"prev": "AB" * 32}, "prev"),
        ({"prev": 5}, "prev"),
        ({"seq": 1}, "null exactly when seq is 1"),
        ({"prev": None}, "null exactly when seq is 1"),
        ({"kind": "selfie"}, "kind"),
        ({"sha256": "cd" * 31}, "sha256"),
        ({"sha256": None}, "sha256"),
        ({"size": -1}, "size"),
        ({"size": "12"}, "size"),
        ({"media_type": "Video/MP4"}, "media_type"),
        ({"media_type": 3}, "media_type"),
        ({"captured_at": "2026-11-24 09:30:00Z"}, "captured_at"),
        ({"captured_at": "2026-02-29T09:30:00Z"}, "captured_at"),
        ({"captured_at": "2026-13-01T09:30:00Z"}, "captured_at"),
        ({"captured_at": "2026-11-24T24:00:00Z"}, "captured_at"),
        ({"captured_at": "2026-11-24T09:30:00+24:00"}, "captured_at"),
        ({"captured_at": 20261124}, "captured_at"),
        ({"ended_at": "yesterday"}, "ended_at"),
        ({"geo": "51,0"}, "geo"),
        ({"geo": {"lat": "1", "lon": "2"}}, "geo"),
        ({"geo": {"lat": "91", "lon": "0", "accuracy_m": 1}}, "geo.lat"),
        ({"geo": {"lat": "1.5", "lon": "180.5", "accuracy_m": 1}}, "geo.lon"),
        ({"geo": {"lat": "1e3", "lon": "0", "accuracy_m": 1}}, "geo.lat"),
        ({"geo": {"lat": 1, "lon": "0", "accuracy_m": 1}}, "geo.lat"),
        ({"geo": {"lat": "1", "lon": "0", "accuracy_m": -1}}, "geo.accuracy_m"),
        ({"extra": 1}, "unexpected"),
        ({"ended_at": ...}, "missing"),
    ],
)
def test_each_malformed_field_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        mf.parse_manifest(encoded(**changes))


def test_only_canonical_json_objects_of_bounded_size() -> None:
    with pytest.raises(VerificationError, match="canonical"):
        mf.parse_manifest(encoded().replace(b'"v":1', b'"v": 1'))
    with pytest.raises(VerificationError, match="JSON object"):
        mf.parse_manifest(b"[1]")
    with pytest.raises(VerificationError, match="larger than"):
        mf.parse_manifest(b" " * (mf.MAX_MANIFEST_SIZE + 1))


def test_leap_second_and_offsets_are_rfc3339() -> None:
    assert mf.is_rfc3339("2016-12-31T23:59:60Z")
    assert mf.is_rfc3339("2024-02-29T00:00:00-05:30")
    assert not mf.is_rfc3339("2024-02-29T00:00:00-05:60")
    assert not mf.is_rfc3339(None)
