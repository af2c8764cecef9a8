"""A socket whose session can no longer be watched is closed, never left open unwatched."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from chatr import websocket as ws_lifecycle
from chatr.pubsub.broker import BrokerUnavailable
from chatr.runtime import Runtime
from chatr.services import auth, presence
from chatr.settings import Settings
from tests.support.api import register
from tests.support.redis_server import RedisServer
from tests.support.servers import RunningApp, served_app
from tests.support.ws import PROTOCOLS, ack, close_code, connect


def _outage() -> OperationalError:
    return OperationalError("SELECT sessions", {}, ConnectionRefusedError(111, "refused"))


def _in_watcher() -> bool:
    """Whether the socket's watcher (`watch_connection`) is what calls, not the connect."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code is ws_lifecycle.watch_connection.__code__:
            return True
        frame = frame.f_back
    return False


async def test_a_watcher_that_cannot_reach_the_database_closes_its_socket(
    server: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the database fails every session check the socket's watcher makes
    real = auth.ensure_session_active

    async def failing_in_watchers(rt: Runtime, *, user_id: int, session_id: int) -> None:
        if _in_watcher():
            raise _outage()
        await real(rt, user_id=user_id, session_id=session_id)

    monkeypatch.setattr(auth, "ensure_session_active", failing_in_watchers)
    alice = await register(server.http)
    assert server.ws_url
    # when a socket connects (its own authentication works)
    socket = await connect(server.ws_url, alice.token)
    await ack(socket)
    # then it is closed as "try again later" instead of living on unwatched
    assert await close_code(socket) == ws_lifecycle.CLOSE_TRY_AGAIN_LATER
    # and the connection's tasks are not the instance's: it stays ready
    readyz = await server.http.get("/readyz")
    assert readyz.status_code == 200, readyz.text
    assert "socket" not in json.dumps(readyz.json()["taskStatus"])


async def test_a_database_failure_on_resync_closes_the_socket(
    settings: Settings, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a socket on an instance with its own Redis, its watcher's first check done
    real = auth.ensure_session_active
    database_down = asyncio.Event()
    checked = asyncio.Event()

    async def check(rt: Runtime, *, user_id: int, session_id: int) -> None:
        if _in_watcher() and database_down.is_set():
            raise _outage()
        await real(rt, user_id=user_id, session_id=session_id)
        if _in_watcher():
            checked.set()

    monkeypatch.setattr(auth, "ensure_session_active", check)
    with RedisServer() as redis:
        async with served_app(settings.with_overrides(broker_url=redis.url)) as server:
            assert server.ws_url
            alice = await register(server.http)
            socket = await connect(server.ws_url, alice.token)
            await ack(socket)
            await asyncio.wait_for(checked.wait(), 10)
            # when the database goes down and Redis restarts (every watcher resyncs)
            database_down.set()
            await asyncio.to_thread(redis.restart)
            # then the watcher, unable to check the session, closes the socket
            assert await close_code(socket, timeout=20) == ws_lifecycle.CLOSE_TRY_AGAIN_LATER


async def test_a_watcher_whose_broker_subscription_fails_closes_its_socket(
    server: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = server.runtime.broker
    real = broker.subscribe

    def failing_in_watchers(channel: str) -> Any:
        if _in_watcher():
            raise BrokerUnavailable("the broker is stopped")
        return real(channel)

    monkeypatch.setattr(broker, "subscribe", failing_in_watchers)
    alice = await register(server.http)
    assert server.ws_url
    socket = await connect(server.ws_url, alice.token)
    await ack(socket)
    assert await close_code(socket) == ws_lifecycle.CLOSE_TRY_AGAIN_LATER


async def test_a_bug_in_the_presence_tracker_closes_the_socket_and_is_logged(
    server: RunningApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("a presence bug")

    monkeypatch.setattr(presence, "track_connection", broken)
    alice = await register(server.http)
    assert server.ws_url
    with caplog.at_level(logging.ERROR, logger="chatr"):
        socket = await connect(server.ws_url, alice.token)
        await ack(socket)
        assert await close_code(socket) == ws_lifecycle.CLOSE_INTERNAL_ERROR
    logged = [r for r in caplog.records if r.exc_info and "a presence bug" in str(r.exc_info[1])]
    assert len(logged) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_database_outage_at_connect_refuses_the_socket_as_try_again_later(
    server: RunningApp, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    alice = await register(server.http)

    async def unreachable(*_: object, **__: object) -> None:
        raise _outage()

    monkeypatch.setattr(auth, "viewer_from_token", unreachable)
    assert server.ws_url
    socket = await connect(server.ws_url, alice.token, protocol)
    assert await close_code(socket) == ws_lifecycle.CLOSE_TRY_AGAIN_LATER
