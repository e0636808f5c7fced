"""The API for people: cases, their items, and items' custody histories.

Every route needs a person (an API token or a web session:
`evidence.people.access`) and asks the policy (`evidence.people.policy`) about
the case concerned. Checks go in one order: 401 for nobody, then 404 for a
case or item that does not exist, then 403 for one the person may not see (see
the policy's docstring for why 403 and not 404), then 400/416 for bad
parameters. Content is `evidence.content.routes`.

* ``GET /api/v1/cases``: ``{"cases": [{"id", "reference"}]}``, the cases the
  person may see (`policy.visible_cases`), by reference.
* ``GET /api/v1/cases/{case}/items``: ``{"case": {"id", "reference"},
  "items": [ITEM...]}`` in the order they reached the log (ITEM: see
  `evidence.cases.items`).
* ``GET /api/v1/items/{item}``: ITEM plus ``"manifest"`` (the signed capture
  manifest's exact text), ``"signature"`` (base64) and ``"device_key"`` (the
  device's verifier key), enough to check the device's signature offline.
* ``GET /api/v1/items/{item}/custody``: every entry about the item, oldest
  (``item.ingested``) first, found by walking the ``prev`` chain back from the
  item's latest entry: ``{"item", "size", "checkpoint", "vkey", "entries":
  [{"index", "entry": base64 bytes, "proof": [base64...]}], "actors": {id:
  name}}``. Each proof is the entry's inclusion proof in the checkpoint given
  (the log's newest, of ``size`` entries, read in the same snapshot), so the
  whole history verifies offline with the log's ``vkey`` alone; ``actors``
  names the people the entries mention.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from evidence.cases.items import (
    all_cases,
    case_items,
    case_reference,
    custody_history,
    item_case,
    item_detail,
)
from evidence.db import Database
from evidence.people.access import require, require_person
from evidence.people.accounts import user_names
from evidence.people.policy import visible_cases
from evidence.web.keys import DB, LOG
from evidence.web.plumbing import NO_STORE

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    app.add_routes(routes)


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
    await require_person(request)
    db, case = request.app[DB], request.match_info["case"]
    reference = await asyncio.to_thread(case_reference, db, case)
    await require(request, "case.read", case)
    found = await asyncio.to_thread(case_items, db, case)
    return _json({"case": {"id": case, "reference": reference}, "items": found})


@routes.get("/api/v1/items/{item}")
async def get_item(request: web.Request) -> web.Response:
    await require_person(request)
    db, item = request.app[DB], request.match_info["item"]
    await require(request, "item.read", await asyncio.to_thread(item_case, db, item))
    return _json(await asyncio.to_thread(item_detail, db, item))


@routes.get("/api/v1/items/{item}/custody")
async def get_custody(request: web.Request) -> web.Response:
    await require_person(request)
    db, item = request.app[DB], request.match_info["item"]
    await require(request, "item.custody", await asyncio.to_thread(item_case, db, item))
    history, actors = await asyncio.to_thread(custody_history, db, item)
    names = await asyncio.to_thread(_names, db, actors)
    return _json({**history, "actors": names, "vkey": request.app[LOG].vkey})


def _names(db: Database, ids: frozenset[str]) -> dict[str, str]:
    with db.read() as conn:
        return user_names(conn, ids)
