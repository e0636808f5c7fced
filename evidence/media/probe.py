"""Is the content what its manifest says it is?

A device declares a `kind` and a `media_type`; before an item is accepted, its
bytes must bear that out: video and audio are opened with FFmpeg's demuxers
(through PyAV) and must hold a video (or audio) stream; images must carry the
magic bytes of their type; visit records must be a JSON object; PDFs and text
their signatures. Anything else is refused (422) rather than stored under a
false description.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
from typing import Any, BinaryIO

import av

from evidence.errors import VerificationError

# FFmpeg is chatty about damaged input; we report our own verdict.
logging.getLogger("libav").setLevel(logging.CRITICAL)

IMAGE_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
    "image/heic": (b"",),  # ISO BMFF: "ftyp" at offset 4, checked below
    "image/heif": (b"",),
}
DOCUMENT_TYPES = ("application/pdf", "text/plain", "application/json")
# Which media types each kind may declare.
ACCEPTED: dict[str, tuple[str, ...]] = {
    "footage": ("video/*",),
    "audio": ("audio/*",),
    "photo": tuple(IMAGE_MAGIC),
    "visit-record": ("application/json",),
    "document": (*DOCUMENT_TYPES, *IMAGE_MAGIC),
    "statement": (*DOCUMENT_TYPES, "audio/*", "video/*"),
}
MAX_JSON_SIZE = 16 << 20  # a visit record is a form, not a data set
READ_CHUNK = 1 << 20


def _accepted(kind: str, media_type: str) -> bool:
    family = media_type.split("/", 1)[0]
    return any(t == media_type or t == f"{family}/*" for t in ACCEPTED.get(kind, ()))


def check_declared_type(kind: str, media_type: str) -> None:
    """Refuse, before any byte is received, a media type the kind never has."""
    if not _accepted(kind, media_type):
        allowed = ", ".join(ACCEPTED.get(kind, ()))
        raise VerificationError(f"a {kind} item cannot be {media_type} (accepted: {allowed})")


def check_content(kind: str, media_type: str, source: BinaryIO, size: int) -> None:
    """Raise `VerificationError` unless `source` (seekable, at 0) is a `media_type` file."""
    check_declared_type(kind, media_type)
    family = media_type.split("/", 1)[0]
    if family in ("video", "audio"):
        _check_media(family, media_type, source)
    elif family == "image":
        _check_image(media_type, source.read(16))
    elif media_type == "application/json":
        _check_json(source, size)
    elif media_type == "application/pdf":
        if not source.read(5) == b"%PDF-":
            raise VerificationError("content is not a PDF (no %PDF- header)")
    else:  # text/plain
        _check_utf8(source)


class StreamCheck:
    """A content check made as the bytes stream past, so they need not be read again.

    Only text/plain has one (UTF-8 can be validated incrementally). Its state
    is saved with the upload's hash after each staged part (`saved`,
    `restore`), so that any process can carry it on.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.failed = False

    @classmethod
    def for_type(cls, media_type: str) -> StreamCheck | None:
        return cls() if media_type == "text/plain" else None

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        if not self.failed:
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError:
                self.failed = True

    def copy(self) -> StreamCheck:
        twin = StreamCheck()
        twin._decoder.setstate(self._decoder.getstate())
        twin.failed = self.failed
        return twin

    def saved(self) -> dict[str, Any]:
        pending, flag = self._decoder.getstate()
        return {"utf8_pending": pending.hex(), "utf8_flag": flag, "failed": self.failed}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> StreamCheck:
        """The check `saved` described. `ValueError` (or `KeyError`) for anything malformed."""
        check = cls()
        pending = bytes.fromhex(state["utf8_pending"])
        if len(pending) > 3 or not isinstance(state["utf8_flag"], int):
            raise ValueError("not a saved UTF-8 check")
        check._decoder.setstate((pending, state["utf8_flag"]))
        check.failed = bool(state["failed"])
        return check

    def finish(self) -> None:
        """Raise `VerificationError` unless everything streamed was valid."""
        if not self.failed:
            try:
                self._decoder.decode(b"", final=True)
                return
            except UnicodeDecodeError:
                pass
        raise VerificationError("content declared text/plain is not UTF-8")


def _check_media(family: str, media_type: str, source: BinaryIO) -> None:
    try:
        with av.open(source, mode="r") as container:
            streams = container.streams.video if family == "video" else container.streams.audio
            if not streams:
                raise VerificationError(f"content declared {media_type} has no {family} stream")
    except av.FFmpegError as exc:
        raise VerificationError(
            f"content declared {media_type} is not readable media: {exc}"
        ) from exc


def _check_image(media_type: str, head: bytes) -> None:
    if media_type in ("image/heic", "image/heif"):
        ok = head[4:8] == b"ftyp"
    elif media_type == "image/webp":
        ok = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    else:
        ok = any(head.startswith(m) for m in IMAGE_MAGIC[media_type])
    if not ok:
        raise VerificationError(f"content does not start like {media_type}")


def _check_json(source: BinaryIO, size: int) -> None:
    if size > MAX_JSON_SIZE:
        raise VerificationError(f"a JSON document of {size} bytes is larger than {MAX_JSON_SIZE}")
    try:
        document = json.loads(
            source.read(MAX_JSON_SIZE + 1).decode("utf-8"),
            parse_constant=_not_json_number,
            parse_float=_finite_float,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"content declared application/json is not JSON: {exc}") from exc
    except RecursionError as exc:  # nested deeper than any form: refused, not a crash
        raise VerificationError("content declared application/json is nested too deeply") from exc
    if not isinstance(document, dict):
        raise VerificationError("a JSON item must be an object")


def _not_json_number(name: str) -> Any:
    """Python's json takes NaN, Infinity and -Infinity; RFC 8259 has no such numbers."""
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one too large for a double (1e999) is refused,
    not read as infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _check_utf8(source: BinaryIO) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := source.read(READ_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise VerificationError("content declared text/plain is not UTF-8") from exc
