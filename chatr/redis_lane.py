"""A Redis connection of its own for one `Batcher` (chatr.aio): the hot commands' round trips.

Every send makes two Redis commands (its rate-limit script, its PUBLISH), both through the
instance's `RedisCommands`: a `Batcher`, which runs one batch at a time, on a `RedisLane`.
Through redis-py's client each call also checked a connection out of the pool (a wait bounded
by a timeout), read the socket once to check its health, and gave it back: with one send in
flight that was about a fifth of a send's CPU (`bench/send_cpu.py --conversations 1
--uvloop`). A batcher needs one connection, never two at once, so a lane keeps one and writes
a batch as one pipeline: one write, then one reply per command, in order.

Failures are what redis-py's client would raise: a reply that is an error is that command's
result (the others stand); a connection or timeout error fails the batch and drops the
connection (its state is unknown), and the next batch opens a new one. The pool's socket
timeout bounds a whole batch, write and replies, as one deadline: redis-py would bound each
read by a timeout of its own and each write by `asyncio.wait_for`, which starts a task per
write (36 of the ~875 Python calls of a send). A connection that was reset while idle (Redis
restarted) fails the first batch that uses it: that batch is sent once more on a new
connection, as the pools' one retry did, so a restart between two sends is not an outage.

Commands are packed by hiredis's C packer (a dependency): redis-py's asyncio connection packs
in Python, one encode call per argument, and the rate-limit script's eleven arguments made
that ~5% of a send's CPU. The bytes are the same (UTF-8, floats as `repr`); what hiredis
refuses, or a connection set to another encoding, is packed by redis-py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatr.aio import Batcher

#: How long a batch of hot commands may take before it fails (and its connection is dropped).
COMMAND_TIMEOUT_SECONDS = 1.0


class RedisLane:
    """Runs batches of commands on one connection made by `pool`'s factory (URL, auth, TLS,
    timeouts as configured there); not for concurrent use (a `Batcher` never is)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: AbstractConnection | None = None
        #: The pool's socket timeout, applied to each batch as a whole (None: unbounded).
        self._timeout: float | None = pool.connection_kwargs.get("socket_timeout")

    async def run(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Each command's reply, or the error Redis answered it with, in order."""
        conn = self._conn
        if conn is not None:
            try:
                return await self._run_on(conn, commands)
            except RedisConnectionError:
                pass  # (a connection reset while idle: once more, on a new one)
        conn = self._conn = self._new_connection()
        return await self._run_on(conn, commands)

    def _new_connection(self) -> AbstractConnection:
        """As the pool would make it, but with no per-call socket timeout (see `_run_on`)."""
        arguments = {**self._pool.connection_kwargs, "socket_timeout": None}
        return self._pool.connection_class(**arguments)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)

    async def _run_on(
        self, conn: AbstractConnection, commands: Sequence[Sequence[Any]]
    ) -> list[Any]:
        try:
            async with asyncio.timeout(self._timeout):
                await conn.send_packed_command(packed_commands(conn, commands), check_health=False)
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as error:  # (the reply was read: the connection is fine)
                        replies.append(error)
                return replies
        except BaseException as error:
            if self._conn is conn:
                self._conn = None
            await conn.disconnect(nowait=True)
            if isinstance(error, TimeoutError):  # (the batch's deadline passed)
                raise RedisTimeoutError(f"no answer from Redis in {self._timeout} s") from error
            raise


def packed_commands(
    conn: AbstractConnection, commands: Sequence[Sequence[Any]]
) -> bytes | list[bytes]:
    """`commands` in Redis's protocol, as `conn.pack_commands` would write them."""
    encoder = conn.encoder
    if encoder.encoding != "utf-8" or encoder.encoding_errors != "strict":
        return conn.pack_commands(commands)
    # (redis-py splits a first argument such as "CONFIG GET" into words; hiredis would not.)
    if any((b" " if isinstance(c[0], bytes) else " ") in c[0] for c in commands):
        return conn.pack_commands(commands)
    try:
        return b"".join([pack_command(tuple(command)) for command in commands])
    except TypeError:  # an argument hiredis does not take (redis-py's packer says which)
        return conn.pack_commands(commands)


class RedisCommands:
    """The instance's hot Redis commands, one lane behind one `Batcher`: every command
    submitted while a round trip is on its way goes in the next pipeline.

    Why one for the instance rather than one per caller (the rate limiter, the broker): a
    send makes two round trips, its rate-limit hit before it is stored and its PUBLISH after.
    On two lanes each took a write and a read of its own even when sends overlapped; on one,
    a send's hit and another send's PUBLISH share them. A socket write and the wakeup it
    causes cost more CPU than the command (without the hit's round trip a send cost 0.2 ms
    less on chatr's servers, bench/throughput.py), so the fewer, the better.

    `execute` answers the command's reply, raises the error Redis answered it with, or the
    batch's connection or timeout error (then every command of the batch and every one queued
    behind it gets it, as `Batcher` says).
    """

    def __init__(self, pool: ConnectionPool, *, owns_pool: bool = False) -> None:
        self._pool = pool
        self._owns_pool = owns_pool
        self._lane = RedisLane(pool)
        self._batcher: Batcher[Sequence[Any], Any] = Batcher(self._run)
        #: Round trips made and commands sent since start (for tests and the bench).
        self.round_trips = 0
        self.commands = 0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> RedisCommands:
        """Its own lane to `url` (auth, TLS and database from the URL), batches bounded by
        `timeout` and connecting too."""
        pool = ConnectionPool.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # (the lane retries a connection reset while idle)
        )
        return cls(pool, owns_pool=True)

    async def execute(self, *command: Any) -> Any:
        return await self._batcher.submit(command)

    async def _run(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        self.round_trips += 1
        self.commands += len(commands)
        return await self._lane.run(commands)

    async def aclose(self) -> None:
        await self._batcher.aclose()
        await self._lane.aclose()
        if self._owns_pool:
            await self._pool.aclose()
