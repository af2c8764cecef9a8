"""The comparison baseline for bench/fanout.py: bare starlette WebSocket fan-out, no GraphQL.

* `POST /send` `{"conversationId", "body"}`: exactly bench/baseline_app.py's handler (the next
  seq and the row inserted in one PostgreSQL transaction, then one PUBLISH on Redis);
* `WS /ws?conversation=<id>`: the socket joins this process's set of sockets for that
  conversation and is sent `{"type": "ready"}`; it receives every message published for the
  conversation from then on, until it disconnects.

Unlike bench/baseline_app.py (one redis-py `PubSub` per socket), this process holds **one**
pattern subscription (`<prefix>:conversation:*`), confirmed by Redis before the app serves,
and for each published message sends the same text to each connected socket of that
conversation, one after the other: no per-subscriber work but the send itself. That is the
floor a GraphQL fan-out can be compared against.

bench/fanout.py creates the tables and runs this as one uvicorn process; it is not meant to be
deployed. Configuration comes from the environment: `BASELINE_DATABASE_URL` (a plain
`postgresql://` URL), `REDIS_URL` and `BASELINE_CHANNEL_PREFIX`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.baseline_app import Services, healthz, send, wait_subscribed

log = logging.getLogger("bench.fanout_baseline_app")

#: conversation id -> the sockets of this process that follow it.
Sockets = dict[int, set[WebSocket]]


async def _fan_out(pubsub: PubSub, sockets: Sockets) -> None:
    """Send every published message to each local socket of its conversation."""
    async for message in pubsub.listen():
        if message["type"] != "pmessage":
            continue
        conversation_id = int(message["channel"].rsplit(":", 1)[1])
        data = message["data"]
        for websocket in list(sockets.get(conversation_id, ())):
            try:
                await websocket.send_text(data)
            except Exception:  # gone meanwhile: its own handler removes it
                log.debug("send to a closing socket failed", exc_info=True)


async def ws(websocket: WebSocket) -> None:
    sockets: Sockets = websocket.app.state.sockets
    conversation_id = int(websocket.query_params["conversation"])
    await websocket.accept()
    members = sockets.setdefault(conversation_id, set())
    members.add(websocket)
    try:
        await websocket.send_text(json.dumps({"type": "ready"}))
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(websocket)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=2, max_size=10)
    redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    services = Services(pool, redis, os.environ.get("BASELINE_CHANNEL_PREFIX", "bench"))
    app.state.services = services
    sockets: Sockets = {}
    app.state.sockets = sockets
    pubsub = redis.pubsub()
    await pubsub.psubscribe(services.channel(0).rsplit(":", 1)[0] + ":*")
    await wait_subscribed(pubsub, "psubscribe")
    fan_out = asyncio.create_task(_fan_out(pubsub, sockets))
    try:
        yield
    finally:
        fan_out.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fan_out
        await pubsub.aclose()
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
