"""The comparison baseline for bench/latency.py: a bare starlette app, no GraphQL.

It does the same persisted work as a chatr send, in spirit, with nothing on top:

* `POST /send` `{"conversationId", "body"}`: one transaction takes the next seq with
  `UPDATE bench_conversations SET last_seq = last_seq + 1 ... RETURNING` and inserts the row into
  `bench_messages` (asyncpg pool), then PUBLISHes a small JSON on Redis (redis-py asyncio) and
  answers `{"id", "seq", "body"}`;
* `WS /ws?conversation=<id>`: one redis-py `PubSub` per connection; once Redis confirmed the
  SUBSCRIBE it sends `{"type": "ready"}`, then forwards every published JSON as a text frame.

bench/latency.py creates the tables and runs this as two uvicorn processes; it is not meant to be
deployed. Configuration comes from the environment: `BASELINE_DATABASE_URL` (a plain
`postgresql://` URL), `REDIS_URL` and `BASELINE_CHANNEL_PREFIX`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SUBSCRIBE_TIMEOUT = 5.0

NEXT_SEQ = """
UPDATE bench_conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq
"""
INSERT_MESSAGE = """
INSERT INTO bench_messages (conversation_id, seq, body) VALUES ($1, $2, $3) RETURNING id
"""


@dataclass
class Services:
    pool: asyncpg.Pool
    redis: Redis
    prefix: str

    def channel(self, conversation_id: int) -> str:
        return f"{self.prefix}:conversation:{conversation_id}"


def _services(request: Request | WebSocket) -> Services:
    return request.app.state.services


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def send(request: Request) -> Response:
    services = _services(request)
    payload = await request.json()
    conversation_id = int(payload["conversationId"])
    body = str(payload["body"])
    async with services.pool.acquire() as connection, connection.transaction():
        seq = await connection.fetchval(NEXT_SEQ, conversation_id)
        if seq is None:
            return JSONResponse({"error": "no such conversation"}, status_code=404)
        message_id = await connection.fetchval(INSERT_MESSAGE, conversation_id, seq, body)
    event = {"id": message_id, "conversationId": conversation_id, "seq": seq, "body": body}
    await services.redis.publish(services.channel(conversation_id), json.dumps(event))
    return JSONResponse({"id": message_id, "seq": seq, "body": body})


async def wait_subscribed(pubsub: PubSub, kind: str = "subscribe") -> None:
    """Until Redis confirms the (p)subscription: what is published afterwards arrives."""
    async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
        while True:
            message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            if message is not None and message["type"] == kind:
                return


async def _forward(pubsub: PubSub, websocket: WebSocket) -> None:
    async for message in pubsub.listen():
        if message["type"] == "message":
            await websocket.send_text(message["data"])


async def _until_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def ws(websocket: WebSocket) -> None:
    services = _services(websocket)
    conversation_id = int(websocket.query_params["conversation"])
    await websocket.accept()
    pubsub = services.redis.pubsub()
    try:
        await pubsub.subscribe(services.channel(conversation_id))
        await wait_subscribed(pubsub)
        await websocket.send_text(json.dumps({"type": "ready"}))
        tasks = [
            asyncio.create_task(_forward(pubsub, websocket)),
            asyncio.create_task(_until_disconnect(websocket)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # a failed forwarder surfaces in the server log
    finally:
        await pubsub.aclose()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=2, max_size=10)
    redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    app.state.services = Services(pool, redis, os.environ.get("BASELINE_CHANNEL_PREFIX", "bench"))
    try:
        yield
    finally:
        await redis.aclose()
        await pool.close()


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/send", send, methods=["POST"]),
        WebSocketRoute("/ws", ws),
    ],
    lifespan=lifespan,
)
