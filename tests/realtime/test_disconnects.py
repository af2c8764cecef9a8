"""Clients that vanish mid-setup leave nothing running on the server."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.support.api import register
from tests.support.servers import RunningApp
from tests.support.ws import MY_EVENTS, TRANSPORT_WS


async def _subscriber_count(server: RunningApp) -> tuple[int, int, int]:
    """Broker subscribers, live-event taps, and channels those taps hold."""
    live = server.runtime.live.metrics()
    return server.runtime.broker.metrics()["subscribers"], live["taps"], live["channels"]


async def test_client_that_disconnects_right_after_subscribing_leaves_no_subscription(
    server: RunningApp,
) -> None:
    assert server.ws_url
    alice = await register(server.http)
    baseline = await _subscriber_count(server)
    for _ in range(20):
        # given a client that subscribes and hangs up without waiting for anything
        socket = await websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
        await socket.send(
            json.dumps(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}
            )
        )
        await socket.recv()
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": MY_EVENTS}})
        )
        await socket.close()
    # then every server-side subscription (and connection watcher) ends promptly
    async with asyncio.timeout(5):
        while await _subscriber_count(server) != baseline:
            await asyncio.sleep(0.02)
