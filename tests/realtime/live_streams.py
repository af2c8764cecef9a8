"""In-process live subscriptions for the hub's fault and load tests.

They run the real stream service (attach, replay, adoption, live) without a socket in
between, so a test can hold thousands of them and time each event's arrival precisely.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import StreamItem
from chatr.runtime import Runtime
from chatr.services import streams


class Stream:
    """One running subscription: the durable events it yielded, each with its arrival time."""

    def __init__(self, items: AsyncIterator[StreamItem]) -> None:
        self.received: asyncio.Queue[tuple[LoggedEvent, float] | BaseException] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(items))

    @classmethod
    def conversation(
        cls, rt: Runtime, *, viewer_id: int, conversation_id: int, after_seq: int | None = None
    ) -> Stream:
        return cls(
            streams.conversation_events(
                rt, viewer_id=viewer_id, conversation_id=conversation_id, after_seq=after_seq
            )
        )

    async def _pump(self, items: AsyncIterator[StreamItem]) -> None:
        try:
            async for item in items:
                if isinstance(item, LoggedEvent):
                    self.received.put_nowait((item, time.perf_counter()))
        except Exception as error:
            self.received.put_nowait(error)

    async def next(self, timeout: float = 10) -> tuple[LoggedEvent, float]:
        """The next event and when it arrived; raises the error that ended the stream."""
        item = await asyncio.wait_for(self.received.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def next_event(self, timeout: float = 10) -> LoggedEvent:
        return (await self.next(timeout))[0]

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def running(stream: Stream) -> AsyncIterator[Stream]:
    try:
        yield stream
    finally:
        await stream.close()
