"""Redis transport: one dedicated subscription connection, and a separate pool for PUBLISH.

redis-py's `PubSub` is not used for the subscription side: it silently reconnects and
resubscribes inside its own retry logic, which would hide exactly the moment the Broker must
tell subscribers to resync. A bare connection keeps that moment visible:

* the Broker's owner task is the only writer (SUBSCRIBE, UNSUBSCRIBE, PING);
* the Broker's reader task is the only reader; it returns messages and, because Redis answers
  in order, counts acknowledgements off a FIFO to resolve the owner's pending commands;
* any failure surfaces as `ConnectionError` and the Broker reconnects from scratch.

PUBLISHes go through the instance's `RedisCommands` (chatr.redis_lane), shared with the
rate limiter's hits: those made while one is on its way to Redis go together in the next
pipeline, so under load many sends cost one round trip, one write and one read instead of
one each, on a connection of its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chatr.redis_lane import RedisCommands


@dataclass
class _PendingReply:
    """A command waiting for `remaining` replies (SUBSCRIBE a b c answers three times)."""

    remaining: int
    future: asyncio.Future[None]


class RedisTransport:
    """The Broker's `Transport` protocol over Redis pub/sub (RESP2)."""

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        commands: RedisCommands | None = None,
    ) -> None:
        """`commands`: the instance's shared lane for PUBLISH (closed by its owner); by
        default one of its own to `url`, bounded by `socket_timeout`."""
        # Explicitly no redis-py retries (`Redis()` defaults to 3 with backoff up to 10 s):
        # the Broker retries a publish once and reconnects the subscription itself, so a call
        # is bounded by the socket timeouts.
        no_retry = Retry(NoBackoff(), 0)
        self._owns_commands = commands is None
        self._commands = commands or RedisCommands.from_url(url, timeout=socket_timeout)
        # Only used as a factory: it parses the URL (auth, TLS, db) into connection arguments.
        self._factory = ConnectionPool.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            retry=no_retry,
            decode_responses=True,
            encoding_errors="replace",  # a foreign non-UTF-8 message must not kill the reader
        )
        # Reads wait for messages indefinitely (the Broker's PING finds dead peers); pub/sub
        # frames are parsed as RESP2 arrays whatever the URL asks for.
        self._factory.connection_kwargs.update(socket_timeout=None, protocol=2)
        self._conn: AbstractConnection | None = None
        self._replies: deque[_PendingReply] = deque()

    async def connect(self) -> None:
        await self.disconnect()
        conn = self._factory.make_connection()
        try:
            await conn.connect()
        except (RedisError, OSError) as error:
            await conn.disconnect(nowait=True)
            raise ConnectionError(f"cannot connect to Redis: {error}") from error
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        self._conn = conn

    async def disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._fail_pending(ConnectionError("the subscription connection was closed"))
        if conn is not None:
            await conn.disconnect(nowait=True)

    async def subscribe(self, channels: Sequence[str]) -> None:
        await self._request("SUBSCRIBE", *channels, replies=len(channels))

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        await self._request("UNSUBSCRIBE", *channels, replies=len(channels))

    async def ping(self) -> None:
        await self._request("PING", replies=1)

    async def next_message(self) -> tuple[str, str]:
        while True:
            conn = self._connection()
            try:
                response = await conn.read_response()
            except (RedisError, OSError) as error:
                lost = ConnectionError(f"lost the subscription connection: {error}")
                self._fail_pending(lost)
                raise lost from error
            kind = response[0] if isinstance(response, list) else response
            if kind == "message":
                return response[1], response[2]
            # "subscribe" / "unsubscribe" per channel, ["pong", ""] or "PONG" outside pub/sub
            # mode: each answers the oldest command still waiting.
            self._acknowledge()

    def publish(self, channel: str, data: str) -> asyncio.Future[None]:
        """The PUBLISH on its way on the instance's lane: no task, no coroutine (each send
        announces its message this way, and the mutation does not wait for the answer)."""
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            sent = self._commands.execute("PUBLISH", channel, data)
        except (RedisError, OSError) as error:
            answered.set_exception(ConnectionError(f"PUBLISH failed: {error}"))
            return answered
        sent.add_done_callback(lambda done: _settle_publish(answered, done))
        return answered

    async def aclose(self) -> None:
        if self._owns_commands:
            await self._commands.aclose()
        await self.disconnect()
        await self._factory.aclose()

    def _connection(self) -> AbstractConnection:
        # redis-py would quietly reconnect a dropped connection on the next command; a fresh
        # connection has no subscriptions, so the Broker must notice and resubscribe instead.
        if self._conn is None or not self._conn.is_connected:
            raise ConnectionError("the subscription connection is closed")
        return self._conn

    async def _request(self, *args: str, replies: int) -> None:
        conn = self._connection()
        pending = _PendingReply(replies, asyncio.get_running_loop().create_future())
        # Queued before sending, so the reader cannot see the answer first. It stays queued if
        # the caller gives up (timeout, cancellation): its replies still arrive, in order.
        self._replies.append(pending)
        try:
            await conn.send_command(*args, check_health=False)
        except (RedisError, OSError) as error:
            raise ConnectionError(f"lost the subscription connection: {error}") from error
        await pending.future

    def _acknowledge(self) -> None:
        if not self._replies:
            return
        pending = self._replies[0]
        pending.remaining -= 1
        if pending.remaining <= 0:
            self._replies.popleft()
            if not pending.future.done():
                pending.future.set_result(None)

    def _fail_pending(self, error: ConnectionError) -> None:
        while self._replies:
            future = self._replies.popleft().future
            if not future.done():
                future.set_exception(error)


def _settle_publish(answered: asyncio.Future[None], sent: asyncio.Future[object]) -> None:
    """`answered` as the transport contract says: None, or ConnectionError for a failure."""
    if answered.done():
        return
    error = ConnectionError("PUBLISH was cancelled") if sent.cancelled() else sent.exception()
    if error is None:
        answered.set_result(None)
    elif isinstance(error, (RedisError, OSError)):
        answered.set_exception(ConnectionError(f"PUBLISH failed: {error}"))
    else:
        answered.set_exception(error)
