"""evidence.batching: many callers' work gathered into few calls in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from evidence.batching import Batcher
from evidence.errors import EvidenceError


class Gate:
    """A `run` for a Batcher that records its batches and can be held shut."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.open = threading.Event()
        self.open.set()
        self.running = threading.Semaphore(0)  # released once per batch started
        self.threads: set[str] = set()

    def __call__(self, args: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(args))
        self.threads.add(threading.current_thread().name)
        self.running.release()
        assert self.open.wait(10)
        return [ValueError(f"odd {a}") if a % 2 else a * 10 for a in args]


async def started(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.running.acquire, True, 10)


async def test_calls_made_while_a_batch_runs_go_together_in_the_next() -> None:
    gate = Gate()
    batcher: Batcher[int, int] = Batcher(gate, concurrency=1)
    gate.open.clear()
    first = asyncio.ensure_future(batcher(0))
    await started(gate)  # the first call runs alone, held
    rest = [asyncio.ensure_future(batcher(n)) for n in range(2, 12, 2)]
    await asyncio.sleep(0)
    gate.open.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [20, 40, 60, 80, 100]
    assert gate.batches == [[0], [2, 4, 6, 8, 10]]
    assert "MainThread" not in gate.threads


async def test_each_caller_gets_its_own_outcome_and_errors_stay_with_theirs() -> None:
    batcher: Batcher[int, int] = Batcher(Gate())
    outcomes = await asyncio.gather(*(batcher(n) for n in range(6)), return_exceptions=True)
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        0,
        "odd 1",
        20,
        "odd 3",
        40,
        "odd 5",
    ]


async def test_a_failing_run_fails_every_caller_of_its_batch_and_the_next_batch_runs() -> None:
    calls: list[list[int]] = []

    def run(args: Sequence[int]) -> list[int | Exception]:
        calls.append(list(args))
        if len(calls) == 1:
            raise EvidenceError("the database is down")
        return list(args)

    batcher: Batcher[int, int] = Batcher(run)
    outcomes = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["the database is down"] * 2
    assert await batcher(3) == 3


async def test_a_run_that_answers_the_wrong_number_of_outcomes_fails_the_batch() -> None:
    batcher: Batcher[int, int] = Batcher(lambda args: [1])
    outcomes = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    assert all("gave 1 outcomes" in str(o) for o in outcomes)


async def test_batches_are_at_most_max_batch_and_at_most_concurrency_run_at_once() -> None:
    gate = Gate()
    gate.open.clear()
    batcher: Batcher[int, int] = Batcher(gate, max_batch=3, concurrency=2)
    calls = [asyncio.ensure_future(batcher(n * 2)) for n in range(10)]
    await started(gate)
    await started(gate)
    assert len(gate.batches) == 2  # two held; the third waits for one of them
    gate.open.set()
    assert await asyncio.gather(*calls) == [n * 20 for n in range(10)]
    assert all(len(batch) <= 3 for batch in gate.batches)
    assert sorted(a for batch in gate.batches for a in batch) == [n * 2 for n in range(10)]


async def test_close_finishes_what_was_taken_then_refuses() -> None:
    gate = Gate()
    gate.open.clear()
    batcher: Batcher[int, int] = Batcher(gate)
    taken = asyncio.ensure_future(batcher(4))
    await started(gate)
    closing = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0)
    assert not closing.done()
    gate.open.set()
    await closing
    assert await taken == 40
    with pytest.raises(EvidenceError, match="closed"):
        await batcher(2)


async def test_a_cancelled_caller_stops_waiting_and_the_others_are_answered() -> None:
    gate = Gate()
    gate.open.clear()
    batcher: Batcher[int, int] = Batcher(gate, concurrency=1)
    held = asyncio.ensure_future(batcher(0))
    await started(gate)
    leaving, staying = asyncio.ensure_future(batcher(2)), asyncio.ensure_future(batcher(4))
    await asyncio.sleep(0)
    leaving.cancel()
    gate.open.set()
    assert await held == 0
    assert await staying == 40
    assert leaving.cancelled()


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Gate(), max_batch=0)
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Gate(), concurrency=0)
