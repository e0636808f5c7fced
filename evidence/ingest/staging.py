"""The bytes of one request on their way into the store: whole parts, a few at a time.

Bytes are copied once, into a part-sized buffer. Each full part is handed to
the store in a worker thread while the next one fills, up to `IN_FLIGHT`
parts at once, so reading from the device and writing to the store overlap.
Parts are settled strictly in order: a part counts (its receipt is kept, the
hash carried over it, and the offset recorded) once it and every part before
it are durable, as soon as they are, whether or not more bytes arrive (a
device that stalls, a server killed, keeps what is durable). If the store
fails, or the request ends early, every byte not in a settled part is handed
back as the upload's tail, to be kept in the database: nothing received is
lost, and the recorded offset counts only durable bytes.
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
    settling: asyncio.Task[None] | None = None  # settles it once the part before it settled


class PartStager(Generic[S]):
    """Fills parts from a request's bytes and stages them, `IN_FLIGHT` at a time, in order.

    `stage_part(number, data)` stores one part (blocking; run in a thread) and
    returns its receipt. `carry(stream, data)` gives the stream carried over
    `data` (blocking too). `settled(parts, stream)` is awaited as each part
    settles, in order, as soon as it is durable (to record the offset); if it
    raises, nothing more settles and the error is raised by `drain`.
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
        # Parts staged and not settled, oldest first; after a failure, the parts
        # that will never settle (their bytes go back as the tail).
        self._flights: deque[_Flight[S]] = deque()
        self._free: list[bytearray] = []  # buffers of settled parts, to fill again
        self._buffer = bytearray(part_size)
        self._filled = 0
        self._last_carry: asyncio.Task[S | None] | None = None
        self._failure: BaseException | None = None
        self._unsettled: list[bytes | bytearray] = []  # bytes received after a failure

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
                while len(self._flights) >= IN_FLIGHT and self._failure is None:
                    await self._wait_settling(self._flights[0])
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
        flight = _Flight(data, receipt, task)
        before = self._flights[-1].settling if self._flights else None
        flight.settling = asyncio.create_task(self._settle(flight, before))
        self._flights.append(flight)

    async def _settle(self, flight: _Flight[S], before: asyncio.Task[None] | None) -> None:
        """Settle `flight` as soon as it is durable and the part `before` it has settled.

        Never raises: a failure is kept for `feed` and `drain`, and this part
        and every later one stay unsettled.
        """
        if before is not None:
            await before
        if self._failure is None:
            try:
                receipt = await flight.receipt
                stream = await flight.carried
            except Exception as exc:
                self._fail(exc)
        if self._failure is not None:  # this part, or one before it, failed: it is tail
            await _quietly(flight.receipt)
            await _quietly(flight.carried)
            return
        self._flights.popleft()  # it is the oldest: parts settle in order
        self.parts.append(receipt)
        self.stream = stream
        self._free.append(flight.data)
        if self._settled is not None:
            try:
                await self._settled(self.parts, self.stream)
            except Exception as exc:
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self._failure is None:
            self._failure = exc

    async def _wait_settling(self, flight: _Flight[S]) -> None:
        assert flight.settling is not None  # set as it is launched
        await asyncio.shield(flight.settling)  # the request's end does not end the settling

    async def drain(self) -> BaseException | None:
        """Settle every part in flight, in order; the first failure, if any (not raised)."""
        if self._flights:
            await self._wait_settling(self._flights[-1])  # the last settles after all others
        self._last_carry = None
        return self._failure

    def tail(self) -> bytes:
        """Every byte received and not in a settled part, in order. Call after `drain`."""
        unsettled = [flight.data for flight in self._flights]
        return b"".join([*unsettled, *self._unsettled, self._buffer[: self._filled]])


async def _quietly(task: asyncio.Task[T]) -> None:
    """Wait for `task`; its failure does not matter (the part is kept as tail)."""
    with contextlib.suppress(Exception):
        await task
