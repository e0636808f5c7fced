"""The API for people: cases, items, their content and their custody histories.

Every route needs a person (an API token or a web session: `evidence.people.access`)
and asks the policy (`evidence.people.policy`) about the case concerned. Checks go in
one order: 401 for nobody, then 404 for a case or item that does not exist,
then 403 for one the person may not see (see the policy's docstring for why
403 and not 404), then 400/416 for bad parameters.

* ``GET /api/v1/cases``: ``{"cases": [{"id", "reference"}]}``, the cases the
  person may see (`policy.visible_cases`), by reference.
* ``GET /api/v1/cases/{case}/items``: ``{"case": {"id", "reference"},
  "items": [ITEM...]}`` in the order they reached the log, where ITEM is
  ``{"id", "case", "device", "seq", "kind", "media_type", "sha256", "size",
  "captured_at", "ingested_at", "ingested_entry", "last_entry", "chain"}``;
  ``chain`` lists what the device's seq/prev chain showed when the item
  arrived (gaps, late or duplicate sequence numbers; ``[]`` when in order).
* ``GET /api/v1/items/{item}``: ITEM plus ``"manifest"`` (the signed capture
  manifest's exact text), ``"signature"`` (base64) and ``"device_key"`` (the
  device's verifier key), enough to check the device's signature offline.
* ``GET /api/v1/items/{item}/content``: the original's bytes (see below).
* ``GET /api/v1/items/{item}/custody``: every entry about the item, oldest
  (``item.ingested``) first, found by walking the ``prev`` chain back from the
  item's latest entry: ``{"item", "size", "checkpoint", "vkey", "entries":
  [{"index", "entry": base64 bytes, "proof": [base64...]}], "actors": {id:
  name}}``. Each proof is the entry's inclusion proof in the checkpoint given
  (the log's newest, of ``size`` entries, read in the same snapshot), so the
  whole history verifies offline with the log's ``vkey`` alone; ``actors``
  names the people the entries mention.

**Content.** ``Accept-Ranges: bytes``; ``Content-Type`` is the item's media
type; never cached (``Cache-Control: private, no-store``: every viewing must
come back here to be logged); ``Content-Security-Policy: default-src 'none';
sandbox``, so evidence opened directly never runs as a page of this site.
``Content-Disposition`` is ``inline``, or ``attachment`` for ``?download=1``,
with a file name made from the item id and its media type, never from
anything a client sent. ``Range`` (RFC 9110 section 14):

* one satisfiable byte range (``a-b``, ``a-``, ``-n``): 206 with
  ``Content-Range``; ``b`` past the end is cut to the end;
* no ``Range``, a range unit other than ``bytes`` (which RFC 9110 says to
  ignore) or more than one range: the whole item, 200 (RFC 9110 lets a server
  ignore a multi-range request; a browser's player never sends one);
* a range that starts at or past the end, ``-0``, any range of an empty item,
  or a malformed ``bytes=`` value (``bytes=5-2``, ``bytes=x``, ``bytes=``):
  416 with ``Content-Range: bytes */SIZE`` and the usual JSON error body;
* with ``If-Range``: the whole item, 200 (no ETag or Last-Modified is sent,
  so no validator a client names can match).

**Viewings.** Before any byte goes out, each content request that *starts a
viewing* appends ``item.accessed`` (the person's id, ``"view"`` or
``"download"``, the item, ``prev``: the item's previous entry) through
`CustodyLog.append_built`, which reads and moves the item's latest entry under
the log's lock, so concurrent viewers never fork the item's chain. The rule:
a request starts a viewing unless it *continues* one, and it continues one
only when all of these hold:

* it is not a download (every ``?download=1`` is logged);
* it asks for one byte range that starts after byte 0 (a player fetching
  more of a recording, or seeking in it);
* the same person's last logged access to this item (view or download) was
  less than `VIEWING_WINDOW` ago.

The window counts from the last *logged* access, not the last request, so a
viewing that goes on longer than the window is logged again. The last logged
access is kept in the database (``item_viewings``, written in the append's
own transaction), so every server process applies the same rule. The
object is opened first (a store that cannot open it: 503, nothing logged);
if the append then fails, nothing is sent: 503. The reverse can happen: an
entry logged for a request whose bytes then failed to arrive (the store or
the client failed); an access is never sent unlogged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiohttp import hdrs, web
from sqlalchemy.engine import Connection

from evidence.chain import merkle
from evidence.chain.entries import ItemAccessed, ItemIngested, item_prev_refs, parse_entry
from evidence.chain.note import b64encode
from evidence.clock import format_time, stored_utc
from evidence.db import Database
from evidence.db.schema import (
    cases,
    devices,
    item_viewings,
    items,
    log_checkpoints,
    log_entries,
    users,
)
from evidence.errors import (
    EvidenceError,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    Unauthorized,
    VerificationError,
)
from evidence.ingest.tus import INGEST
from evidence.log.custody import CustodyLog, range_hashes
from evidence.logs import get_logger
from evidence.people.access import actor_of, require
from evidence.people.policy import Actor, visible_cases
from evidence.storage import ObjectStream
from evidence.web.plumbing import DB, LOG, json_error

# A player fetches a recording in many range requests, and a person pauses,
# seeks and resumes; a break longer than this is a new viewing, logged again.
VIEWING_WINDOW = dt.timedelta(minutes=30)
# Digits of a byte position that can matter: 19 reach past any object (2**63).
# A longer number means "beyond the end"; int() of thousands of digits is refused.
MAX_POSITION_DIGITS = 19
_BEYOND = 1 << 63
NO_STORE = "private, no-store"
# Content is the evidence itself: never let a browser run it as a page of this site.
CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"
# File names for downloads: the item id and one of these extensions, nothing else.
EXTENSIONS = {
    "application/json": "json",
    "application/pdf": "pdf",
    "audio/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/webm": "weba",
    "audio/x-wav": "wav",
    "image/gif": "gif",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "text/plain": "txt",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
}
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")

_log = get_logger("evidence.cases.routes")
routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    app.add_routes(routes)


class RangeNotSatisfiable(InvalidInput):
    """A ``Range`` this item cannot satisfy, or a malformed ``bytes=`` value."""

    code = "range_not_satisfiable"
    http_status = 416


# -- ranges and viewings (pure) -------------------------------------------------------


def _position(digits: str) -> int:
    return _BEYOND if len(digits) > MAX_POSITION_DIGITS else int(digits)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The bytes ``[start, end)`` a ``Range`` header asks of an object of `size` bytes.

    None for the whole object (no header, another unit, several ranges);
    `RangeNotSatisfiable` for a range outside the object or a malformed one.
    """
    if header is None:
        return None
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None  # RFC 9110 section 14.2: ignore a range unit not understood
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) > 1:
        return None  # several ranges: the whole item instead (RFC 9110 lets us)
    match = _RANGE_SPEC.fullmatch(specs[0]) if specs else None
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(f"malformed Range {header[:100]!r}: send bytes=FIRST-LAST")
    first, last = match.groups()
    if first == "":  # the last `last` bytes
        count = _position(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(f"the suffix range {specs[0]!r} selects no byte")
        return max(0, size - count), size
    start = _position(first)
    if last != "" and _position(last) < start:
        raise RangeNotSatisfiable(f"malformed Range {header[:100]!r}: LAST is before FIRST")
    if start >= size:
        raise RangeNotSatisfiable(f"the item has {size} bytes: a range cannot start at {start}")
    end = size if last == "" else min(_position(last) + 1, size)
    return start, end


def starts_viewing(
    *,
    download: bool,
    span: tuple[int, int] | None,
    last_access: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """Whether a content request starts a viewing (is logged); see the module docstring."""
    if download or span is None or span[0] == 0 or last_access is None:
        return True
    return now - last_access >= VIEWING_WINDOW


def download_name(item: str, media_type: str) -> str:
    """The file name of a download: the item id and an extension for its media type."""
    return f"{item}.{EXTENSIONS.get(media_type, 'bin')}"


# -- queries (blocking: run them in a thread) -------------------------------------------


def _item_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "case": row.case_id,
        "device": row.device_id,
        "seq": row.seq,
        "kind": row.kind,
        "media_type": row.media_type,
        "sha256": row.sha256,
        "size": row.size,
        "captured_at": row.captured_at,
        "ingested_at": stored_utc(row.ingested_at).isoformat(),
        "ingested_entry": row.ingested_entry,
        "last_entry": row.last_entry,
        "chain": json.loads(row.chain),
    }


def all_cases(db: Database) -> list[tuple[str, str]]:
    with db.read() as conn:
        rows = conn.execute(sa.select(cases.c.id, cases.c.reference).order_by(cases.c.reference))
        return [(row.id, row.reference) for row in rows]


def case_reference(db: Database, case: str) -> str:
    with db.read() as conn:
        reference = conn.execute(
            sa.select(cases.c.reference).where(cases.c.id == case)
        ).scalar_one_or_none()
    if reference is None:
        raise NotFound(f"no case {case}")
    return str(reference)


def case_items(db: Database, case: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            sa.select(items).where(items.c.case_id == case).order_by(items.c.ingested_entry)
        )
        return [_item_json(row) for row in rows]


def item_case(db: Database, item: str) -> str:
    """The case of `item`; `NotFound` if there is no such item."""
    with db.read() as conn:
        case = conn.execute(
            sa.select(items.c.case_id).where(items.c.id == item)
        ).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no item {item}")
    return str(case)


def item_detail(db: Database, item: str) -> dict[str, Any]:
    with db.read() as conn:
        row = conn.execute(
            sa.select(items, devices.c.vkey.label("device_key"))
            .select_from(items.outerjoin(devices, devices.c.id == items.c.device_id))
            .where(items.c.id == item)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no item {item}")
    return {
        **_item_json(row),
        "manifest": bytes(row.manifest).decode("utf-8"),
        "signature": b64encode(bytes(row.signature)),
        "device_key": row.device_key,
    }


@dataclass(frozen=True)
class ContentTarget:
    """What serving an item's content needs: where it is, and the asker's last access."""

    item: str
    case: str
    object_key: str
    media_type: str
    size: int
    last_access: dt.datetime | None


def content_target(db: Database, item: str, actor: str) -> ContentTarget:
    with db.read() as conn:
        row = conn.execute(
            sa.select(items.c.case_id, items.c.object_key, items.c.media_type, items.c.size).where(
                items.c.id == item
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"no item {item}")
        last = conn.execute(
            sa.select(item_viewings.c.accessed_at).where(
                item_viewings.c.item_id == item, item_viewings.c.actor_id == actor
            )
        ).scalar_one_or_none()
    return ContentTarget(
        item,
        row.case_id,
        row.object_key,
        row.media_type,
        int(row.size),
        None if last is None else stored_utc(last),
    )


def access_builder(
    item: str, actor: str, action: str, clock: Callable[[], dt.datetime]
) -> Callable[[Connection, int], ItemAccessed]:
    """The `append_built` callback logging `actor`'s `action` on `item`.

    Runs under the log's lock: it takes the item's latest entry as ``prev``,
    makes the new entry the latest, and records the access as the person's
    last one (the viewing it starts), all in the append's transaction.
    """

    def build(conn: Connection, index: int) -> ItemAccessed:
        prev = conn.execute(
            sa.select(items.c.last_entry).where(items.c.id == item)
        ).scalar_one_or_none()
        if prev is None:
            raise NotFound(f"no item {item}")
        now = clock()
        entry = ItemAccessed(
            time=format_time(now), item=item, prev=int(prev), actor=actor, action=action
        )
        conn.execute(items.update().where(items.c.id == item).values(last_entry=index))
        viewing = {"action": action, "entry": index, "accessed_at": now}
        key = (item_viewings.c.item_id == item, item_viewings.c.actor_id == actor)
        if conn.execute(item_viewings.update().where(*key).values(**viewing)).rowcount == 0:
            conn.execute(item_viewings.insert().values(item_id=item, actor_id=actor, **viewing))
        return entry

    return build


def custody_history(db: Database, item: str) -> dict[str, Any]:
    """Every entry about `item` with its proof in the newest checkpoint, in one snapshot."""
    with db.read() as conn:
        last = conn.execute(
            sa.select(items.c.last_entry).where(items.c.id == item)
        ).scalar_one_or_none()
        if last is None:
            raise NotFound(f"no item {item}")
        checkpoint = conn.execute(
            sa.select(log_checkpoints.c.size, log_checkpoints.c.note)
            .order_by(log_checkpoints.c.size.desc())
            .limit(1)
        ).one()
        size = int(checkpoint.size)
        found: list[dict[str, Any]] = []
        actors: set[str] = set()
        index: int | None = int(last)
        while index is not None:
            data, prev, actor = _entry_about(conn, item, index, size)
            proof = range_hashes(conn, merkle.inclusion_path(index, size))
            found.append(
                {"index": index, "entry": b64encode(data), "proof": [b64encode(h) for h in proof]}
            )
            if actor is not None:
                actors.add(actor)
            index = prev
        names = conn.execute(sa.select(users.c.id, users.c.name).where(users.c.id.in_(actors)))
        actor_names = {row.id: row.name for row in names}
    found.reverse()
    return {
        "item": item,
        "size": size,
        "checkpoint": checkpoint.note,
        "entries": found,
        "actors": actor_names,
    }


def _entry_about(
    conn: Connection, item: str, index: int, size: int
) -> tuple[bytes, int | None, str | None]:
    """Entry `index` of `item`'s chain: its bytes, its ``prev`` and its actor, checked."""
    if index >= size:
        raise IntegrityError(f"item {item}'s entry {index} is not in the newest checkpoint")
    stored = conn.execute(
        sa.select(log_entries.c.data).where(log_entries.c.idx == index)
    ).scalar_one_or_none()
    if stored is None:
        raise IntegrityError(f"item {item}'s chain names entry {index}, which is missing")
    data = bytes(stored)
    try:
        entry = parse_entry(data)
    except VerificationError as exc:
        raise IntegrityError(f"entry {index} does not parse: {exc}") from exc
    refs = item_prev_refs(entry)
    if item not in refs:
        raise IntegrityError(f"entry {index} in item {item}'s chain is not about it")
    prev = refs[item]
    if prev is not None and prev >= index:
        raise IntegrityError(f"entry {index} of item {item} names a later prev {prev}")
    if prev is None and not isinstance(entry, ItemIngested):
        raise IntegrityError(f"item {item}'s chain ends at entry {index}, not item.ingested")
    actor = getattr(entry, "actor", None)
    return data, prev, actor if isinstance(actor, str) else None


# -- handlers ------------------------------------------------------------------------------


async def _person(request: web.Request) -> Actor:
    """The person asking (authentication only: what they may do is the policy's to say)."""
    actor = await actor_of(request)
    if actor is None:
        raise Unauthorized("log in, or send an API token (Authorization: Bearer ...)")
    return actor


def _json(data: dict[str, Any]) -> web.Response:
    return web.json_response(data, headers={"Cache-Control": NO_STORE})


@routes.get("/api/v1/cases")
async def list_cases(request: web.Request) -> web.Response:
    actor = await require(request, "cases.list")
    known = await asyncio.to_thread(all_cases, request.app[DB])
    visible = set(visible_cases(actor, [case for case, _ in known]))
    return _json({"cases": [{"id": c, "reference": r} for c, r in known if c in visible]})


@routes.get("/api/v1/cases/{case}/items")
async def list_case_items(request: web.Request) -> web.Response:
    await _person(request)
    db, case = request.app[DB], request.match_info["case"]
    reference = await asyncio.to_thread(case_reference, db, case)
    await require(request, "case.read", case)
    found = await asyncio.to_thread(case_items, db, case)
    return _json({"case": {"id": case, "reference": reference}, "items": found})


@routes.get("/api/v1/items/{item}")
async def get_item(request: web.Request) -> web.Response:
    await _person(request)
    db, item = request.app[DB], request.match_info["item"]
    await require(request, "item.read", await asyncio.to_thread(item_case, db, item))
    return _json(await asyncio.to_thread(item_detail, db, item))


@routes.get("/api/v1/items/{item}/custody")
async def get_custody(request: web.Request) -> web.Response:
    await _person(request)
    db, item = request.app[DB], request.match_info["item"]
    await require(request, "item.custody", await asyncio.to_thread(item_case, db, item))
    history = await asyncio.to_thread(custody_history, db, item)
    return _json({**history, "vkey": request.app[LOG].vkey})


def _download_requested(request: web.Request) -> bool:
    values = request.query.getall("download", [])
    if len(values) > 1 or (values and values[0] not in ("0", "1")):
        raise InvalidInput("download is 1 (a download) or 0 (a viewing), given once")
    return values == ["1"]


@routes.get("/api/v1/items/{item}/content", allow_head=False)
async def get_content(request: web.Request) -> web.StreamResponse:
    actor = await _person(request)
    target = await asyncio.to_thread(
        content_target, request.app[DB], request.match_info["item"], actor.id
    )
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
    store = request.app[INGEST].store
    stream = await asyncio.to_thread(store.read, target.object_key, start, end)
    try:
        log = request.app[LOG]
        if starts_viewing(
            download=download, span=span, last_access=target.last_access, now=log.clock()
        ):
            await _log_access(log, target.item, actor.id, "download" if download else "view")
        return await _send(request, stream, target, span, download)
    finally:
        stream.close()  # a file or socket close: quick, and no await left to be cancelled


async def _log_access(log: CustodyLog, item: str, actor: str, action: str) -> None:
    try:
        index = await log.append_built(access_builder(item, actor, action, log.clock))
    except NotFound:
        raise
    except Exception as exc:  # whatever failed, the access is not logged: send nothing
        _log.error("item.access_not_logged", item=item, actor=actor, error=str(exc))
        raise StorageUnavailable(
            "the custody log could not record this access, so nothing was sent; retry later"
        ) from exc
    _log.info("item.accessed", item=item, actor=actor, action=action, index=index)


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
