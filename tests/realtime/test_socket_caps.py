"""Socket caps from an attacker's side: per user, per client address (as the trusted-proxy
logic sees it), idle unauthenticated sockets, and slots that never leak."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from chatr.cli import proxy_options
from chatr.settings import Settings
from chatr.socket_registry import SocketRegistry
from tests.support.api import register
from tests.support.ids import pk
from tests.support.servers import RunningApp, served_app
from tests.support.ws import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, close_code

PER_USER = 2
PER_IP = 4
IDLE_SECONDS = 1.0


def _capped(settings: Settings) -> Settings:
    return settings.with_overrides(
        max_sockets_per_user=PER_USER,
        max_sockets_per_ip=PER_IP,
        anonymous_socket_idle_seconds=IDLE_SECONDS,
    )


@pytest.fixture
async def capped(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with served_app(_capped(settings)) as running:
        yield running


@pytest.fixture
async def behind_proxy(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    """The app behind a trusted proxy on loopback: X-Forwarded-For names the client."""
    async with served_app(_capped(settings), **proxy_options(("127.0.0.1",))) as running:
        yield running


@pytest.fixture
async def no_proxy(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    """Served as `chatr serve` serves it with no trusted proxy configured (the default)."""
    async with served_app(_capped(settings), **proxy_options(())) as running:
        yield running


def _sockets(server: RunningApp) -> SocketRegistry:
    return server.app.state.sockets


async def _open(
    server: RunningApp, protocol: str = TRANSPORT_WS, forwarded_for: str | None = None
) -> ClientConnection:
    assert server.ws_url
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    return await websockets.connect(
        server.ws_url,
        subprotocols=[protocol],  # type: ignore[list-item]
        additional_headers=headers,
    )


async def _init(socket: ClientConnection, token: str | None = None) -> dict[str, Any]:
    """Send connection_init (with a token if given) and return the server's answer."""
    payload = {"authorization": f"Bearer {token}"} if token else {}
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return json.loads(await asyncio.wait_for(socket.recv(), 5))


async def _connected(
    server: RunningApp,
    token: str | None = None,
    protocol: str = TRANSPORT_WS,
    forwarded_for: str | None = None,
) -> ClientConnection:
    socket = await _open(server, protocol, forwarded_for)
    reply = await _init(socket, token)
    assert reply["type"] == "connection_ack", reply
    return socket


async def _until(condition: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# Per user ---------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_user_cannot_hold_more_sockets_than_the_cap(
    capped: RunningApp, protocol: str
) -> None:
    alice = await register(capped.http)
    held = [await _connected(capped, alice.token, protocol) for _ in range(PER_USER)]
    extra = await _open(capped, protocol)
    if protocol == LEGACY_WS:
        reply = await _init(extra, alice.token)
        assert reply["type"] == "connection_error"
        assert reply["payload"]["extensions"]["code"] == "RATE_LIMITED"
    else:
        payload = {"authorization": f"Bearer {alice.token}"}
        await extra.send(json.dumps({"type": "connection_init", "payload": payload}))
    assert await close_code(extra) == 4429
    assert _sockets(capped).metrics()["refused_per_user"] == 1
    # Another user from the same address is not affected.
    bob = await register(capped.http)
    await (await _connected(capped, bob.token, protocol)).close()
    # Closing one of Alice's frees its place.
    await held[0].close()
    await _until(lambda: _sockets(capped).open_for(user_id=pk(alice.id)) < PER_USER)
    again = await _connected(capped, alice.token, protocol)
    for socket in (again, *held[1:]):
        await socket.close()


# Per address ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_address_cannot_hold_more_sockets_than_the_cap(
    capped: RunningApp, protocol: str
) -> None:
    held = [await _connected(capped, protocol=protocol) for _ in range(PER_IP)]
    extra = await _open(capped, protocol)
    assert await close_code(extra) == 4429
    assert _sockets(capped).metrics()["refused_per_ip"] == 1
    for socket in held:
        await socket.close()


async def test_behind_a_trusted_proxy_each_client_address_has_its_own_cap(
    behind_proxy: RunningApp,
) -> None:
    held = [await _connected(behind_proxy, forwarded_for="203.0.113.7") for _ in range(PER_IP)]
    refused = await _open(behind_proxy, forwarded_for="203.0.113.7")
    assert await close_code(refused) == 4429
    other = await _connected(behind_proxy, forwarded_for="203.0.113.8")
    assert _sockets(behind_proxy).open_for(ip="203.0.113.8") == 1
    for socket in (*held, other):
        await socket.close()


async def test_a_forged_forwarded_for_does_not_escape_the_address_cap(
    no_proxy: RunningApp,
) -> None:
    capped = no_proxy
    # No trusted proxy (the default): the header is nobody's word, the TCP peer counts.
    held = [
        await _connected(capped, forwarded_for=f"198.51.100.{number}") for number in range(PER_IP)
    ]
    refused = await _open(capped, forwarded_for="198.51.100.99")
    assert await close_code(refused) == 4429
    for socket in held:
        await socket.close()


# Idle, unauthenticated --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_idle_unauthenticated_socket_is_closed_with_4408(
    capped: RunningApp, protocol: str
) -> None:
    anonymous = await _connected(capped, protocol=protocol)
    assert await close_code(anonymous, timeout=IDLE_SECONDS * 5) == 4408
    assert _sockets(capped).metrics()["closed_idle"] == 1


async def test_a_legacy_socket_that_never_sends_connection_init_is_closed_with_4408(
    capped: RunningApp,
) -> None:
    silent = await _open(capped, LEGACY_WS)
    assert await close_code(silent, timeout=IDLE_SECONDS * 5) == 4408


async def test_an_authenticated_socket_may_idle_past_the_timeout(capped: RunningApp) -> None:
    alice = await register(capped.http)
    socket = await _connected(capped, alice.token)
    await asyncio.sleep(IDLE_SECONDS * 2.5)
    await socket.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), 5)) == {"type": "pong"}
    await socket.close()


# Slots never leak -------------------------------------------------------------------------


async def test_a_socket_releases_its_slots_however_it_ends(capped: RunningApp) -> None:
    alice = await register(capped.http)
    sockets = _sockets(capped)
    for _ in range(PER_IP + 1):
        # Dropped (TCP reset) before connection_init.
        dropped = await _open(capped)
        dropped.transport.abort()
        # Dropped mid-handshake: connection_init sent, gone before the answer.
        mid_handshake = await _open(capped)
        payload = {"authorization": f"Bearer {alice.token}"}
        await mid_handshake.send(json.dumps({"type": "connection_init", "payload": payload}))
        mid_handshake.transport.abort()
        # Refused at connect: an unusable token.
        refused = await _open(capped, LEGACY_WS)
        await _init(refused, "garbage")
        assert await close_code(refused) == 4401
        # Closed by the server for a malformed frame.
        malformed = await _connected(capped, alice.token)
        await malformed.send(b"\x00binary")
        assert await close_code(malformed) == 4400
        # Authenticated, then dropped.
        held = await _connected(capped, alice.token)
        held.transport.abort()
    await _until(lambda: sockets.metrics()["open"] == 0)
    assert sockets.metrics()["authenticated"] == 0
    # The caps admit as many as before.
    full = [await _connected(capped, alice.token) for _ in range(PER_USER)]
    full += [await _connected(capped) for _ in range(PER_IP - PER_USER)]
    assert sockets.metrics()["open"] == PER_IP
    for socket in full:
        await socket.close()
    await _until(lambda: sockets.metrics()["open"] == 0)
