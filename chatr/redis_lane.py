"""The instance's connection of its own to Redis for the hot commands, read by a protocol.

Every send makes two Redis commands (its rate-limit script, its PUBLISH), both through the
instance's `RedisCommands`. At the concurrency of a few conversations per instance they
rarely meet, so each is a round trip of its own, and what a round trip costs in Python is a
visible share of a send's CPU. Through redis-py's client each call also checked a connection
out of the pool (a wait bounded by a timeout), read the socket once to check its health, and
gave it back: with one send in flight that was about a fifth of a send's CPU
(`bench/send_cpu.py --conversations 1 --uvloop`). The lane that replaced it kept one
connection but still ran each batch in a task of its own, reading replies through asyncio's
stream reader under an `asyncio.timeout`: 83-97 us of CPU per lone PUBLISH against 40-59 us
for a protocol on the same socket (uvloop, this machine).

So the connection is an `asyncio.Protocol`: `execute` packs the command (hiredis's C packer)
and queues it; the queue is written in one write at the end of the loop's current turn if
nothing is on its way, else as soon as the last reply of the batch on its way is read (in
the protocol's callback, no task in between). Replies are parsed by hiredis's reader as the
bytes arrive and each resolves its caller's future at once. That is group commit without a
task: commands made while a round trip is on its way go together in the next pipeline, so
under load many sends share one write and one read.

Failures are what redis-py's client would raise: a reply that is an error is that command's
result (its caller gets it; the others stand); a connection lost, a protocol error or the
batch's deadline fails the batch on its way and every command queued behind it (the next
round trip would most likely fail the same way, after as long), and drops the connection (a
timed-out one may still answer, out of step); the next command opens a new one. The pool's
socket timeout bounds a batch, write and replies, as one deadline, and the connection and
its handshake as another. A connection that Redis closed while idle is seen closed before
it is used (the protocol is told at once) and the next command connects anew; a batch
written just before the loop learnt of it, that had no reply, is sent once more on a new
connection, as the pools' one retry did, so a restart between two sends is not an outage.

The connection is opened by redis-py's connection class as the pool configures it (URL,
auth, TLS, database, client name: its handshake), then its transport is handed to the
protocol. A caller that is cancelled leaves its command in the batch: if it was already
written it is not unsent, and its reply is read and dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

from hiredis import Reader, pack_command
from redis._parsers.base import BaseParser
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

#: How long a batch of hot commands may take before it fails (and its connection is dropped).
COMMAND_TIMEOUT_SECONDS = 1.0
#: At most this many commands go in one write (the rest in the next).
MAX_BATCH = 256

#: What hiredis's reader answers while a reply is incomplete (a reply is never this object).
_NOT_ENOUGH_DATA = object()


class _Queued:
    """One command: its bytes, its caller's future, and whether it is being sent again."""

    __slots__ = ("future", "packed", "resent")

    def __init__(self, packed: bytes, future: asyncio.Future[Any], resent: bool = False) -> None:
        self.packed = packed
        self.future = future
        self.resent = resent


