"""tus 1.0.0 at /api/v1/uploads, receipts, and small items in one request.

Extensions: creation, creation-with-upload, termination, expiration and
checksum (sha256). Devices authenticate with ``Authorization: Bearer``;
``Upload-Metadata`` carries ``manifest`` (the manifest's canonical JSON) and
``signature`` (the Ed25519 signature, standard base64). Handlers only parse
headers and translate; `evidence.ingest.service.Ingest` does the work.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from collections.abc import AsyncIterator

import multipart
from aiohttp import ClientConnectionError, ClientPayloadError, web
from aiohttp.helpers import parse_mimetype

from evidence.devices.registry import Device
from evidence.errors import Disconnected, InvalidInput, TooLarge
from evidence.ingest.service import UploadStatus
from evidence.web.keys import INGEST
from evidence.web.plumbing import parse_decimal

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
UPLOADS = "/api/v1/uploads"
READ_CHUNK = 256 << 10  # bytes read from the socket at a time
# A manifest and its signature in Upload-Metadata are under 1 KiB of base64.
MAX_METADATA_LENGTH = 8192

MAX_BOUNDARY_LENGTH = 70  # RFC 2046 section 5.1.1: a boundary is 1 to 70 characters
SMALL_ITEM_PARTS = ("manifest", "signature", "content")
SIGNATURE_SIZE = 64

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.on_response_prepare.append(_tus_headers)


async def _tus_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(UPLOADS):
        response.headers["Tus-Resumable"] = TUS_VERSION
        response.headers.setdefault("Cache-Control", "no-store")


def _check_version(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise web.HTTPPreconditionFailed(
            headers={"Tus-Version": TUS_VERSION, "Tus-Resumable": TUS_VERSION},
            text=f"Tus-Resumable: {TUS_VERSION} is required",
        )


def decode_signature(value: bytes) -> bytes:
    """The ``signature`` value: the 64-byte Ed25519 signature as standard base64 text.

    In Upload-Metadata that text is itself base64-encoded, as tus encodes every
    value; what arrives here is the decoded value, the text.
    """
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("signature must be the Ed25519 signature in standard base64") from exc
    if len(raw) != SIGNATURE_SIZE:
        raise InvalidInput(f"signature must be {SIGNATURE_SIZE} bytes (Ed25519), base64-encoded")
    return raw


def _status_headers(status: UploadStatus) -> dict[str, str]:
    return {
        "Upload-Offset": str(status.offset),
        "Upload-Length": str(status.length),
        "Upload-Expires": email.utils.format_datetime(status.expires_at, usegmt=True),
    }


def _header_decimal(request: web.Request, name: str) -> int:
    value = request.headers.get(name)
    if value is None:
        raise InvalidInput(f"the {name} header is required")
    return parse_decimal(value, name)


def _checksum(request: web.Request) -> bytes | None:
    header = request.headers.get("Upload-Checksum")
    if header is None:
        return None
    algorithm, _, value = header.partition(" ")
    if algorithm != "sha256":
        raise InvalidInput("Upload-Checksum: only sha256 is supported")
    try:
        digest = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise InvalidInput("Upload-Checksum: the value is not base64") from exc
    if len(digest) != 32:
        raise InvalidInput("Upload-Checksum: a sha256 digest is 32 bytes")
    return digest


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request's body in chunks; `Disconnected` when the client goes away mid-body."""
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            yield chunk
    except (ClientPayloadError, ClientConnectionError, ConnectionError, EOFError) as exc:
        raise Disconnected(f"the client went away mid-body: {type(exc).__name__}") from exc


def _is_offset_stream(request: web.Request) -> bool:
    return request.content_type == OFFSET_CONTENT_TYPE


@routes.options(UPLOADS)
async def options(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    return web.Response(
        status=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(ingest.limits.max_upload_size),
            "Tus-Checksum-Algorithm": "sha256",
        },
    )


@routes.post(UPLOADS)
async def create(request: web.Request) -> web.Response:
    _check_version(request)
    ingest = request.app[INGEST]
    device = await _device(request)
    if "Upload-Defer-Length" in request.headers:
        raise InvalidInput("Upload-Defer-Length is not supported: the manifest gives the size")
    length = _header_decimal(request, "Upload-Length")
    if length > ingest.limits.max_upload_size:
        raise TooLarge(f"{length} bytes is over the limit of {ingest.limits.max_upload_size}")
    header = request.headers.get("Upload-Metadata", "")
    if len(header) > MAX_METADATA_LENGTH:
        raise InvalidInput(f"Upload-Metadata is longer than {MAX_METADATA_LENGTH} characters")
    metadata = decode_metadata(header)
    if "manifest" not in metadata or "signature" not in metadata:
        raise InvalidInput("Upload-Metadata must carry manifest and signature")
    signature = decode_signature(metadata["signature"])
    if _is_offset_stream(request):  # creation-with-upload
        checksum = _checksum(request)  # refused before anything is created
        status = await ingest.create_with_upload(
            device, metadata["manifest"], signature, length, _body(request), checksum
        )
    else:
        status = await ingest.create(device, metadata["manifest"], signature, length)
    location = f"{UPLOADS}/{status.id}"
    return web.Response(status=201, headers={"Location": location, **_status_headers(status)})


