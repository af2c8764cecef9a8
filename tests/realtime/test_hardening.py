"""WebSocket hardening: cross-origin upgrades, frame size, subscriptions per connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from chatr.settings import Settings
from tests.support.api import register
from tests.support.servers import RunningApp, served_app
from tests.support.ws import MY_EVENTS, TRANSPORT_WS


async def _open(
    ws_url: str, token: str, *, origin: str | None = None
) -> websockets.ClientConnection:
    headers = {"Origin": origin} if origin else None
    socket = await websockets.connect(
        ws_url,
        subprotocols=[Subprotocol(TRANSPORT_WS)],
        additional_headers=headers,
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "connection_ack"
    return socket


async def test_websocket_from_another_origin_is_refused(server: RunningApp) -> None:
    assert server.ws_url
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            server.ws_url,
            subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
            additional_headers={"Origin": "https://evil.example"},
        )
    assert refused.value.response.status_code == 403


@pytest.fixture
async def configured(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    tuned = settings.with_overrides(
        allowed_origins=("https://app.example",),
        max_subscriptions_per_connection=2,
        max_websocket_frame_bytes=4096,
    )
    async with served_app(tuned) as running:
        yield running


async def test_an_allowed_origin_may_open_a_websocket(configured: RunningApp) -> None:
    assert configured.ws_url
    alice = await register(configured.http)
    socket = await _open(configured.ws_url, alice.token, origin="https://app.example")
    await socket.close()


async def test_a_frame_over_the_limit_closes_the_socket_with_1009(configured: RunningApp) -> None:
    assert configured.ws_url
    alice = await register(configured.http)
    socket = await _open(configured.ws_url, alice.token)
    oversized = {"id": "1", "type": "subscribe", "payload": {"query": "#" + "x" * 8192}}
    await socket.send(json.dumps(oversized))
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(5):
            async for _ in socket:
                pass
    assert socket.close_code == 1009


async def test_a_connection_cannot_hold_more_than_the_subscription_limit(
    configured: RunningApp,
) -> None:
    assert configured.ws_url
    alice = await register(configured.http)
    socket = await _open(configured.ws_url, alice.token)
    for operation_id in ("1", "2", "3"):
        await socket.send(
            json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": MY_EVENTS}})
        )
    reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert reply["id"] == "3" and reply["type"] == "error"
    assert reply["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    await socket.close()


async def test_the_subscription_limit_has_a_code_on_the_legacy_protocol_too(
    configured: RunningApp,
) -> None:
    assert configured.ws_url
    alice = await register(configured.http)
    socket = await websockets.connect(configured.ws_url, subprotocols=["graphql-ws"])  # type: ignore[list-item]
    await socket.send(
        json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}
        )
    )
    assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "connection_ack"
    for operation_id in ("1", "2", "3"):
        await socket.send(
            json.dumps({"id": operation_id, "type": "start", "payload": {"query": MY_EVENTS}})
        )
    while True:
        reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if reply["type"] != "ka":
            break
    assert reply["id"] == "3" and reply["type"] == "error"
    assert reply["payload"]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    await socket.close()
