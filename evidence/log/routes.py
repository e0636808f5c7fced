"""The public log read API (``/log/``): checkpoint, key, entries and proofs.

These routes are public: entries hold no personal data. Their shapes are
fixed (see DESIGN "Interfaces others depend on"):

* ``GET /log/checkpoint``: the latest signed checkpoint note, text/plain;
* ``GET /log/vkey``: the log's verifier key, one line;
* ``GET /log/entries/{index}``: the entry's exact stored bytes (canonical JSON);
* ``GET /log/proof/inclusion?index=I&size=S``: ``{"index", "size", "proof": [base64...]}``;
* ``GET /log/proof/consistency?old=A&new=B``: ``{"old", "new", "proof": [base64...]}``.

An entry, and a proof between fixed sizes, never change once served, so they
are cacheable forever; the checkpoint and key are revalidated on every use.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from evidence.chain.note import b64encode
from evidence.web.keys import LOG
from evidence.web.plumbing import CACHE_IMMUTABLE, CACHE_NONE, path_decimal, query_decimal

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    app.add_routes(routes)


def _b64(hashes: list[bytes]) -> list[str]:
    return [b64encode(h) for h in hashes]


@routes.get("/log/checkpoint")
async def get_checkpoint(request: web.Request) -> web.Response:
    signed = await asyncio.to_thread(request.app[LOG].checkpoint)
    return web.Response(
        text=signed.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": CACHE_NONE},
    )


@routes.get("/log/vkey")
async def get_vkey(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[LOG].vkey + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": CACHE_NONE},
    )


@routes.get("/log/entries/{index}")
async def get_entry(request: web.Request) -> web.Response:
    index = path_decimal(request, "index")
    data = await asyncio.to_thread(request.app[LOG].entry, index)
    return web.Response(
        body=data,
        content_type="application/json",
        headers={"Cache-Control": CACHE_IMMUTABLE},
    )


@routes.get("/log/proof/inclusion")
async def get_inclusion_proof(request: web.Request) -> web.Response:
    index = query_decimal(request, "index")
    size = query_decimal(request, "size")
    proof = await asyncio.to_thread(request.app[LOG].inclusion_proof, index, size)
    return web.json_response(
        {"index": index, "size": size, "proof": _b64(proof)},
        headers={"Cache-Control": CACHE_IMMUTABLE},
    )


@routes.get("/log/proof/consistency")
async def get_consistency_proof(request: web.Request) -> web.Response:
    old = query_decimal(request, "old")
    new = query_decimal(request, "new")
    proof = await asyncio.to_thread(request.app[LOG].consistency_proof, old, new)
    return web.json_response(
        {"old": old, "new": new, "proof": _b64(proof)},
        headers={"Cache-Control": CACHE_IMMUTABLE},
    )
