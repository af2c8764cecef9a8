"""App instances for tests: in-process lifespan + ASGI client, or a real uvicorn on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from chatr.app import create_app
from chatr.infra.event_log import current_position
from chatr.runtime import Runtime
from chatr.settings import Settings
from tests.support.services import free_port


@dataclass
class RunningApp:
    app: Starlette
    http: httpx.AsyncClient
    #: ws://… when served by uvicorn, else None.
    ws_url: str | None = None

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime

    async def until_live(self, subscriptions: int, *, timeout: float = 10) -> None:
        """Until this instance dispatches to at least `subscriptions` live event streams.

        For tests that subscribe without a cursor: what is sent after this arrives live.
        """
        async with asyncio.timeout(timeout):
            while self.runtime.live.metrics()["live_taps"] < subscriptions:
                await asyncio.sleep(0.01)

    async def until_dispatched(self, *, timeout: float = 10) -> None:
        """Until this instance's dispatch has read the log up to what is committed now.

        For tests that count what dispatch reads from here on: a tap that went live rewinds
        dispatch to where its catch-up ended, and the next round re-reads from there.
        """
        async with self.runtime.db.autocommit_engine.connect() as connection:
            head = await current_position(connection)
        async with asyncio.timeout(timeout):
            while (position := self.runtime.live.position) is None or position < head:
                await asyncio.sleep(0.01)


#: Seconds a test's HTTP request may take. httpx's default (5 s) failed a login on a machine
#: at load average 12 (seen in the Redis-outage test): a timeout here should mean a hang,
#: which this still catches, not a busy machine.
CLIENT_TIMEOUT = 30.0


@asynccontextmanager
async def in_process_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """The app with its lifespan running, reached through httpx's ASGI transport."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://chatr.test", timeout=CLIENT_TIMEOUT
        ) as http:
            yield RunningApp(app=app, http=http)


@asynccontextmanager
async def served_app(settings: Settings, **options: Any) -> AsyncIterator[RunningApp]:
    """The app behind a real uvicorn server on a free loopback port, in this event loop;
    `options` adds uvicorn options (e.g. `chatr.cli.proxy_options`)."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=settings.max_websocket_frame_bytes,
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        base = f"127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=CLIENT_TIMEOUT) as http:
            yield RunningApp(app=app, http=http, ws_url=f"ws://{base}/graphql")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
