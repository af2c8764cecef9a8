"""Waiting helpers for the pub/sub tests: wait on conditions with deadlines, never bare sleeps."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from chatr.pubsub.broker import Message, Resync, Subscriber

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT = 5.0  # generous deadline; a passing test never gets close to it


def unique_prefix() -> str:
    """A channel prefix no other test (or test run) on the shared Redis uses."""
    return f"test-pubsub-{uuid.uuid4().hex[:12]}"


async def next_item(sub: Subscriber, within: float = WAIT) -> Message | Resync:
    async with asyncio.timeout(within):
        return await anext(sub)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], within: float = WAIT, what: str = ""
) -> None:
    """Poll `condition` (sync or async) until it holds; fail after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                outcome = condition()
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                if outcome:
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {within}s waiting for {what or condition}") from None


async def server_channels(url: str, prefix: str) -> set[str]:
    """Logical names of the channels Redis itself has subscribers for, under `prefix`."""
    async with Redis.from_url(url, decode_responses=True) as client:
        names = await client.pubsub_channels(f"{prefix}:*")
    return {name.removeprefix(f"{prefix}:") for name in names}


async def server_subscriber_count(url: str, prefix: str, channel: str) -> int:
    """How many connections Redis has subscribed to `channel` (PUBSUB NUMSUB)."""
    async with Redis.from_url(url, decode_responses=True) as client:
        [(_, count)] = await client.pubsub_numsub(f"{prefix}:{channel}")
    return int(count)
