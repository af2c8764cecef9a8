"""The connection pool serves waiting checkouts in order and never loses a connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import queue as sqla_queue

from chatr.db import create_engine
from chatr.fair_pool import FairAsyncQueuePool, FairQueue
from chatr.settings import Settings
from tests.support.cycles import collector_paused, cyclic_garbage, named


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The app's own engine, with a pool of two (twice the setting)."""
    engine = create_engine(settings.with_overrides(db_pool_size=1), serving=True)
    assert isinstance(engine.pool, FairAsyncQueuePool)
    yield engine
    await engine.dispose()


async def test_waiting_checkouts_get_connections_in_the_order_they_asked(
    engine: AsyncEngine,
) -> None:
    held = [await engine.connect(), await engine.connect()]
    served: list[int] = []

    async def checkout(number: int) -> None:
        async with engine.connect() as connection:
            served.append(number)
            await connection.execute(text("SELECT 1"))

    waiting = []
    for number in range(6):
        waiting.append(asyncio.create_task(checkout(number)))
        await asyncio.sleep(0)  # each asks (and queues) before the next
    for connection in held:
        await connection.close()
    await asyncio.gather(*waiting)
    assert served == list(range(6))


async def test_a_checkout_arriving_while_others_wait_cannot_take_a_returned_connection() -> None:
    """The starvation of SQLAlchemy's own queue: a connection returned to a waiter that has
    not resumed yet was taken by whoever asked next."""
    queue: FairQueue[str] = FairQueue(2)
    early = asyncio.create_task(queue._wait(None))
    await asyncio.sleep(0)  # waiting
    queue.put_nowait("connection")  # handed to `early`, which has not resumed yet
    with pytest.raises(sqla_queue.Empty):
        queue.get(block=False)  # a newcomer (the pool then waits its turn)
    assert await early == "connection"


async def test_a_checkout_that_times_out_leaves_the_line_and_the_pool_keeps_working(
    settings: Settings,
) -> None:
    engine = create_async_engine(
        settings.database_url,
        poolclass=FairAsyncQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0,
    )
    try:
        held = await engine.connect()
        with pytest.raises(sa_exc.TimeoutError):
            await engine.connect()
        await held.close()
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_checkout_waits_past_the_pool_timeout_while_the_database_keeps_answering(
    settings: Settings,
) -> None:
    engine = create_engine(settings.with_overrides(db_pool_size=1), serving=True)
    # (POOL_TIMEOUT, shorter)
    engine.pool._timeout = 0.5  # type: ignore[attr-defined]
    try:
        holder, other = await engine.connect(), await engine.connect()  # the pool of two

        async def checkout() -> AsyncConnection:
            return await engine.connect()

        waiting = asyncio.create_task(checkout())
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.5  # three pool timeouts of statements succeeding
        while loop.time() < until:
            assert not waiting.done()
            await holder.execute(text("SELECT 1"))
        await holder.close()
        connection = await waiting  # not TimeoutError: the database was busy, not gone
        await connection.close()
        await other.close()
    finally:
        await engine.dispose()


async def test_a_cancelled_checkout_passes_a_connection_it_was_handed_on() -> None:
    queue: FairQueue[str] = FairQueue(2)

    async def wait() -> str:
        return await queue._wait(None)

    first = asyncio.create_task(wait())
    second = asyncio.create_task(wait())
    await asyncio.sleep(0)
    queue.put_nowait("connection")  # handed to `first`
    first.cancel()  # ...which is cancelled before it resumes
    assert await second == "connection"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    queue: FairQueue[str] = FairQueue(2)
    waiting = asyncio.create_task(queue._wait(None))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    queue.put_nowait("connection")
    assert queue.get(block=False) == "connection"


async def test_a_waiter_whose_time_ran_out_gets_empty_and_nothing_is_lost() -> None:
    queue: FairQueue[str] = FairQueue(2)
    with pytest.raises(sqla_queue.Empty):
        await queue._wait(0)
    queue.put_nowait("connection")
    assert queue.get(block=False) == "connection"


async def test_a_checkout_that_waited_leaves_no_reference_cycle_behind() -> None:
    """Under load most checkouts wait. Each must be freed by reference counting: a cycle
    per waiter (its self-arming timeout, the handle, the future) left every one of them to
    the cyclic collector, which then walked them all."""
    queue: FairQueue[str] = FairQueue(2)
    with collector_paused():
        waiting = asyncio.create_task(queue._wait(5.0))
        await asyncio.sleep(0)
        queue.put_nowait("connection")
        assert await waiting == "connection"
        del waiting
        assert named(cyclic_garbage(), "FairQueue._wait") == []
