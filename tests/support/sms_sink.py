"""A real SMS webhook on a free loopback port that keeps what it receives.

A tiny starlette app under uvicorn, in the test's event loop. It can be told to fail the next
few requests (to prove retries) and to hold requests until released (to prove the API answers
before the text is sent).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.services import free_port

CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class ReceivedSms:
    to: str
    body: str
    authorization: str | None


@dataclass
class SmsSink:
    port: int
    #: Texts the sink accepted (answered 2xx), in order.
    messages: list[ReceivedSms] = field(default_factory=list)
    #: Every request that reached it, failed ones included.
    attempts: int = 0
    _failures: list[int] = field(default_factory=list)
    _gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._gate.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    def fail_next(self, count: int, *, status: int = 500) -> None:
        """Answer the next `count` requests with `status` instead of accepting them."""
        self._failures.extend([status] * count)

    def hold(self) -> None:
        """Keep every request waiting (unanswered, not recorded) until `release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def texts_to(self, phone: str) -> list[ReceivedSms]:
        return [m for m in self.messages if m.to == phone]

    async def next_code(self, phone: str, *, after: int = 0, timeout: float = 5) -> str:
        """The code in the first text to `phone` beyond the `after` already seen."""
        async with asyncio.timeout(timeout):
            while len(self.texts_to(phone)) <= after:
                await asyncio.sleep(0.02)
        body = self.texts_to(phone)[after].body
        match = CODE.search(body)
        assert match, body
        return match.group(1)

    async def _receive(self, request: Request) -> JSONResponse:
        self.attempts += 1
        payload: dict[str, Any] = await request.json()
        await self._gate.wait()
        if self._failures:
            return JSONResponse({"error": "provider down"}, status_code=self._failures.pop(0))
        self.messages.append(
            ReceivedSms(
                to=payload["to"],
                body=payload["body"],
                authorization=request.headers.get("authorization"),
            )
        )
        return JSONResponse({"id": len(self.messages)}, status_code=202)


@asynccontextmanager
async def running_sms_sink() -> AsyncIterator[SmsSink]:
    sink = SmsSink(port=free_port())
    app = Starlette(routes=[Route("/sms", sink._receive, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=sink.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the SMS sink stopped before it started")
            await asyncio.sleep(0.01)
        yield sink
    finally:
        sink.release()
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