@routes.head(UPLOADS + "/{id}")
async def head(request: web.Request) -> web.Response:
    _check_version(request)
    device = await _device(request)
    status = await request.app[INGEST].status(device, request.match_info["id"])
    return web.Response(status=200, headers=_status_headers(status))


@routes.patch(UPLOADS + "/{id}")
async def patch(request: web.Request) -> web.Response:
    _check_version(request)
    device = await _device(request)
    if not _is_offset_stream(request):
        raise web.HTTPUnsupportedMediaType(text=f"Content-Type must be {OFFSET_CONTENT_TYPE}")
    offset = _header_decimal(request, "Upload-Offset")
    checksum = _checksum(request)
    status = await request.app[INGEST].receive(
        device, request.match_info["id"], offset, _body(request), checksum
    )
    headers = _status_headers(status)
    del headers["Upload-Length"]
    return web.Response(status=204, headers=headers)


@routes.delete(UPLOADS + "/{id}")
async def terminate(request: web.Request) -> web.Response:
    _check_version(request)
    device = await _device(request)
    await request.app[INGEST].terminate(device, request.match_info["id"])
    return web.Response(status=204)


@routes.get(UPLOADS + "/{id}/receipt")
async def upload_receipt(request: web.Request) -> web.Response:
    device = await _device(request)
    receipt = await request.app[INGEST].receipt(device, request.match_info["id"])
    return web.json_response(receipt)


@routes.get("/api/v1/items/{item}/receipt")
async def item_receipt(request: web.Request) -> web.Response:
    await _device(request)
    return web.json_response(await request.app[INGEST].item_receipt(request.match_info["item"]))


@routes.post("/api/v1/items")
async def small_item(request: web.Request) -> web.Response:
    """One request for a small item: multipart ``manifest``, ``signature``, ``content``."""
    ingest = request.app[INGEST]
    device = await _device(request)
    fields = await _small_item_parts(request, ingest.limits.max_item_size)
    signature = decode_signature(fields["signature"])
    receipt = await ingest.ingest_small(device, fields["manifest"], signature, fields["content"])
    return web.json_response(receipt, status=201)


async def _small_item_parts(request: web.Request, max_content: int) -> dict[str, bytes]:
    """The parts of a small item's multipart/form-data body, each within its limit.

    Parsed as the body streams with `multipart`'s push parser (strict): aiohttp's
    reader re-parses each part's Content-Disposition twice at a cost of about
    0.1 ms each, more than the rest of the parsing.
    """
    mimetype = parse_mimetype(request.headers.get("Content-Type", ""))
    boundary = mimetype.parameters.get("boundary")
    if (mimetype.type, mimetype.subtype) != ("multipart", "form-data") or not boundary:
        raise InvalidInput("POST /api/v1/items takes multipart/form-data (with a boundary)")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidInput(f"a multipart boundary is at most {MAX_BOUNDARY_LENGTH} characters")
    fields: dict[str, bytes] = {}
    name, data, limit = "", bytearray(), 0
    try:
        with multipart.PushMultipartParser(
            boundary, max_segment_count=len(SMALL_ITEM_PARTS), strict=True
        ) as parser:
            async for chunk in request.content.iter_any():
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        name = event.name or ""
                        if name not in SMALL_ITEM_PARTS:
                            raise InvalidInput("the parts are manifest, signature and content")
                        if name in fields:
                            raise InvalidInput(f"the part {name} is given twice")
                        data = bytearray()
                        limit = max_content if name == "content" else MAX_METADATA_LENGTH
                    elif event is not None:
                        data += event
                        if len(data) > limit:
                            raise TooLarge(f"the part {name} is larger than {limit} bytes")
                    else:
                        fields[name] = bytes(data)
    except multipart.MultipartError as exc:
        raise InvalidInput(f"the multipart/form-data body is malformed: {exc}") from exc
    if set(fields) != set(SMALL_ITEM_PARTS):
        raise InvalidInput("the parts manifest, signature and content are all required")
    return fields


async def _device(request: web.Request) -> Device:
    return await request.app[INGEST].device(request.headers.get("Authorization"))


def decode_metadata(header: str | None) -> dict[str, bytes]:
    """tus ``Upload-Metadata``: comma-separated ``key base64value`` pairs."""
    result: dict[str, bytes] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or key in result:
            raise InvalidInput(f"Upload-Metadata: bad or repeated key {key!r}")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True)
        except binascii.Error as exc:
            raise InvalidInput(f"Upload-Metadata: value of {key!r} is not base64") from exc
    return result
