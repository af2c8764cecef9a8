"""While Redis is down, rate limits are counted per instance instead of failing every request."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis

from chatr.errors import RateLimited
from chatr.infra import rate_limits
from chatr.infra.rate_limits import RateLimiter
from chatr.pubsub.redis_transport import RedisTransport
from chatr.redis_lane import RedisCommands
from chatr.supervision import Supervisor
from tests.support.redis_server import RedisServer

#: A tight limit so a handful of calls shows whether it is enforced.
THREE_PER_MINUTE = {rate_limits.LOGIN.name: "3 per minute"}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def _limiter(
    redis_server: RedisServer, supervisor: Supervisor, commands: RedisCommands | None = None
) -> RateLimiter:
    limiter = RateLimiter(
        broker_url=redis_server.url,
        key_prefix=f"limits-test-{uuid.uuid4().hex[:8]}",
        overrides=THREE_PER_MINUTE,
        probe_interval=0.05,
        commands=commands,
    )
    await limiter.start(supervisor)
    return limiter


async def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


class CountingCalls:
    """Counts calls of one async method of an object (the limiter's shared hit)."""

    def __init__(self, target: object, name: str) -> None:
        self.calls = 0
        original: Callable[..., Awaitable[object]] = getattr(target, name)

        async def counted(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return await original(*args, **kwargs)

        setattr(target, name, counted)


async def test_a_hit_while_redis_is_down_is_counted_in_memory_instead_of_failing(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    # given a limiter on a Redis that then dies
    limiter = await _limiter(redis_server, supervisor)
    try:
        await limiter.hit(rate_limits.LOGIN, "10.0.0.1")
        redis_server.kill()
        # when attempts keep coming
        for _ in range(3):
            await limiter.hit(rate_limits.LOGIN, "10.0.0.2")
        # then they are counted here, and the limit still holds
        with pytest.raises(RateLimited) as refused:
            await limiter.hit(rate_limits.LOGIN, "10.0.0.2")
        retry_after = refused.value.extensions["retryAfter"]
        assert isinstance(retry_after, int) and retry_after >= 1
        await limiter.check(rate_limits.LOGIN, "10.0.0.3")
        assert limiter.metrics()["counting_locally"] == 1
        assert limiter.metrics()["outages"] == 1
        assert limiter.metrics()["local_hits"] >= 4
    finally:
        await limiter.close()


async def test_the_fallback_shows_on_the_supervised_task_and_clears_when_redis_returns(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    limiter = await _limiter(redis_server, supervisor)
    try:
        record = supervisor.get("rate-limits")
        assert record is not None and record.degraded_reason is None
        redis_server.kill()
        await limiter.hit(rate_limits.LOGIN, "10.0.0.1")
        assert record.degraded_reason is not None and "Redis" in record.degraded_reason
        # not critical: limits counted per instance still protect it, so it stays ready
        assert supervisor.healthy
        # when Redis comes back
        await asyncio.to_thread(redis_server.restart)
        # then the probe notices and counting is shared again
        await _eventually(lambda: limiter.metrics()["counting_locally"] == 0)
        assert record.degraded_reason is None
        shared = CountingCalls(limiter, "_acquire_shared")
        await limiter.hit(rate_limits.LOGIN, "10.0.0.1")
        assert shared.calls == 1
    finally:
        await limiter.close()


async def test_an_outage_is_logged_once_not_on_every_call(
    redis_server: RedisServer, supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = await _limiter(redis_server, supervisor)
    try:
        redis_server.kill()
        with caplog.at_level(logging.WARNING, logger="chatr.rate_limits"):
            for n in range(20):
                await limiter.hit(rate_limits.LOGIN, f"10.0.1.{n}")
        warnings = [r for r in caplog.records if r.name == "chatr.rate_limits"]
        assert len(warnings) == 1
        assert "per instance" in warnings[0].getMessage()
    finally:
        await limiter.close()


async def test_during_an_outage_redis_is_not_asked_on_every_call(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    limiter = await _limiter(redis_server, supervisor)
    try:
        redis_server.kill()
        await limiter.hit(rate_limits.LOGIN, "10.0.2.0")  # finds out
        shared = CountingCalls(limiter, "_acquire_shared")
        for n in range(1, 50):
            await limiter.hit(rate_limits.LOGIN, f"10.0.2.{n}")
        assert shared.calls == 0
    finally:
        await limiter.close()


async def test_a_hit_on_a_healthy_redis_is_one_round_trip(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    limiter = await _limiter(redis_server, supervisor)
    try:
        shared = CountingCalls(limiter, "_acquire_shared")
        for _ in range(3):
            await limiter.hit(rate_limits.LOGIN, "10.0.3.1")
        assert shared.calls == 3
        assert limiter.metrics() == {"counting_locally": 0, "outages": 0, "local_hits": 0}
    finally:
        await limiter.close()


async def test_a_hung_redis_costs_a_request_at_most_the_socket_timeout(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    # given a Redis that stops answering (SIGSTOP) but keeps its connections open
    limiter = await _limiter(redis_server, supervisor)
    try:
        await limiter.hit(rate_limits.LOGIN, "10.0.4.1")
        redis_server.pause()
        # when a request needs a decision, it gets one (from memory) instead of hanging
        async with asyncio.timeout(rate_limits.REDIS_TIMEOUT_SECONDS * 4):
            await limiter.hit(rate_limits.LOGIN, "10.0.4.1")
        assert limiter.metrics()["counting_locally"] == 1
    finally:
        redis_server.resume()
        await limiter.close()


async def test_concurrent_hits_share_round_trips_and_count_exactly_as_limits_reads_them(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    # given a limit of three per minute, hit through a lane whose round trips are counted
    commands = RedisCommands.from_url(redis_server.url)
    limiter = await _limiter(redis_server, supervisor, commands)
    try:
        # when ten attempts from one address arrive at once
        outcomes = await asyncio.gather(
            *(limiter.hit(rate_limits.LOGIN, "10.0.5.1") for _ in range(10)),
            return_exceptions=True,
        )
        # then exactly three pass, in a round trip or two, and limits' own reading of the
        # window (check, the refusal's retryAfter) sees all three
        assert outcomes.count(None) == 3
        refused = [o for o in outcomes if isinstance(o, RateLimited)]
        assert len(refused) == 7
        assert all(int(str(r.extensions["retryAfter"])) >= 1 for r in refused)
        assert 1 <= commands.round_trips <= 2
        with pytest.raises(RateLimited):
            await limiter.check(rate_limits.LOGIN, "10.0.5.1")
        await limiter.check(rate_limits.LOGIN, "10.0.5.2")  # another address: untouched
        assert limiter.metrics() == {"counting_locally": 0, "outages": 0, "local_hits": 0}
    finally:
        await limiter.close()
        await commands.aclose()


async def test_a_hit_and_a_publish_made_together_share_one_round_trip(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    # given a limiter and a broker transport on the instance's one lane to Redis (as the app
    # builds them), and a subscriber
    commands = RedisCommands.from_url(redis_server.url)
    limiter = await _limiter(redis_server, supervisor, commands)
    transport = RedisTransport(redis_server.url, commands=commands)
    listener = Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = listener.pubsub()
    try:
        await pubsub.subscribe("shared-lane-test")
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        # when a send's hit and another send's PUBLISH are made at the same time
        await asyncio.gather(
            limiter.hit(rate_limits.LOGIN, "10.0.9.1"),
            transport.publish("shared-lane-test", "hello"),
        )
        # then both took effect, in one round trip
        message = await pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == "hello"
        assert (commands.round_trips, commands.commands) == (1, 2)
        assert limiter.metrics()["local_hits"] == 0  # (the hit was counted in Redis)
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await transport.aclose()
        await limiter.close()
        await commands.aclose()


async def test_a_redis_that_lost_the_script_is_given_it_again(
    redis_server: RedisServer, supervisor: Supervisor
) -> None:
    limiter = await _limiter(redis_server, supervisor)
    try:
        await limiter.hit(rate_limits.LOGIN, "10.0.6.1")
        await limiter._redis.script_flush()
        # both a lone hit and a pipelined batch load it again, and count
        await limiter.hit(rate_limits.LOGIN, "10.0.6.1")
        await limiter._redis.script_flush()
        await asyncio.gather(*(limiter.hit(rate_limits.LOGIN, f"10.0.6.{n}") for n in (1, 2)))
        with pytest.raises(RateLimited):  # the fourth of three
            await limiter.hit(rate_limits.LOGIN, "10.0.6.1")
        assert limiter.metrics()["local_hits"] == 0
    finally:
        await limiter.close()
