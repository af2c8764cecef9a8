"""`chatr.aio.Batcher`: calls made while a round trip is in flight share the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chatr.aio import Batcher


class Recorder:
    """A `run` that records each batch and holds it until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def run(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.release.wait()
        return [ValueError(item) if item < 0 else item * 10 for item in items]


async def test_calls_made_while_a_batch_is_in_flight_go_together_in_the_next() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first batch is on its way
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_each_caller_gets_its_own_result_or_error_and_a_failed_batch_fails_all() -> None:
    recorder = Recorder()
    recorder.release.set()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    results = await asyncio.gather(
        batcher.submit(1), batcher.submit(-2), batcher.submit(3), return_exceptions=True
    )
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError)

    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("down")

    failing: Batcher[int, int] = Batcher(broken)
    outcomes = await asyncio.gather(failing.submit(1), failing.submit(2), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    # and the next call starts a new batch
    with pytest.raises(ConnectionError):
        await failing.submit(3)


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    gone = asyncio.create_task(batcher.submit(1))
    stays = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.release.set()
    assert await stays == 20
    assert gone.cancelled()


async def test_aclose_fails_what_is_waiting_and_a_later_call_starts_afresh() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    waiting = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await batcher.aclose()
    with pytest.raises(ConnectionError):
        await waiting
    recorder.release.set()
    assert await batcher.submit(2) == 20


async def test_a_failed_round_trip_also_fails_the_calls_waiting_for_the_next() -> None:
    # given a round trip that hangs and then fails (a hung server's timeout)
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def hangs(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        await release.wait()
        raise ConnectionError("timed out")

    batcher: Batcher[int, int] = Batcher(hangs)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    waiting = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    release.set()
    # then the call waiting meanwhile fails with it instead of waiting as long again
    for task in (first, waiting):
        with pytest.raises(ConnectionError):
            await task
    assert batches == [[1]]
