"""While Redis is down, presence answers SERVICE_UNAVAILABLE (coded, retryable), quickly."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from chatr.errors import ErrorCode, ServiceUnavailable
from chatr.infra import presence_store
from chatr.infra.presence_store import RedisPresenceStore, Status
from tests.support.redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisPresenceStore]:
    instance = RedisPresenceStore(redis_server.url, prefix=f"presence-{uuid.uuid4().hex[:8]}")
    yield instance
    await instance.close()


async def test_presence_during_an_outage_is_a_coded_retryable_error(
    redis_server: RedisServer, store: RedisPresenceStore
) -> None:
    await store.set_connection(1, "c1", Status.ONLINE, time.time() + 60)
    redis_server.kill()
    for call in (
        lambda: store.statuses([1]),
        lambda: store.set_connection(1, "c1", Status.AWAY, time.time() + 60),
        lambda: store.drop_connection(1, "c1"),
        lambda: store.lapsed_users(time.time()),
    ):
        with pytest.raises(ServiceUnavailable) as refused:
            await call()
        assert refused.value.code is ErrorCode.SERVICE_UNAVAILABLE
        assert refused.value.extensions["retryAfter"] == 1


async def test_after_a_failure_presence_fails_fast_without_asking_redis_again(
    redis_server: RedisServer, store: RedisPresenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_server.kill()
    with pytest.raises(ServiceUnavailable):
        await store.statuses([1])
    attempts = 0

    def counting_pipeline(*_: object, **__: object) -> object:
        nonlocal attempts
        attempts += 1
        raise AssertionError("Redis was asked again")

    monkeypatch.setattr(store._redis, "pipeline", counting_pipeline)
    for _ in range(20):
        with pytest.raises(ServiceUnavailable):
            await store.statuses([1])
    assert attempts == 0


async def test_presence_works_again_once_redis_is_back(
    redis_server: RedisServer, store: RedisPresenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence_store, "FAIL_FAST_SECONDS", 0.05)
    redis_server.kill()
    with pytest.raises(ServiceUnavailable):
        await store.statuses([1])
    await asyncio.to_thread(redis_server.restart)
    await asyncio.sleep(0.1)
    # the dataset is empty after the restart; heartbeats put connections back
    await store.set_connection(1, "c1", Status.ONLINE, time.time() + 60)
    assert await store.statuses([1]) == {1: Status.ONLINE}


async def test_a_hung_redis_costs_a_presence_read_at_most_the_socket_timeout(
    redis_server: RedisServer, store: RedisPresenceStore
) -> None:
    await store.statuses([1])
    redis_server.pause()
    try:
        async with asyncio.timeout(presence_store.REDIS_TIMEOUT_SECONDS * 4):
            with pytest.raises(ServiceUnavailable):
                await store.statuses([1])
    finally:
        redis_server.resume()
