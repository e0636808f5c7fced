"""Durable commits on SQLite: the pragmas on the connections the running app really uses.

`evidence.db` promises that a commit is durable when it returns: WAL, and
``synchronous=FULL`` (in WAL mode, NORMAL may lose the last commits at a power
cut). Asked of the app's own connections, every kind it hands out, several
at once, and a connection the pool made afresh after the others.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from evidence.web.keys import DB

SYNCHRONOUS_FULL = 2  # what `PRAGMA synchronous` answers for FULL


def _pragmas(conn: Connection) -> tuple[str, int]:
    mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
    return str(mode).lower(), int(synchronous)


async def test_every_connection_of_the_app_is_wal_with_synchronous_full(client: Any) -> None:
    db = client.app[DB]
    assert db.dialect == "sqlite"
    assert (await client.get("/log/checkpoint")).status == 200  # the app has used its db
    seen: list[tuple[str, int]] = []
    ids: set[int] = set()
    with db.write() as writing, db.read() as reading, db.read() as another:
        for conn in (writing, reading, another):  # three connections open at once
            seen.append(_pragmas(conn))
            ids.add(id(conn.connection.dbapi_connection))
    assert len(ids) == 3
    db.engine.dispose()  # the pool's next connection is a new one
    with db.read() as fresh:
        seen.append(_pragmas(fresh))
    assert seen == [("wal", SYNCHRONOUS_FULL)] * 4
