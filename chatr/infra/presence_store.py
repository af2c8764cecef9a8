"""Where live connections are counted, shared by every instance: Redis, or memory when embedded.

A user is online while at least one of their connections, on any instance, is alive. Each
connection is a member of its user's sorted set, scored by when it expires; instances refresh
their connections' expiry by heartbeat, so a crashed instance's connections simply lapse. A
global sorted set holds each user's latest expiry so a sweeper can find users whose last
connection lapsed and announce them offline exactly once.

Every change runs as one Lua script, so the status before and after it is computed atomically:
of several instances racing to record the same transition, exactly one sees it happen and
announces it.

While Redis is unreachable, presence is unknown: calls answer SERVICE_UNAVAILABLE (a coded,
retryable error) instead of an internal one, within `REDIS_TIMEOUT_SECONDS` even when Redis
hangs, and for `FAIL_FAST_SECONDS` after a failure without trying Redis again, so a page
full of avatars costs an outage one connection attempt, not one per user. Heartbeats retry
on their own schedule and restore every live connection once Redis is back.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chatr.errors import ServiceUnavailable

T = TypeVar("T")

#: How long one presence call may wait on Redis (a hung Redis must not hang queries).
REDIS_TIMEOUT_SECONDS = 1.0
#: After Redis failed, calls fail at once for this long instead of trying it again.
FAIL_FAST_SECONDS = 1.0


class Status(enum.StrEnum):
    ONLINE = "ONLINE"
    AWAY = "AWAY"
    OFFLINE = "OFFLINE"


@dataclass(frozen=True)
class Transition:
    user_id: int
    before: Status
    after: Status

    @property
    def changed(self) -> bool:
        return self.before is not self.after


def _aggregate(states: Sequence[str]) -> Status:
    if not states:
        return Status.OFFLINE
    return Status.ONLINE if Status.ONLINE in states else Status.AWAY


class PresenceStore(Protocol):
    async def set_connection(
        self, user_id: int, connection_id: str, state: Status, expires_at: float
    ) -> Transition:
        """Record or refresh a live connection (state ONLINE or AWAY)."""
        ...

    async def drop_connection(self, user_id: int, connection_id: str) -> Transition: ...

    async def statuses(self, user_ids: Sequence[int]) -> dict[int, Status]: ...

    async def lapsed_users(self, now: float) -> list[int]:
        """Users whose every connection has expired but who were not yet marked offline."""
        ...

    async def sweep(self, user_id: int) -> Transition:
        """Forget a user's expired connections; the transition says if that took them offline."""
        ...

    async def close(self) -> None: ...


# KEYS: 1 the user's connections (zset, score = expiry), 2 their states (hash), 3 every
# user's latest expiry (zset). ARGV: 1 now, 2 user id, 3 op ("set"/"drop"/"sweep"),
# 4 connection id, 5 state, 6 expiry. Returns {before, after}.
_CHANGE = """
local function status(key_conns, key_states, min_score)
  local ids = redis.call('ZRANGEBYSCORE', key_conns, min_score, '+inf')
  if #ids == 0 then return 'OFFLINE' end
  local states = redis.call('HMGET', key_states, unpack(ids))
  for _, s in ipairs(states) do if s == 'ONLINE' then return 'ONLINE' end end
  return 'AWAY'
end
local now = tonumber(ARGV[1])
local before = status(KEYS[1], KEYS[2], '-inf')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
  redis.call('HDEL', KEYS[2], unpack(expired))
end
if ARGV[3] == 'set' then
  redis.call('ZADD', KEYS[1], ARGV[6], ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
elseif ARGV[3] == 'drop' then
  redis.call('ZREM', KEYS[1], ARGV[4])
  redis.call('HDEL', KEYS[2], ARGV[4])
end
local after = status(KEYS[1], KEYS[2], ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #latest == 0 then
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[1], KEYS[2])
else
  redis.call('ZADD', KEYS[3], latest[2], ARGV[2])
  -- Kept well past the last expiry so the sweeper still finds what lapsed; then Redis
  -- drops the keys of users nobody swept (every instance gone).
  local keep_until = math.ceil((tonumber(latest[2]) + 3600) * 1000)
  redis.call('PEXPIREAT', KEYS[1], keep_until)
  redis.call('PEXPIREAT', KEYS[2], keep_until)
end
return {before, after}
"""


