"""A separate process that appends to the custody log (for the multi-process and crash tests).

    python appender.py DATABASE_URL NAME COUNT CONCURRENCY

prints one line "<index> <device>" per entry as soon as its append returns.
"""

from __future__ import annotations

import asyncio
import sys

from loghelpers import ORIGIN, SEED

from evidence.chain import note
from evidence.chain.entries import DeviceRevoked
from evidence.db import Database
from evidence.log.custody import CustodyLog


async def main(url: str, name: str, count: int, concurrency: int) -> None:
    db = Database.connect(url)
    custody = CustodyLog.open(db, note.new_signer(ORIGIN, SEED))
    await custody.start()
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            device = f"{name}-{queue.pop()}"
            appended = await custody.append(
                DeviceRevoked(time="2026-11-24T10:00:00Z", device=device)
            )
            index = appended.index
            print(index, device, flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await custody.close()
    db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
