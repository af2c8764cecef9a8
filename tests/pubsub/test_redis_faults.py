"""The Broker against a private redis-server that is killed, hung and restarted mid-stream.

Each test runs its own server (tests/support/redis_server.py) on a free port: the shared Redis
on 6379 is never touched. Two Brokers on one server stand for two app instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from chatr.pubsub.broker import RESYNC, Broker, BrokerUnavailable, Message
from chatr.pubsub.redis_transport import RedisTransport
from tests.support.redis_server import RedisServer

from .helpers import WAIT, next_item, server_channels, unique_prefix, wait_until

SOCKET_TIMEOUT = 0.25  # publish attempts give up after this (production default: 1 s)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def instances(redis_server: RedisServer, prefix: str) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two app instances' brokers on the private server, reconnecting quickly."""
    brokers = [
        Broker(
            RedisTransport(
                redis_server.url, socket_timeout=SOCKET_TIMEOUT, connect_timeout=SOCKET_TIMEOUT
            ),
            prefix=prefix,
            backoff_initial=0.01,
            backoff_max=0.1,
            command_timeout=0.5,
            health_check_interval=0.2,
        )
        for _ in range(2)
    ]
    for broker in brokers:
        await broker.start()
    try:
        await wait_until(lambda: all(broker.ready for broker in brokers), what="brokers ready")
        yield brokers[0], brokers[1]
    finally:
        for broker in brokers:
            await broker.stop()


