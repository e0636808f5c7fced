"""``GET /api/v1/items/{item}/content``: an item's original bytes, each viewing logged first.

``Accept-Ranges: bytes``; ``Content-Type`` is the item's media type; never
cached (``Cache-Control: private, no-store``: every viewing must come back
here to be logged); ``Content-Security-Policy: default-src 'none'; sandbox``,
so evidence opened directly never runs as a page of this site.
``Content-Disposition`` is ``inline``, or ``attachment`` for ``?download=1``,
with a file name made from the item id and its media type, never from
anything a client sent. Ranges: `evidence.content.ranges`; which requests are
logged: `evidence.content.viewings`.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from evidence.cases.records import MoveItemTip
from evidence.clock import Clock
from evidence.content.ranges import RangeNotSatisfiable, download_name, parse_range
from evidence.content.viewings import (
    AccessEntry,
    ContentTarget,
    RecordViewing,
    content_target,
    starts_viewing,
)
from evidence.errors import EvidenceError, InvalidInput, NotFound, StorageUnavailable
from evidence.ids import ItemId, UserId
from evidence.log.custody import CustodyLog
from evidence.logs import get_logger
from evidence.people.access import require, require_person
from evidence.storage import ObjectStream
from evidence.web.keys import CLOCK, DB, LOG, STORE
from evidence.web.plumbing import NO_STORE, json_error

# Content is the evidence itself: never let a browser run it as a page of this site.
CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"

_log = get_logger("evidence.content")
routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    app.add_routes(routes)


def _download_requested(request: web.Request) -> bool:
    values = request.query.getall("download", [])
    if len(values) > 1 or (values and values[0] not in ("0", "1")):
        raise InvalidInput("download is 1 (a download) or 0 (a viewing), given once")
    return values == ["1"]


@routes.get("/api/v1/items/{item}/content", allow_head=False)
async def get_content(request: web.Request) -> web.StreamResponse:
    actor = await require_person(request)
    item = ItemId(request.match_info["item"])
    target = await asyncio.to_thread(content_target, request.app[DB], item, actor.user_id)
    await require(request, "item.content", target.case)
    download = _download_requested(request)
    # If-Range names a validator, and this API sends none, so it never matches:
    # RFC 9110 section 13.1.5 then says to ignore Range and send everything.
    range_header = None if hdrs.IF_RANGE in request.headers else request.headers.get(hdrs.RANGE)
    try:
        span = parse_range(range_header, target.size)
    except RangeNotSatisfiable as exc:
        return json_error(
            exc.http_status,
            exc.code,
            str(exc),
            headers={"Content-Range": f"bytes */{target.size}", "Accept-Ranges": "bytes"},
        )
    start, end = span if span is not None else (0, target.size)
    stream = await asyncio.to_thread(request.app[STORE].read, target.object_key, start, end)
    try:
        clock = request.app[CLOCK]
        if starts_viewing(
            download=download, span=span, last_access=target.last_access, now=clock()
        ):
            action = "download" if download else "view"
            await _log_access(request.app[LOG], target.item, actor.user_id, action, clock)
        return await _send(request, stream, target, span, download)
    finally:
        stream.close()  # a file or socket close: quick, and no await left to be cancelled


async def _log_access(
    log: CustodyLog, item: ItemId, actor: UserId, action: str, clock: Clock
) -> None:
    try:
        now = clock()
        appended = await log.append(
            AccessEntry(item, actor, action, now),
            MoveItemTip(item),
            RecordViewing(item, actor, action, now),
        )
    except NotFound:
        raise
    except Exception as exc:  # whatever failed, the access is not logged: send nothing
        _log.error("item.access_not_logged", item=item, actor=actor, error=str(exc))
        raise StorageUnavailable(
            "the custody log could not record this access, so nothing was sent; retry later"
        ) from exc
    _log.info("item.accessed", item=item, actor=actor, action=action, index=appended.index)


def _next_chunk(stream: ObjectStream) -> bytes | None:
    return next(stream, None)


async def _send(
    request: web.Request,
    stream: ObjectStream,
    target: ContentTarget,
    span: tuple[int, int] | None,
    download: bool,
) -> web.StreamResponse:
    """Stream the (already logged) bytes; errors before the first byte are still JSON."""
    start, end = span if span is not None else (0, target.size)
    first = await asyncio.to_thread(_next_chunk, stream)  # a failing store: 503 here, not mid-way
    disposition = "attachment" if download else "inline"
    response = web.StreamResponse(
        status=206 if span is not None else 200,
        headers={
            "Accept-Ranges": "bytes",
            "Cache-Control": NO_STORE,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Content-Disposition": (
                f'{disposition}; filename="{download_name(target.item, target.media_type)}"'
            ),
        },
    )
    response.content_type = target.media_type
    if target.media_type == "text/plain":
        response.charset = "utf-8"  # checked at ingest
    response.content_length = end - start
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{target.size}"
    try:
        await response.prepare(request)
        chunk = first
        while chunk is not None:
            await response.write(chunk)
            chunk = await asyncio.to_thread(_next_chunk, stream)
        await response.write_eof()
    except ConnectionError:  # the client went away: nothing more to do
        _log.info("item.content_interrupted", item=target.item)
    except EvidenceError as exc:  # the store failed after the headers went: cut the connection
        _log.error("item.content_failed", item=target.item, error=str(exc))
        if request.transport is not None:
            request.transport.close()
    return response