class _Pipeline(asyncio.Protocol):
    """One connection: writes batches, reads their replies in order and resolves them."""

    def __init__(self, owner: RedisCommands, reader: Reader, origin: AbstractConnection) -> None:
        self._owner = owner
        self._reader = reader
        self._transport: asyncio.Transport | None = None
        #: The commands written and not yet answered, oldest first.
        self.in_flight: deque[_Queued] = deque()
        #: Whether the batch on its way has had a reply yet, and whether an earlier one was
        #: answered in full (a connection that worked: losing it unanswered may be a reset
        #: while idle, worth one resend).
        self._answered_any = False
        self._worked = False
        self._deadline: asyncio.TimerHandle | None = None
        self.closed = False
        #: Kept so that redis-py's stream writer is not collected (from Python 3.12 on its
        #: finalizer closes the transport the protocol now owns).
        self._origin = origin

    @property
    def busy(self) -> bool:
        return bool(self.in_flight)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods.)
        self._transport = cast(asyncio.Transport, transport)

    def write(self, batch: list[_Queued], timeout: float | None) -> None:
        assert self._transport is not None
        self.in_flight.extend(batch)
        self._answered_any = False
        if timeout is not None:
            self._deadline = asyncio.get_running_loop().call_later(timeout, self._expire, timeout)
        self._transport.write(b"".join([queued.packed for queued in batch]))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        in_flight = self.in_flight
        while in_flight:
            try:
                reply = self._reader.gets()
            except InvalidResponse as error:
                self._fail(RedisConnectionError(f"Redis answered out of protocol: {error}"))
                return
            if reply is _NOT_ENOUGH_DATA:
                return
            self._answered_any = True
            future = in_flight.popleft().future
            if future.done():  # (its caller was cancelled)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._worked = True
        self._owner._batch_done(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        unanswered = list(self.in_flight)
        if (
            unanswered
            and self._worked
            and not self._answered_any
            and not any(queued.resent for queued in unanswered)
        ):
            # Written before the loop learnt that the connection was gone: once more.
            self.in_flight.clear()
            self._close()
            self._owner._resend(self, unanswered)
            return
        self._fail(
            RedisConnectionError(
                f"Redis closed the connection ({exc!r})" if exc else "Redis closed the connection"
            )
        )

    def _expire(self, timeout: float) -> None:
        self._deadline = None
        self._fail(RedisTimeoutError(f"no answer from Redis in {timeout} s"))

    def _fail(self, error: Exception) -> None:
        """Fail what is on its way and drop the connection; the owner fails its queue."""
        failed_any = self.close(error)
        self._owner._pipeline_failed(self, error if failed_any else None)

    def _close(self) -> None:
        self.closed = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._transport is not None:
            self._transport.abort()

    def close(self, error: Exception) -> bool:
        """Drop the connection, failing what is on its way with `error`; whether anything
        was."""
        failed, self.in_flight = self.in_flight, deque()
        self._close()
        for queued in failed:
            if not queued.future.done():
                queued.future.set_exception(error)
        return bool(failed)


def packed_command(conn: AbstractConnection, command: Sequence[Any]) -> bytes:
    """`command` in Redis's protocol, as `conn.pack_command` would write it."""
    encoder = conn.encoder
    # (redis-py splits a first argument such as "CONFIG GET" into words; hiredis would not.)
    if (
        encoder.encoding == "utf-8"
        and encoder.encoding_errors == "strict"
        and (b" " if isinstance(command[0], bytes) else " ") not in command[0]
    ):
        try:
            return pack_command(tuple(command))
        except TypeError:  # an argument hiredis does not take (redis-py's packer says which)
            pass
    return b"".join(bytes(part) for part in conn.pack_command(*command))


class RedisCommands:
    """The instance's hot Redis commands on one connection of their own: every command made
    while a round trip is on its way goes in the next pipeline.

    Why one for the instance rather than one per caller (the rate limiter, the broker): a
    send makes two round trips, its rate-limit hit before it is stored and its PUBLISH after.
    On two connections each took a write and a read of its own even when sends overlapped; on
    one, a send's hit and another send's PUBLISH share them. A socket write and the wakeup it
    causes cost more CPU than the command (without the hit's round trip a send cost 0.2 ms
    less on chatr's servers, bench/throughput.py), so the fewer, the better.

    `execute` answers the command's reply, raises the error Redis answered it with, or the
    batch's connection or timeout error (then every command of the batch and every one queued
    behind it gets it).
    """

    def __init__(self, pool: ConnectionPool, *, owns_pool: bool = False) -> None:
        self._pool = pool
        self._owns_pool = owns_pool
        #: The pool's socket timeout, applied to each batch as a whole (None: unbounded).
        self._timeout: float | None = pool.connection_kwargs.get("socket_timeout")
        #: An unconnected connection as the pool configures them: its encoder and packer.
        self._packer = self._new_connection()
        self._queue: list[_Queued] = []
        self._pipeline: _Pipeline | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        #: Round trips made and commands sent since start (for tests and the bench).
        self.round_trips = 0
        self.commands = 0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> RedisCommands:
        """Its own connection to `url` (auth, TLS and database from the URL), batches bounded
        by `timeout` and connecting too."""
        pool = ConnectionPool.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # (a connection reset while idle is resent once)
        )
        return cls(pool, owns_pool=True)

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        """Queue `command`; await the result for its reply."""
        packed = packed_command(self._packer, command)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Queued(packed, future))
        if not self._flush_scheduled and (self._pipeline is None or not self._pipeline.busy):
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Write the queue's head if the connection is free (connecting first if need be)."""
        self._flush_scheduled = False
        if not self._queue:
            return
        pipeline = self._pipeline
        if pipeline is None or pipeline.closed:
            if self._connecting is None:
                self._connecting = asyncio.create_task(self._connect())
            return
        if pipeline.busy:
            return  # (its last reply flushes again)
        batch = self._queue[:MAX_BATCH]
        del self._queue[:MAX_BATCH]
        self.round_trips += 1
        self.commands += len(batch)
        pipeline.write(batch, self._timeout)

    def _batch_done(self, pipeline: _Pipeline) -> None:
        if pipeline is self._pipeline:
            self._flush()

    def _resend(self, pipeline: _Pipeline, unanswered: list[_Queued]) -> None:
        for queued in unanswered:
            queued.resent = True
        self._queue[:0] = unanswered
        if pipeline is self._pipeline:
            self._pipeline = None
        self._flush()

    def _pipeline_failed(self, pipeline: _Pipeline, error: Exception | None) -> None:
        """`pipeline` is gone: with `error` when it failed a batch (the queue behind it fails
        too), without when it was lost while idle (the queue goes on a new connection)."""
        if pipeline is self._pipeline:
            self._pipeline = None
        if error is not None:
            self._fail_queue(error)
        elif self._queue and not self._flush_scheduled:
            self._flush()

    def _fail_queue(self, error: Exception) -> None:
        queue, self._queue = self._queue, []
        for queued in queue:
            if not queued.future.done():
                queued.future.set_exception(error)

    def _new_connection(self) -> AbstractConnection:
        """As the pool would make it, but with no per-call socket timeout (the lane bounds
        each batch itself)."""
        arguments = {**self._pool.connection_kwargs, "socket_timeout": None}
        return self._pool.connection_class(**arguments)

    async def _connect(self) -> None:
        """Open a connection (redis-py's handshake), hand its transport to a `_Pipeline`,
        then write the queue; or fail the queue with why it could not connect."""
        conn = self._new_connection()
        try:
            async with asyncio.timeout(self._timeout):
                await conn.connect()
            writer = conn._writer
            if writer is None:
                raise RedisConnectionError("redis-py connected without a stream")
            encoder = conn.encoder
            reader = Reader(
                protocolError=InvalidResponse,
                replyError=BaseParser.parse_error,
                errors=encoder.encoding_errors,
                notEnoughData=_NOT_ENOUGH_DATA,
                **({"encoding": encoder.encoding} if encoder.decode_responses else {}),
            )
            pipeline = _Pipeline(self, reader, origin=conn)
            transport = writer.transport
            transport.set_protocol(pipeline)
            pipeline.connection_made(transport)
        except asyncio.CancelledError:
            self._connecting = None
            await conn.disconnect(nowait=True)
            raise
        except Exception as error:
            self._connecting = None
            await conn.disconnect(nowait=True)
            self._fail_queue(
                RedisTimeoutError(f"no connection to Redis in {self._timeout} s")
                if isinstance(error, TimeoutError)
                else error
            )
            return
        self._connecting = None
        self._pipeline = pipeline
        self._flush()

    async def aclose(self) -> None:
        """Close the connection; commands on their way or queued fail with ConnectionError."""
        closed = RedisConnectionError("the Redis lane is closed")
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            await asyncio.wait([connecting])
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close(closed)
        self._fail_queue(closed)
        if self._owns_pool:
            await self._pool.aclose()
