"""Every piece of application state, as typed `web.AppKey`s; `evidence.app.create_app` sets them.

Handlers read what they need from here (`request.app[STORE]`), never from
another domain's object: the object store is the app's, not ingest's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from evidence.clock import Clock
    from evidence.db import Database
    from evidence.ingest.service import Ingest
    from evidence.log.custody import CustodyLog
    from evidence.settings import Settings
    from evidence.storage import ObjectStore

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
LOG: web.AppKey[CustodyLog] = web.AppKey("log")
STORE: web.AppKey[ObjectStore] = web.AppKey("store")
# The one clock: the log, logins, sessions and uploads all read the time from it.
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
INGEST: web.AppKey[Ingest] = web.AppKey("ingest")
# Each argon2id check takes 64 MiB: at most this many run at once (evidence.people.login).
PASSWORD_CHECKS: web.AppKey[asyncio.Semaphore] = web.AppKey("password_checks")
