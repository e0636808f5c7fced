"""The resumable SHA-256: hashlib's digests, however the input is split and carried over."""

from __future__ import annotations

import hashlib
import itertools
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.ingest import hashing
from evidence.ingest.hashing import ResumableSha256, export_state, new_hasher

needs_openssl = pytest.mark.skipif(
    not hashing.AVAILABLE, reason="OpenSSL's SHA256 functions cannot be loaded here"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loaded on Linux only")
def test_available_on_linux() -> None:
    # CI runs on Linux with OpenSSL 3: the fast path must be the one tested there.
    assert hashing.AVAILABLE


def test_restore_is_refused_where_the_library_failed_its_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hashing, "AVAILABLE", False)
    with pytest.raises(RuntimeError, match="did not pass"):
        ResumableSha256.restore("0" * 64 + ":0:")
    assert not isinstance(new_hasher(), ResumableSha256)


@needs_openssl
@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6),
)
def test_carried_over_between_every_piece_it_matches_hashlib(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    hasher = ResumableSha256()
    for start, end in itertools.pairwise(bounds):
        hasher = ResumableSha256.restore(hasher.export())  # as another process would
        hasher.update(bytearray(data[start:end]) if start % 2 else data[start:end])
    assert hasher.length == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


@needs_openssl
def test_a_saved_state_is_plain_text_naming_the_bytes_hashed() -> None:
    hasher = ResumableSha256()
    hasher.update(b"x" * 70)
    words, length, pending = hasher.export().split(":")
    assert len(words) == 64
    assert int(length) == 70
    assert bytes.fromhex(pending) == b"x" * 6


@needs_openssl
def test_digest_leaves_the_hasher_usable_and_copy_is_independent() -> None:
    hasher = ResumableSha256()
    hasher.update(b"abc")
    twin = hasher.copy()
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    hasher.update(b"def")
    assert twin.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert hasher.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


@needs_openssl
def test_memoryview_slices_are_hashed_as_the_bytes_they_show() -> None:
    buffer = bytearray(range(200))
    hasher = ResumableSha256()
    hasher.update(memoryview(buffer)[10:150])
    hasher.update(memoryview(bytes(buffer))[150:])
    hasher.update(b"")
    assert hasher.hexdigest() == hashlib.sha256(bytes(buffer[10:])).hexdigest()


@needs_openssl
@pytest.mark.parametrize(
    "state",
    [
        "",
        "00:0:",
        "0" * 64 + ":1:",  # one byte hashed, none pending
        "0" * 64 + ":0:00",  # a pending byte that was never hashed
        "0" * 64 + ":-64:",
        "0" * 64 + ":x:",
        "zz" * 32 + ":0:",
        "0" * 64 + ":0:" + ":",
        "0" * 64 + f":{1 << 61}:",
    ],
)
def test_a_malformed_state_is_refused(state: str) -> None:
    with pytest.raises(
        ValueError,
        match=r"not a saved SHA-256 state|invalid literal|values to unpack|non-hexadecimal",
    ):
        ResumableSha256.restore(state)


@needs_openssl
def test_new_hasher_falls_back_to_hashlib_which_cannot_be_saved() -> None:
    assert isinstance(new_hasher(), ResumableSha256)
    plain = new_hasher(resumable=False)
    plain.update(b"abc")
    assert export_state(plain) is None
    assert plain.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert export_state(new_hasher()) is not None