async def test_subscriber_gets_resync_then_live_messages_after_redis_is_killed_mid_stream(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    # given: instance B streams numbered messages to a subscriber on instance A
    a, b = instances
    streaming = True

    async def stream() -> None:
        number = 0
        while streaming:
            with contextlib.suppress(BrokerUnavailable):  # while Redis is down
                await b.publish("conversation:1", str(number))
            number += 1
            await asyncio.sleep(0.002)

    async with a.subscribe("conversation:1") as sub:
        publisher = asyncio.create_task(stream())
        try:
            received = [await next_item(sub) for _ in range(5)]

            # when: Redis is SIGKILLed mid-stream and restarted on the same port
            redis_server.kill()
            await wait_until(lambda: not a.ready, what="A to notice the crash")
            with pytest.raises(BrokerUnavailable):
                await b.publish("conversation:1", "lost: Redis is down")
            await asyncio.to_thread(redis_server.restart)

            while (item := await next_item(sub)) is not RESYNC:
                received.append(item)
            after = [await next_item(sub) for _ in range(5)]
        finally:
            streaming = False
            await publisher

    # then: what came before the crash, one RESYNC, then live messages published after it
    assert a.ready
    assert a.metrics()["reconnects"] == 1
    before_numbers = [int(m.data) for m in received if isinstance(m, Message)]
    after_numbers = [int(m.data) for m in after if isinstance(m, Message)]
    assert len(before_numbers) == len(received) >= 5
    assert len(after_numbers) == 5
    assert before_numbers == sorted(before_numbers)
    assert after_numbers == sorted(after_numbers)
    assert after_numbers[0] > before_numbers[-1]


async def test_ready_is_false_while_redis_is_down_and_true_after_restart(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    a, _ = instances
    assert a.ready

    redis_server.kill()
    await wait_until(lambda: not a.ready, what="not ready while Redis is down")
    await asyncio.to_thread(redis_server.restart)

    await wait_until(lambda: a.ready, what="ready after restart")


async def test_every_channel_with_local_subscribers_is_resubscribed_after_restart(
    redis_server: RedisServer, instances: tuple[Broker, Broker], prefix: str
) -> None:
    a, b = instances
    async with a.subscriber() as sub, a.subscribe("conversation:2"):
        await sub.add("user:1")
        await sub.add("conversation:1")
        sub.remove("conversation:1")

        redis_server.kill()
        await wait_until(lambda: not a.ready)
        await asyncio.to_thread(redis_server.restart)
        assert await next_item(sub) is RESYNC

        assert await server_channels(redis_server.url, prefix) == {"user:1", "conversation:2"}
        await b.publish("user:1", "hello")
        assert await next_item(sub) == Message("user:1", "hello")


async def test_killed_subscription_connection_is_reestablished_with_resync(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    a, b = instances
    async with a.subscribe("conversation:1") as sub:
        # when: the server drops A's pub/sub connection (Redis stays up)
        async with Redis.from_url(redis_server.url) as admin:
            assert await admin.client_kill_filter(_type="pubsub") >= 1

        # then
        assert await next_item(sub) is RESYNC
        await b.publish("conversation:1", "after")
        assert await next_item(sub) == Message("conversation:1", "after")


async def test_hung_redis_is_detected_by_the_health_check(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    a, _ = instances
    async with a.subscribe("conversation:1") as sub:
        redis_server.pause()  # connections stay open; nothing answers
        try:
            await wait_until(lambda: not a.ready, what="the PING health check to fail")
        finally:
            redis_server.resume()

        await wait_until(lambda: a.ready)
        assert await next_item(sub) is RESYNC


async def test_publish_while_redis_is_down_fails_fast_with_broker_unavailable(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    _, b = instances
    redis_server.kill()

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="conversation:1"):
        await b.publish("conversation:1", "nobody home")

    assert time.monotonic() - started < 1.0
    assert b.metrics()["publish_failures"] == 1
    assert b.metrics()["publish_retries"] == 1


async def test_publish_to_a_hung_redis_gives_up_after_its_socket_timeouts(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    _, b = instances
    await b.publish("conversation:1", "warm the pool")
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await b.publish("conversation:1", "stuck")
        elapsed = time.monotonic() - started
    finally:
        redis_server.resume()

    # one attempt and one retry, each bounded by the socket timeout
    assert 2 * SOCKET_TIMEOUT <= elapsed < 4 * SOCKET_TIMEOUT + 0.5


async def test_publish_after_restart_recovers_from_stale_pooled_connections(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    _, b = instances
    await b.publish("conversation:1", "pooled connection now open")

    redis_server.kill()
    await asyncio.to_thread(redis_server.restart)

    await b.publish("conversation:1", "after restart")  # no BrokerUnavailable
    assert b.metrics()["publish_failures"] == 0


async def test_add_during_an_outage_returns_once_the_channel_is_live_again(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    a, b = instances
    redis_server.kill()
    await wait_until(lambda: not a.ready)

    async with a.subscriber() as sub:
        adding = asyncio.create_task(sub.add("conversation:1"))
        await asyncio.sleep(0.05)  # a few reconnect attempts; add() must still be waiting
        assert not adding.done()

        await asyncio.to_thread(redis_server.restart)
        async with asyncio.timeout(WAIT):
            await adding
        await b.publish("conversation:1", "live")
        items = [await next_item(sub), await next_item(sub)]

    assert items == [RESYNC, Message("conversation:1", "live")]


async def test_cancelling_add_while_redis_hangs_leaves_no_subscription_behind(
    redis_server: RedisServer, instances: tuple[Broker, Broker], prefix: str
) -> None:
    # given: Redis hangs, so the SUBSCRIBE for a new channel is never acknowledged
    a, b = instances
    redis_server.pause()
    try:

        async def client() -> None:
            async with a.subscribe("conversation:1") as sub:
                async for _ in sub:
                    pass

        task = asyncio.create_task(client())
        await wait_until(lambda: a.metrics()["channels"] == 1, what="client inside add()")

        # when: the client goes away mid-setup
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(1):
                await task

        # then: it ended promptly and left no reference
        assert time.monotonic() - started < 0.5
        assert a.metrics()["channels"] == 0
    finally:
        redis_server.resume()

    # and once Redis answers, the owner converges to no subscription at all
    await wait_until(lambda: a.ready and a.metrics()["live_channels"] == 0)
    await wait_until(lambda: _no_server_channels(redis_server.url, prefix))
    async with a.subscribe("conversation:1") as sub:
        await b.publish("conversation:1", "still works")
        assert await next_item(sub) == Message("conversation:1", "still works")


async def _no_server_channels(url: str, prefix: str) -> bool:
    return await server_channels(url, prefix) == set()


async def test_stop_during_an_outage_ends_subscribers_and_pending_adds(
    redis_server: RedisServer, instances: tuple[Broker, Broker]
) -> None:
    a, _ = instances
    async with a.subscribe("conversation:1") as live, a.subscriber() as waiting:
        redis_server.kill()
        await wait_until(lambda: not a.ready)
        adding = asyncio.create_task(waiting.add("conversation:2"))
        await asyncio.sleep(0)

        async with asyncio.timeout(WAIT):
            await a.stop()
            await adding  # returns rather than waiting for a Redis that will not come back

            assert [item async for item in live] == []
            assert [item async for item in waiting] == []


def test_private_redis_server_refuses_the_shared_port() -> None:
    with pytest.raises(ValueError, match="shared Redis"):
        RedisServer(port=6379)
