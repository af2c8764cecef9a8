"""A batch of Redis commands on a connection of its own (chatr.redis_lane)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatr.redis_lane import RedisCommands, RedisLane, packed_commands


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    yield pool
    await pool.aclose()


@pytest.fixture
async def lane(pool: ConnectionPool) -> AsyncIterator[RedisLane]:
    lane = RedisLane(pool)
    yield lane
    await lane.aclose()


@pytest.fixture
def key() -> str:
    return f"chatr-test-lane-{uuid.uuid4().hex}"


async def test_a_batch_answers_each_command_in_order(lane: RedisLane, key: str) -> None:
    replies = await lane.run([("INCRBY", key, 5), ("INCRBY", key, 2), ("GET", key), ("DEL", key)])

    assert replies == [5, 7, b"7", 1]


async def test_an_error_reply_is_that_commands_result_and_the_others_stand(
    lane: RedisLane, key: str
) -> None:
    replies = await lane.run(
        [("SET", key, "text"), ("INCR", key), ("EVALSHA", "0" * 40, 0), ("DEL", key)]
    )

    assert replies[0] == b"OK"
    assert isinstance(replies[1], ResponseError)
    assert isinstance(replies[2], NoScriptError)  # (what the rate limiter looks for)
    assert replies[3] == 1
    # and the connection is still in step: the next batch gets its own replies
    assert await lane.run([("PING",)]) == [b"PONG"]


async def test_batches_share_one_connection(lane: RedisLane) -> None:
    [first] = await lane.run([("CLIENT", "ID")])
    [second] = await lane.run([("CLIENT", "ID")])

    assert first == second


async def test_a_connection_killed_while_idle_costs_no_failed_batch(
    lane: RedisLane, redis_url: str
) -> None:
    # given the lane's connection, closed by the server meanwhile (as a Redis restart does)
    [connection_id] = await lane.run([("CLIENT", "ID")])
    admin = Redis.from_url(redis_url)
    try:
        assert await admin.execute_command("CLIENT", "KILL", "ID", connection_id) == 1
    finally:
        await admin.aclose()

    # when the next batch runs, then it runs on a new connection
    [new_id] = await lane.run([("CLIENT", "ID")])

    assert new_id != connection_id


async def test_an_unreachable_redis_fails_the_batch_with_a_connection_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ConnectionPool.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=1.0)
    lane = RedisLane(pool)
    try:
        with pytest.raises(RedisConnectionError):
            await lane.run([("PING",)])
        with pytest.raises(RedisConnectionError):  # and again: nothing is left half-open
            await lane.run([("PING",)])
    finally:
        await lane.aclose()
        await pool.aclose()


async def test_a_redis_that_stops_answering_fails_the_batch_by_the_pools_socket_timeout() -> None:
    # given a "Redis" that accepts connections and reads commands but never answers
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool.from_url(
        f"redis://127.0.0.1:{port}", socket_timeout=0.3, socket_connect_timeout=1.0
    )
    lane = RedisLane(pool)
    try:
        # when a batch runs, then it fails once the pool's socket timeout has passed
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await lane.run([("PING",), ("PING",), ("PING",)])
        assert 0.25 <= time.monotonic() - started < 0.6

        # and the connection, whose replies may still come, is dropped: the next batch
        # opens a new one
        with pytest.raises(RedisTimeoutError):
            await lane.run([("PING",)])
        assert len(accepted) == 2
    finally:
        await lane.aclose()
        await pool.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


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


async def test_commands_to_an_unreachable_redis_fail_with_a_connection_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    commands = RedisCommands.from_url(f"redis://127.0.0.1:{port}")
    try:
        outcomes = await asyncio.gather(
            commands.execute("PING"), commands.execute("PING"), return_exceptions=True
        )
        assert all(isinstance(o, RedisConnectionError) for o in outcomes)
    finally:
        await commands.aclose()


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

    def joined(packed: bytes | list[bytes]) -> bytes:
        return packed if isinstance(packed, bytes) else b"".join(bytes(p) for p in packed)

    assert joined(packed_commands(conn, commands)) == joined(conn.pack_commands(commands))
