"""Subscriptions through the real `gql` client, consumed in the background; and raw sockets
(`connect`, `ack`, `close_code`) for tests of the connection itself (auth, watch, caps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

CONVERSATION_EVENTS = """
subscription Conversation($id: ID!, $afterSeq: Int) {
  conversationEvents(conversationId: $id, afterSeq: $afterSeq) {
    __typename conversationId cursor
    ... on MessagePostedEvent { message { seq body sender { id } } }
    ... on ReceiptUpdatedEvent { user { id } lastReadSeq lastDeliveredSeq }
    ... on TypingEvent { user { id } typing }
  }
}
"""
MY_EVENTS = """
subscription Mine($after: String) {
  myEvents(after: $after) {
    __typename conversationId cursor
    ... on MessagePostedEvent { message { seq body sender { id } } }
    ... on ReceiptUpdatedEvent { user { id } lastReadSeq }
    ... on TypingEvent { user { id } typing }
  }
}
"""


class Feed:
    """Results of one running subscription, in arrival order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def take(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        return [await self.next(timeout) for _ in range(count)]

    async def next_of(self, typename: str, timeout: float = 10) -> dict[str, Any]:
        """The next event of one type, skipping others (e.g. receipts between messages)."""
        while True:
            event = await self.next(timeout)
            if event["__typename"] == typename:
                return event

    def empty(self) -> bool:
        return self.queue.empty()


@asynccontextmanager
async def subscribe(
    ws_url: str,
    token: str,
    document: str,
    variables: dict[str, Any] | None = None,
    *,
    protocol: str = TRANSPORT_WS,
) -> AsyncIterator[Feed]:
    """Open a socket, start the subscription and wait until the server has set it up."""
    transport = WebsocketsTransport(
        url=ws_url, init_payload={"authorization": f"Bearer {token}"}, subprotocols=[protocol]
    )
    feed = Feed()
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:

        async def pump() -> None:
            try:
                request = gql(document)
                request.variable_values = variables
                async for result in session.subscribe(request):
                    (event,) = result.values()
                    await feed.queue.put(event)
            except Exception as error:
                await feed.queue.put(error)

        # No waiting for "subscribed": tests pass a cursor, so whatever happens after this
        # point arrives by replay or live, and ephemeral checks first await a durable probe.
        task = asyncio.create_task(pump())
        try:
            yield feed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def connect(ws_url: str, token: str, protocol: str = TRANSPORT_WS) -> ClientConnection:
    """A raw socket that has sent `connection_init` with `token` (the answer is not read)."""
    socket = await websockets.connect(ws_url, subprotocols=[protocol])  # type: ignore[list-item]
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    return socket


async def ack(socket: ClientConnection) -> dict[str, Any]:
    """The server's answer to `connection_init`, which must be `connection_ack`."""
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert message["type"] == "connection_ack", message
    return message


async def close_code(socket: ClientConnection, timeout: float = 15) -> int | None:
    """The code the server closes `socket` with; frames until then are skipped."""

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in socket:
                pass

    await asyncio.wait_for(drain(), timeout)
    return socket.close_code
