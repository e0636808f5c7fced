"""The bytes of one request on their way into the store: whole parts, a few at a time.

Bytes are copied once, into a part-sized buffer. Each full part is handed to
the store in a worker thread while the next one fills, up to `IN_FLIGHT`
parts at once, so reading from the device and writing to the store overlap.
Parts are settled strictly in order: a part counts (its receipt is kept, the
hash carried over it, and the offset recorded) only once it and every part
before it are durable. If the store fails, or the request ends early, every
byte not in a settled part is handed back as the upload's tail, to be kept
in the database: nothing received is lost, and the recorded offset counts
only durable bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

# Parts handed to the store and not yet settled. Two keep the store busy while
# the next part fills; each holds one part's buffer (8 MiB by default).
IN_FLIGHT: Final = 2

S = TypeVar("S")  # what is carried over the bytes: the upload's hash and check
T = TypeVar("T")


@dataclass
class _Flight(Generic[S]):
    data: bytearray
    receipt: asyncio.Task[str]
    carried: asyncio.Task[S | None]  # the stream carried over this part (and those before it)


class PartStager(Generic[S]):
    """Fills parts from a request's bytes and stages them, `IN_FLIGHT` at a time, in order.

    `stage_part(number, data)` stores one part (blocking; run in a thread) and
    returns its receipt. `carry(stream, data)` gives the stream carried over
    `data` (blocking too). `settled(parts, stream)` is awaited after each part
    settles, in order (to record the offset); if it raises, nothing more
    settles and the error is raised by `drain`.
    """

    def __init__(
        self,
        part_size: int,
        parts: list[str],
        stream: S | None,
        stage_part: Callable[[int, bytearray], str],
        carry: Callable[[S | None, bytearray], S | None],
        settled: Callable[[list[str], S | None], Awaitable[None]] | None,
    ) -> None:
        self.part_size = part_size
        self.parts = parts  # receipts of the settled parts, in order
        self.stream = stream  # over the settled parts
        self._stage_part = stage_part
        self._carry = carry
        self._settled = settled
        self._flights: deque[_Flight[S]] = deque()
        self._free: list[bytearray] = []  # buffers of settled parts, to fill again
        self._buffer = bytearray(part_size)
        self._filled = 0
        self._last_carry: asyncio.Task[S | None] | None = None
        self._failure: BaseException | None = None
        self._unsettled: list[bytes | bytearray] = []  # bytes of parts that failed to settle

    async def feed(self, data: memoryview) -> None:
        """Take `data`: copy it into parts, staging each as it fills (waiting when `IN_FLIGHT`).

        Raises the first failure once it is known (a part the store refused, a
        failed `settled`); every byte of `data` is kept all the same. A failure
        of the last parts may only be known to `drain`.
        """
        while data:
            if self._failure is not None:  # the store failed: keep the rest as the tail
                self._unsettled.append(bytes(data))
                break
            n = min(len(data), self.part_size - self._filled)
            self._buffer[self._filled : self._filled + n] = data[:n]
            self._filled += n
            data = data[n:]
            if self._filled == self.part_size:
                if len(self._flights) >= IN_FLIGHT:
                    await self._settle_oldest()
                if self._failure is not None:
                    self._unsettled.append(bytes(self._buffer))
                else:
                    self._launch(self._buffer)
                # Buffers are reused, never left to the allocator: memory stays flat.
                self._buffer = self._free.pop() if self._free else bytearray(self.part_size)
                self._filled = 0
        if self._failure is not None:
            raise self._failure

    def _launch(self, data: bytearray) -> None:
        number = len(self.parts) + len(self._flights)
        receipt = asyncio.create_task(asyncio.to_thread(self._stage_part, number, data))
        previous, base = self._last_carry, self.stream

        async def carried() -> S | None:
            before = base if previous is None else await previous
            return await asyncio.to_thread(self._carry, before, data)

        task = asyncio.create_task(carried())
        self._last_carry = task
        self._flights.append(_Flight(data, receipt, task))

    async def _settle_oldest(self) -> None:
        flight = self._flights.popleft()
        try:
            receipt = await flight.receipt
            stream = await flight.carried
        except Exception as exc:
            self._flights.appendleft(flight)
            await self._abandon(exc)
            return
        self.parts.append(receipt)
        self.stream = stream
        self._free.append(flight.data)
        if self._settled is not None:
            try:
                await self._settled(self.parts, self.stream)
            except Exception as exc:
                await self._abandon(exc)

    async def _abandon(self, exc: Exception) -> None:
        """Stop staging: every part in flight, in order, is kept as tail instead."""
        self._failure = exc
        while self._flights:
            flight = self._flights.popleft()
            await _quietly(flight.receipt)
            await _quietly(flight.carried)
            self._unsettled.append(flight.data)
        self._last_carry = None

    async def drain(self) -> BaseException | None:
        """Settle every part in flight, in order; the first failure, if any (not raised)."""
        while self._flights:
            await self._settle_oldest()
        self._last_carry = None
        return self._failure

    def tail(self) -> bytes:
        """Every byte received and not in a settled part, in order. Call after `drain`."""
        return b"".join([*self._unsettled, self._buffer[: self._filled]])


async def _quietly(task: asyncio.Task[T]) -> None:
    """Wait for `task`; its failure does not matter (the part is kept as tail)."""
    with contextlib.suppress(Exception):
        await task
