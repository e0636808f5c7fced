"""The small-item benchmark's second baseline: durable small writes behind a bare aiohttp server.

``python bench/bare_server.py PORT DIR`` answers ``POST /api/v1/items`` by doing
what must be done for any item to be kept, and nothing more: read the body,
write it with the service's own object store (`LocalStore.put`: content-addressed,
fsync'd, hard-linked into place, its directories fsync'd) and commit one row
to SQLite (WAL, synchronous=FULL, as the service's database) in its own
transaction, then answer 201. No signature, no checks, no custody log, no
batching: the floor that the same machine, HTTP server and disk put under
`POST /api/v1/items`, measured in the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import threading
from pathlib import Path

from aiohttp import web

from evidence.storage import content_key
from evidence.storage.local import LocalStore


def main() -> None:
    port, root = int(sys.argv[1]), Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    store = LocalStore(root / "objects")
    # One connection, one writer at a time (SQLite has one anyway), no busy waiting.
    db = sqlite3.connect(root / "bare.sqlite", check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS kept (sha256 TEXT PRIMARY KEY, size INTEGER)")
    db_lock = threading.Lock()

    def keep(body: bytes) -> str:
        sha256 = hashlib.sha256(body).hexdigest()
        store.put(content_key("originals", sha256), body, sha256, retain=True)
        with db_lock, db:
            db.execute("INSERT OR IGNORE INTO kept VALUES (?, ?)", (sha256, len(body)))
        return sha256

    async def item(request: web.Request) -> web.Response:
        sha256 = await asyncio.to_thread(keep, await request.read())
        return web.json_response({"sha256": sha256}, status=201)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/api/v1/items", item)

    async def checkpoint(request: web.Request) -> web.Response:  # what the bench waits for
        return web.Response(text="bare\n")

    app.router.add_get("/log/checkpoint", checkpoint)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
