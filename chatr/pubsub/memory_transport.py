"""In-process transport for the embedded default (one process, one Broker).

It wraps broadcaster's `MemoryBackend`, the one part of broadcaster that passes our tests when the
Broker does the fan-out, reference counting and queue bounds around it. Nothing can disconnect,
so a Broker on this transport never needs to send RESYNC. Each instance is its own bus: two
Brokers only see each other's messages through a real transport such as Redis.
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster._backends.memory import MemoryBackend


class MemoryTransport:
    """The Broker's `Transport` protocol over broadcaster's in-process backend."""

    def __init__(self) -> None:
        self._backend = MemoryBackend("memory://")
        self._channels: set[str] = set()  # mirrors the backend's, which is private
        self._opened = False
        self._closed = False

    async def _open(self) -> None:
        # MemoryBackend.connect() only creates its queue; publishing works before the owner
        # task first connects, as it does with Redis.
        if self._closed:
            raise ConnectionError("the memory transport is closed")
        if not self._opened:
            await self._backend.connect()
            self._opened = True

    async def connect(self) -> None:
        await self._open()

    async def disconnect(self) -> None:
        """Forget the subscriptions, as a dropped Redis connection would (the Broker only
        disconnects after a failure, and then resubscribes what is still wanted)."""
        await self.unsubscribe(list(self._channels))

    async def subscribe(self, channels: Sequence[str]) -> None:
        for channel in channels:
            await self._backend.subscribe(channel)
            self._channels.add(channel)

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        # MemoryBackend.unsubscribe raises KeyError for an unknown channel; Redis does not.
        for channel in channels:
            if channel in self._channels:
                await self._backend.unsubscribe(channel)
                self._channels.discard(channel)

    async def ping(self) -> None:
        """Always alive."""

    async def next_message(self) -> tuple[str, str]:
        event = await self._backend.next_published()
        return event.channel, event.message

    async def publish(self, channel: str, data: str) -> None:
        await self._open()
        await self._backend.publish(channel, data)

    async def aclose(self) -> None:
        self._closed = True
        await self._backend.disconnect()

    @property
    def subscribed(self) -> frozenset[str]:
        """Channels currently subscribed on the bus (for tests and diagnostics)."""
        return frozenset(self._channels)