class RedisPresenceStore:
    def __init__(self, url: str, *, prefix: str) -> None:
        self._redis = redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            # One immediate retry for a connection gone stale when Redis restarted; a timeout
            # (a hung Redis) is not retried.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self._prefix = f"{prefix}:presence"
        self._change = self._redis.register_script(_CHANGE)
        self._unreachable_until = 0.0

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """`request()`, or SERVICE_UNAVAILABLE while Redis cannot be reached."""
        if time.monotonic() < self._unreachable_until:
            raise _unavailable()
        try:
            return await request()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._unreachable_until = time.monotonic() + FAIL_FAST_SECONDS
            raise _unavailable() from error

    def _keys(self, user_id: int) -> list[str]:
        base = f"{self._prefix}:{user_id}"
        return [f"{base}:conns", f"{base}:states", f"{self._prefix}:users"]

    async def _run(
        self, user_id: int, op: str, connection_id: str = "", state: str = "", expiry: float = 0
    ) -> Transition:
        before, after = await self._call(
            lambda: self._change(
                keys=self._keys(user_id),
                args=[time.time(), user_id, op, connection_id, state, expiry],
            )
        )
        return Transition(user_id, Status(before.decode()), Status(after.decode()))

    async def set_connection(
        self, user_id: int, connection_id: str, state: Status, expires_at: float
    ) -> Transition:
        return await self._run(user_id, "set", connection_id, state.value, expires_at)

    async def drop_connection(self, user_id: int, connection_id: str) -> Transition:
        return await self._run(user_id, "drop", connection_id)

    async def sweep(self, user_id: int) -> Transition:
        return await self._run(user_id, "sweep")

    async def statuses(self, user_ids: Sequence[int]) -> dict[int, Status]:
        now = time.time()

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    conns, states, _ = self._keys(user_id)
                    pipe.zrangebyscore(conns, now, "+inf")
                    pipe.hgetall(states)
                return await pipe.execute()

        replies = await self._call(read)
        result: dict[int, Status] = {}
        for index, user_id in enumerate(user_ids):
            live, states = replies[2 * index], replies[2 * index + 1]
            result[user_id] = _aggregate([states[c].decode() for c in live if c in states])
        return result

    async def lapsed_users(self, now: float) -> list[int]:
        users_key = self._keys(0)[2]
        lapsed = await self._call(lambda: self._redis.zrangebyscore(users_key, "-inf", f"({now}"))
        return [int(u) for u in lapsed]

    async def close(self) -> None:
        await self._redis.aclose()


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Presence is unavailable for a moment; try again shortly.",
        retry_after=max(1, round(FAIL_FAST_SECONDS)),
    )


class MemoryPresenceStore:
    """The embedded default: one process is the whole deployment."""

    def __init__(self) -> None:
        #: user -> connection -> (state, expiry)
        self._connections: dict[int, dict[str, tuple[Status, float]]] = {}

    def _status(self, user_id: int, now: float | None) -> Status:
        conns = self._connections.get(user_id, {})
        return _aggregate([s for s, expiry in conns.values() if now is None or expiry >= now])

    def _change(
        self, user_id: int, apply: Callable[[dict[str, tuple[Status, float]]], object] | None = None
    ) -> Transition:
        now = time.time()
        before = self._status(user_id, None)
        conns = self._connections.setdefault(user_id, {})
        for connection_id, (_, expiry) in list(conns.items()):
            if expiry < now:
                del conns[connection_id]
        if apply is not None:
            apply(conns)
        after = self._status(user_id, now)
        if not conns:
            del self._connections[user_id]
        return Transition(user_id, before, after)

    async def set_connection(
        self, user_id: int, connection_id: str, state: Status, expires_at: float
    ) -> Transition:
        return self._change(
            user_id, lambda conns: conns.__setitem__(connection_id, (state, expires_at))
        )

    async def drop_connection(self, user_id: int, connection_id: str) -> Transition:
        return self._change(user_id, lambda conns: conns.pop(connection_id, None))

    async def sweep(self, user_id: int) -> Transition:
        return self._change(user_id)

    async def statuses(self, user_ids: Sequence[int]) -> dict[int, Status]:
        now = time.time()
        return {user_id: self._status(user_id, now) for user_id in user_ids}

    async def lapsed_users(self, now: float) -> list[int]:
        return [
            user_id
            for user_id, conns in self._connections.items()
            if all(expiry < now for _, expiry in conns.values())
        ]

    async def close(self) -> None:
        self._connections.clear()


def create_presence_store(broker_url: str, *, prefix: str) -> PresenceStore:
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisPresenceStore(broker_url, prefix=prefix)
    return MemoryPresenceStore()
