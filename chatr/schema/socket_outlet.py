"""One live subscription's end of its WebSocket: the operation it serves and the outlet that
frames each payload and sends it, in order, without letting a stalled client hold anyone up.

The renderer (chatr.schema.broadcast) decides what each subscriber gets; the outlet only
sends it. The protocol handlers (chatr.app) set `LIVE_OPERATION` in each operation's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.types import Message

from chatr.aio import start_eagerly
from chatr.context import Context
from chatr.infra.live import Tap
from chatr.services.auth import Viewer

#: An ASGI send that is a coroutine function (uvicorn's and starlette's are), so a frame's
#: write can start at once in the caller's task (`start_eagerly`).
SocketSend = Callable[[Message], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class LiveOperation:
    """The WebSocket operation a subscription resolver runs for."""

    query: str
    variables: Mapping[str, Any] | None
    operation_name: str | None
    #: The operation's frame up to its payload, e.g. '{"id":"1","type":"next","payload":'.
    frame_head: str
    #: The socket's ASGI send (it takes `{"type": "websocket.send", "text": ...}`).
    send: SocketSend

    @classmethod
    def create(
        cls,
        *,
        legacy: bool,
        operation_id: str,
        query: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
        send: SocketSend,
    ) -> LiveOperation:
        """Results are `next` messages on graphql-transport-ws, `data` on the legacy graphql-ws."""
        frame_id = json.dumps(operation_id)
        head = (
            '{"type":"data","id":' + frame_id + ',"payload":'
            if legacy
            else '{"id":' + frame_id + ',"type":"next","payload":'
        )
        return cls(query, variables, operation_name, head, send)


#: Set by the protocol handlers in each operation's task.
LIVE_OPERATION: ContextVar[LiveOperation | None] = ContextVar("chatr_live_operation", default=None)


class SocketOutlet:
    """One subscription's end of its socket: frames payloads and sends them in order.

    A send to a writable socket completes at once (no task, no queue). When the socket stops
    taking data, later frames wait in a bounded backlog drained by one task; past the bound
    the subscription is cut with SUBSCRIBER_OVERFLOW and its cursor, so a stalled client never
    holds up the fan-out or grows the server's memory.
    """

    def __init__(self, operation: LiveOperation, *, connection: Context, limit: int) -> None:
        self.connection = connection
        self._head = operation.frame_head
        self._send = operation.send
        self._limit = limit
        self._backlog: deque[tuple[str, int | None]] = deque()
        #: A send that had to wait for the socket, and the task that carries on after it.
        self._in_flight: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._tap: Tap | None = None

    @property
    def viewer(self) -> Viewer:
        viewer = self.connection.authenticated_viewer
        assert viewer is not None, "live subscriptions are authenticated"
        return viewer

    def bind(self, tap: Tap) -> None:
        self._tap = tap

    def close(self) -> None:
        # Cancelled, not flushed: the cut's cursor says what the client got, and a frame
        # sent after it would arrive twice once the client resumes from there.
        self._backlog.clear()
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.cancel()
        drainer, self._drainer = self._drainer, None
        if drainer is not None and drainer is not asyncio.current_task():
            drainer.cancel()

    def write(self, payload: str, position: int | None) -> None:
        """Send one payload; `position` is its event id (None for typing)."""
        frame = self._head + payload + "}"
        if self._drainer is not None:
            if len(self._backlog) >= self._limit:
                self._lost(overflow=True)
                return
            self._backlog.append((frame, position))
            return
        try:
            pending = start_eagerly(self._send({"type": "websocket.send", "text": frame}))
        except Exception:
            self._lost()
            return
        if pending is None:
            if position is not None and self._tap is not None:
                self._tap.acknowledged = position
        else:
            self._in_flight = pending
            self._drainer = asyncio.ensure_future(self._drain(pending, position))

    async def _drain(self, pending: asyncio.Future[None], position: int | None) -> None:
        try:
            await pending
            self._in_flight = None
            self._sent(position)
            while self._backlog:
                frame, position = self._backlog.popleft()
                await self._send({"type": "websocket.send", "text": frame})
                self._sent(position)
        except Exception:
            self._lost()
        finally:
            if self._drainer is asyncio.current_task():
                self._drainer = None

    def _sent(self, position: int | None) -> None:
        if position is not None and self._tap is not None:
            self._tap.acknowledged = position

    def _lost(self, *, overflow: bool = False) -> None:
        """The client fell too far behind (overflow) or its socket is gone."""
        if self._tap is None:
            return
        if overflow:
            self._tap.overflowed()
        else:
            with contextlib.suppress(Exception):
                self._tap.end()
