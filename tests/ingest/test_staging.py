"""PartStager: parts staged a few at a time, settled in order, nothing received ever lost."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from evidence.errors import Conflict, StorageUnavailable
from evidence.ingest.staging import IN_FLIGHT, PartStager

PART = 64
STALL_DEADLINE_SECONDS = 30  # a bound, not a measure: parts settle within milliseconds


# A bound for a broken stager that never runs two parts at once, not a timing:
# with a working one, the first part waits only until the second starts.
OVERLAP_WAIT_SECONDS = 30


class FakeStore:
    """Stores parts in memory; fails the parts it is told to.

    With `overlap`, the first part is held until a second part is being
    staged beside it (an event, not a sleep), so that parts surely overlap.
    """

    def __init__(self, fail: set[int] | None = None, *, overlap: bool = False) -> None:
        self.parts: dict[int, bytes] = {}
        self.fail = fail or set()
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()
        self._overlapped = threading.Event()
        if not overlap:
            self._overlapped.set()

    def stage_part(self, number: int, data: bytearray) -> str:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            if self.running > 1:
                self._overlapped.set()
        try:
            self._overlapped.wait(OVERLAP_WAIT_SECONDS)
            if number in self.fail:
                raise StorageUnavailable(f"part {number} could not be stored")
            self.parts[number] = bytes(data)
            return f"receipt-{number}"
        finally:
            with self._lock:
                self.running -= 1


def carry(stream: bytes | None, data: bytearray) -> bytes | None:
    """The 'stream' here is simply every byte carried so far."""
    return None if stream is None else stream + bytes(data)


def stager(store: FakeStore, recorded: list[int] | None = None) -> PartStager[bytes]:
    async def settled(parts: list[str], stream: bytes | None) -> None:
        assert stream is not None
        assert len(stream) == len(parts) * PART  # the stream covers the settled parts exactly
        if recorded is not None:
            recorded.append(len(parts))

    return PartStager(PART, [], b"", store.stage_part, carry, settled)


def chunks(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 7, PART - 1, PART, PART + 1, 3 * PART + 5])
        out.append(data[i : i + n])
        i += n
    return out


@pytest.mark.parametrize("seed", range(5))
async def test_parts_settle_in_order_and_the_rest_is_the_tail(seed: int) -> None:
    data = random.Random(seed).randbytes(10 * PART + 17)
    store, recorded = FakeStore(overlap=True), []
    staging = stager(store, recorded)
    for chunk in chunks(data, seed):
        await staging.feed(memoryview(chunk))
    assert await staging.drain() is None
    assert staging.parts == [f"receipt-{n}" for n in range(10)]
    assert recorded == list(range(1, 11))  # each settled part recorded, in order
    assert b"".join(store.parts[n] for n in range(10)) == data[: 10 * PART]
    assert staging.stream == data[: 10 * PART]
    assert staging.tail() == data[10 * PART :]
    assert 1 < store.most_at_once <= IN_FLIGHT


@pytest.mark.parametrize("failing", [0, 3, 9])
async def test_a_part_the_store_fails_keeps_it_and_everything_after_as_tail(failing: int) -> None:
    data = random.Random(failing).randbytes(10 * PART + 17)
    store = FakeStore(fail={failing})
    staging = stager(store)
    fed = 0
    for chunk in chunks(data, failing):
        fed += len(chunk)
        try:
            await staging.feed(memoryview(chunk))
        except StorageUnavailable:
            break  # as the caller does: the body is not read further
    failure = await staging.drain()
    assert isinstance(failure, StorageUnavailable)
    assert staging.parts == [f"receipt-{n}" for n in range(failing)]
    assert staging.stream == data[: failing * PART]
    settled = len(staging.parts) * PART
    assert settled + len(staging.tail()) == fed
    assert data[:settled] + staging.tail() == data[:fed]  # in order, nothing lost


async def test_a_request_that_ends_early_settles_every_part_in_flight() -> None:
    data = random.Random(7).randbytes(3 * PART + 10)
    store = FakeStore()
    staging = stager(store)
    await staging.feed(memoryview(data))  # then the device's connection drops
    assert await staging.drain() is None
    assert staging.parts == ["receipt-0", "receipt-1", "receipt-2"]
    assert staging.tail() == data[3 * PART :]


async def test_when_recording_fails_nothing_more_settles() -> None:
    data = random.Random(8).randbytes(5 * PART)
    store = FakeStore()

    async def taken_over(parts: list[str], stream: bytes | None) -> None:
        if len(parts) == 2:
            raise Conflict("another request took over")

    staging = PartStager(PART, [], b"", store.stage_part, carry, taken_over)
    with pytest.raises(Conflict):
        await staging.feed(memoryview(data))
    assert isinstance(await staging.drain(), Conflict)
    assert len(staging.parts) == 2
    assert data[: len(staging.parts) * PART] + staging.tail() == data


async def test_without_recording_parts_still_settle_for_the_caller_to_record_at_the_end() -> None:
    data = random.Random(9).randbytes(4 * PART + 3)
    staging: PartStager[bytes] = PartStager(PART, [], None, FakeStore().stage_part, carry, None)
    await staging.feed(memoryview(data))
    assert await staging.drain() is None
    assert staging.parts == [f"receipt-{n}" for n in range(4)]
    assert staging.stream is None  # a lost stream stays lost
    assert staging.tail() == data[4 * PART :]


async def test_a_part_settles_as_soon_as_it_is_durable_while_the_request_waits() -> None:
    """No more bytes, no drain: the parts already staged are recorded all the same."""
    data = random.Random(10).randbytes(2 * PART + 5)
    store, recorded = FakeStore(), []
    both = asyncio.Event()

    async def settled(parts: list[str], stream: bytes | None) -> None:
        recorded.append(len(parts))
        if len(parts) == 2:
            both.set()

    staging = PartStager(PART, [], b"", store.stage_part, carry, settled)
    await staging.feed(memoryview(data))  # then the device stalls, connection open
    await asyncio.wait_for(both.wait(), timeout=STALL_DEADLINE_SECONDS)
    assert recorded == [1, 2]
    assert staging.parts == ["receipt-0", "receipt-1"]
    assert await staging.drain() is None
    assert staging.tail() == data[2 * PART :]
