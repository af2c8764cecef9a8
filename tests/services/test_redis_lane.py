"""The instance's hot Redis commands on a connection of their own (chatr.redis_lane)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import uvloop
from hiredis import Reader
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatr.redis_lane import RedisCommands, packed_command


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    yield pool
    await pool.aclose()


@pytest.fixture
async def commands(pool: ConnectionPool) -> AsyncIterator[RedisCommands]:
    commands = RedisCommands(pool)
    yield commands
    await commands.aclose()


@pytest.fixture
def key() -> str:
    return f"chatr-test-lane-{uuid.uuid4().hex}"


class SilentRedis:
    """A "Redis" that completes redis-py's handshake, then reads commands and never answers
    them (a hung server)."""

    def __init__(self) -> None:
        self.accepted: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in self.accepted:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(writer)
        parser = Reader()
        while data := await reader.read(4096):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                if command[0].upper() in (b"CLIENT", b"HELLO", b"SELECT", b"AUTH"):
                    writer.write(b"+OK\r\n")


async def test_commands_made_together_are_answered_each_in_order(
    commands: RedisCommands, key: str
) -> None:
    replies = await asyncio.gather(
        commands.execute("INCRBY", key, 5),
        commands.execute("INCRBY", key, 2),
        commands.execute("GET", key),
        commands.execute("DEL", key),
    )

    assert replies == [5, 7, b"7", 1]


async def test_an_error_reply_is_that_commands_result_and_the_others_stand(
    commands: RedisCommands, key: str
) -> None:
    replies = await asyncio.gather(
        commands.execute("SET", key, "text"),
        commands.execute("INCR", key),
        commands.execute("EVALSHA", "0" * 40, 0),
        commands.execute("DEL", key),
        return_exceptions=True,
    )

    assert replies[0] == b"OK"
    assert isinstance(replies[1], ResponseError)
    assert isinstance(replies[2], NoScriptError)  # (what the rate limiter looks for)
    assert replies[3] == 1
    # and the connection is still in step: the next command gets its own reply
    assert await commands.execute("PING") == b"PONG"


async def test_round_trips_share_one_connection(commands: RedisCommands) -> None:
    first = await commands.execute("CLIENT", "ID")
    second = await commands.execute("CLIENT", "ID")

    assert first == second
    assert commands.round_trips == 2


async def test_commands_made_while_a_round_trip_is_on_its_way_go_together_in_the_next(
    commands: RedisCommands, key: str
) -> None:
    # given a command on its way that Redis holds for a while
    held = commands.execute("BLPOP", key, 0.2)
    await asyncio.sleep(0.05)

    # when three more are made meanwhile
    later = [commands.execute("PING"), commands.execute("ECHO", "x"), commands.execute("PING")]

    # then each gets its own reply, the three in one round trip after the first
    assert await held is None
    assert await asyncio.gather(*later) == [b"PONG", b"x", b"PONG"]
    assert (commands.round_trips, commands.commands) == (2, 4)


async def test_a_cancelled_caller_does_not_put_the_others_out_of_step(
    commands: RedisCommands, key: str
) -> None:
    # given a caller whose command is on its way, cancelled before its reply
    gone = asyncio.ensure_future(commands.execute("BLPOP", key, 0.1))
    await asyncio.sleep(0.02)
    gone.cancel()

    # then the next caller gets its own reply, not the cancelled one's
    assert await commands.execute("ECHO", "mine") == b"mine"
    assert gone.cancelled()


async def test_aclose_fails_what_is_on_its_way_and_a_later_command_connects_afresh(
    commands: RedisCommands, key: str
) -> None:
    before = await commands.execute("CLIENT", "ID")
    waiting = commands.execute("BLPOP", key, 1)
    await asyncio.sleep(0.02)

    await commands.aclose()

    with pytest.raises(RedisConnectionError):
        await waiting
    assert await commands.execute("CLIENT", "ID") != before


async def test_a_connection_killed_while_idle_costs_no_failed_command(
    commands: RedisCommands, redis_url: str
) -> None:
    # given the lane's connection, closed by the server meanwhile (as a Redis restart does)
    connection_id = await commands.execute("CLIENT", "ID")
    admin = Redis.from_url(redis_url)
    try:
        assert await admin.execute_command("CLIENT", "KILL", "ID", connection_id) == 1
    finally:
        await admin.aclose()

    # when the next command runs, then it runs on a new connection
    new_id = await commands.execute("CLIENT", "ID")

    assert new_id != connection_id


async def test_an_unreachable_redis_fails_the_commands_with_a_connection_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    commands = RedisCommands.from_url(f"redis://127.0.0.1:{port}")
    try:
        outcomes = await asyncio.gather(
            commands.execute("PING"), commands.execute("PING"), return_exceptions=True
        )
        assert all(isinstance(o, RedisConnectionError) for o in outcomes)
        with pytest.raises(RedisConnectionError):  # and again: nothing is left half-open
            await commands.execute("PING")
    finally:
        await commands.aclose()


async def test_a_redis_that_stops_answering_fails_the_round_trip_and_what_waits_behind_it() -> None:
    async with SilentRedis() as port:
        commands = RedisCommands.from_url(f"redis://127.0.0.1:{port}", timeout=0.3)
        try:
            # when a command is on its way and another waits behind it
            started = time.monotonic()
            first = commands.execute("PING")
            await asyncio.sleep(0.05)
            behind = commands.execute("PING")

            # then both fail once the timeout has passed since the first was written
            for outcome in (first, behind):
                with pytest.raises(RedisTimeoutError):
                    await outcome
            assert 0.25 <= time.monotonic() - started < 0.6
            assert commands.round_trips == 1
        finally:
            await commands.aclose()


async def test_a_timed_out_connection_is_dropped_and_the_next_command_opens_a_new_one() -> None:
    silent = SilentRedis()
    async with silent as port:
        commands = RedisCommands.from_url(f"redis://127.0.0.1:{port}", timeout=0.2)
        try:
            with pytest.raises(RedisTimeoutError):
                await commands.execute("PING")
            # (its replies may still come, out of step with the next commands)
            with pytest.raises(RedisTimeoutError):
                await commands.execute("PING")
            assert len(silent.accepted) == 2
        finally:
            await commands.aclose()


async def test_commands_made_together_share_a_round_trip_and_each_gets_its_own_reply(
    redis_url: str, key: str
) -> None:
    commands = RedisCommands.from_url(redis_url)
    try:
        # when callers execute commands at the same time, one of them an error
        replies = await asyncio.gather(
            commands.execute("SET", key, "text"),
            commands.execute("GET", key),
            commands.execute("INCR", key),
            commands.execute("DEL", key),
            return_exceptions=True,
        )
        # then each got its own reply (the error only its caller) in one round trip
        assert replies[:2] == [b"OK", b"text"]
        assert isinstance(replies[2], ResponseError)
        assert replies[3] == 1
        assert (commands.round_trips, commands.commands) == (1, 4)
    finally:
        await commands.aclose()


def test_the_lane_works_on_uvloop_as_on_the_servers(redis_url: str, key: str) -> None:
    # uvicorn runs the app on uvloop, whose transports the protocol takes over from redis-py
    async def scenario() -> None:
        commands = RedisCommands.from_url(redis_url)
        try:
            held = commands.execute("BLPOP", key, 0.1)
            await asyncio.sleep(0.02)
            later = asyncio.gather(
                commands.execute("ECHO", "a"),
                commands.execute("EVALSHA", "0" * 40, 0),
                return_exceptions=True,
            )
            assert await held is None
            echoed, missing = await later
            assert echoed == b"a"
            assert isinstance(missing, NoScriptError)
            assert (commands.round_trips, commands.commands) == (2, 3)
        finally:
            await commands.aclose()

    uvloop.run(scenario())


@pytest.mark.parametrize(
    "commands",
    [
        [("EVALSHA", "a" * 40, 1, "chatr:rl:send:42", 1796510305.808326, 30, 60, 1)],
        [("PUBLISH", "chatr:conversation:7", b'{"seq": 3}'), ("PUBLISH", "c", "caf\u00e9")],
        [("SET", "k", 0.1), ("INCRBY", "k", -5), ("GET", b"k")],
        [("CONFIG GET", "maxmemory")],  # (a first argument redis-py splits into words)
        [("SET", "k", memoryview(b"raw"))],  # (an argument hiredis refuses)
    ],
)
def test_commands_are_packed_byte_for_byte_as_redis_py_packs_them(
    pool: ConnectionPool, commands: list[tuple[object, ...]]
) -> None:
    conn = pool.make_connection()

    assert b"".join(packed_command(conn, command) for command in commands) == b"".join(
        bytes(part) for part in conn.pack_commands(commands)
    )
