"""Calls from many requests gathered into one call in a worker thread.

A small item costs the server little Python, but each `asyncio.to_thread` is a
hand-over of the GIL between threads, and with a hundred devices at once those
hand-overs (futex waits, context switches) cost more than the work: the kernel
took half the server's CPU. A `Batcher` makes one hand-over serve every call
that arrived meanwhile: the first caller starts a drain, which runs
``run(args)`` in a worker thread for everything pending (at most `max_batch`),
then again for whatever arrived while it ran, until nothing is pending. Up to
`concurrency` drains run at once, so one batch's blocking I/O (an fsync)
overlaps the next batch's work.

``run`` returns one outcome per argument, in order: a result, or the exception
that call raises. An exception raised by ``run`` itself is raised to every
caller of that batch. A caller that is cancelled stops waiting; its call still
runs (as a thread started by `asyncio.to_thread` would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from evidence.errors import EvidenceError

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class _Call(Generic[A, R]):
    arg: A
    future: asyncio.Future[R]


class Batcher(Generic[A, R]):
    def __init__(
        self,
        run: Callable[[Sequence[A]], Sequence[R | Exception]],
        *,
        max_batch: int = 256,
        concurrency: int = 2,
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._pending: list[_Call[A, R]] = []
        self._drains: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __call__(self, arg: A) -> R:
        if self._closed:
            raise EvidenceError("closed: no more calls are taken")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(arg, future))
        if len(self._drains) < self._concurrency:
            drain = asyncio.create_task(self._drain())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await future

    async def close(self) -> None:
        """Take no more calls; finish those already taken."""
        self._closed = True
        while self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                outcomes: Sequence[R | Exception] = await asyncio.to_thread(
                    self._run, [call.arg for call in batch]
                )
                if len(outcomes) != len(batch):
                    raise EvidenceError(
                        f"a batch of {len(batch)} calls gave {len(outcomes)} outcomes"
                    )
            except asyncio.CancelledError:
                for call in batch:
                    if not call.future.done():
                        call.future.cancel()
                raise
            except Exception as exc:  # every caller of the batch learns why
                outcomes = [exc] * len(batch)
            for call, outcome in zip(batch, outcomes, strict=True):
                if call.future.done():  # its caller was cancelled
                    continue
                if isinstance(outcome, Exception):
                    call.future.set_exception(outcome)
                else:
                    call.future.set_result(outcome)
