"""The one app factory: `create_app(settings, *, db=None, log=None, store=None, clock=None)`.

It opens what is not injected, sets every piece of state under its typed key
(`evidence.web.keys`) and mounts each domain package's routes. Resources are
owned by the application's ``cleanup_ctx``: whatever is not injected is opened
at start-up (in a thread: opening is blocking I/O) and closed at shutdown.
Injected resources belong to the caller, who opens, starts and closes them.

The one clock (`clock`, the system's UTC time unless injected) is the one the
custody log, logins, sessions and uploads read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from evidence.cases import routes as cases_routes
from evidence.clock import Clock, utc_now
from evidence.content import routes as content_routes
from evidence.db import Database, open_database
from evidence.errors import EvidenceError
from evidence.ingest import tus
from evidence.ingest.service import Ingest, Limits
from evidence.log import routes as log_routes
from evidence.log.custody import CustodyLog, open_log
from evidence.logs import access_log_middleware, get_logger
from evidence.people import login
from evidence.settings import Settings
from evidence.storage import StagingStore, content_key, open_store
from evidence.web.keys import CLOCK, DB, INGEST, LOG, SETTINGS, STORE
from evidence.web.pages import setup_pages
from evidence.web.plumbing import error_middleware, setup_web

__all__ = ["create_app"]

# Request bodies of the routes here are small; uploads stream through their own
# handlers with their own limits.
CLIENT_MAX_SIZE = 1 << 20
EXPIRY_INTERVAL_SECONDS = 600  # expired uploads are removed within this long

_log = get_logger("evidence.app")


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    log: CustodyLog | None = None,
    store: StagingStore | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the web application from `settings`; tests inject `db`, `log`, `store`, `clock`."""
    app = web.Application(
        middlewares=[access_log_middleware, error_middleware], client_max_size=CLIENT_MAX_SIZE
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock if clock is not None else log.clock if log is not None else utc_now
    app.cleanup_ctx.append(_resources(db, log))
    app.cleanup_ctx.append(_ingest(store))
    setup_web(app)
    setup_pages(app)
    log_routes.setup(app)
    tus.setup(app)
    cases_routes.setup(app)
    content_routes.setup(app)
    login.setup(app)
    return app


def _resources(
    db: Database | None, log: CustodyLog | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        async with contextlib.AsyncExitStack() as owned:
            the_db = db
            if the_db is None:
                the_db = await asyncio.to_thread(open_database, settings)
                owned.push_async_callback(asyncio.to_thread, the_db.close)
            app[DB] = the_db
            the_log = log
            if the_log is None:
                the_log = await asyncio.to_thread(open_log, settings, the_db, app[CLOCK])
                await the_log.start()
                owned.push_async_callback(the_log.close)
            app[LOG] = the_log
            _log.info("log.opened", origin=the_log.origin, vkey=the_log.vkey)
            yield

    return resources


def _ingest(
    store: StagingStore | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ingest(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        the_store = store if store is not None else await asyncio.to_thread(open_store, settings)
        app[STORE] = the_store
        app[INGEST] = Ingest(
            app[DB],
            app[LOG],
            the_store,
            app[CLOCK],
            key_for=lambda sha256: content_key("originals", sha256),
            limits=Limits(
                max_upload_size=settings.max_upload_size, max_item_size=settings.max_item_size
            ),
        )
        expiry = asyncio.create_task(_expire_uploads(app[INGEST]), name="upload-expiry")
        try:
            yield
        finally:
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
            await app[INGEST].close()
            if store is None:
                await asyncio.to_thread(the_store.close)

    return ingest


async def _expire_uploads(ingest: Ingest) -> None:
    """Remove expired, unfinished uploads and their staging, now and then (tus expiration)."""
    while True:
        try:
            removed = await ingest.expire()
            if removed:
                _log.info("uploads.expired", count=removed)
        except EvidenceError as exc:  # the database or store is down: try again later
            _log.warning("uploads.expiry_failed", error=str(exc))
        await asyncio.sleep(EXPIRY_INTERVAL_SECONDS)
