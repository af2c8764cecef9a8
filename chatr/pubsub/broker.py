"""A small supervised pub/sub fan-out: one transport subscription per process, many local readers.

Why not `broadcaster.Broadcast`: measured on this machine it loses concurrent first subscribers
(check-await-assign race), its Redis listener dies silently after a restart, and its queues are
unbounded (see docs/architecture.md, "Pub/sub"). This module keeps its shape
(`publish(channel, data)`, `async with subscribe(channel)`) and fixes the behaviour:

* One owner task per Broker is the only code that opens the subscription connection or sends
  SUBSCRIBE/UNSUBSCRIBE. Subscribers only change local reference counts and await a Future the
  owner resolves, so cancelling a subscriber can never interrupt a half-sent command (redis-py
  8.0/8.1 swallow cancellation inside `PubSub.subscribe()`; here nobody but the owner is in there).
* A channel is subscribed on the transport when its first local subscriber arrives and
  unsubscribed when the last one leaves; the owner reconciles "wanted" against "live" in order.
* Every subscriber has one bounded queue; a subscriber that falls `queue_size` messages behind is
  cut with `SubscriberOverflow` and resumes from its cursor. Nobody else slows down.
* When the connection breaks, the owner reconnects with capped exponential backoff, resubscribes
  every wanted channel and only then hands `RESYNC` to every subscriber: messages published while
  it was down are gone, the database still has them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from chatr.redis_lane import RedisCommands

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One published message, as a subscriber sees it."""

    channel: str  # the logical channel name, without the deployment prefix
    data: str


class Resync:
    """Marker yielded after the transport reconnected: messages may have been missed.

    The subscriber should re-read from the database after its cursor; live messages follow.
    """

    _instance: Resync | None = None

    def __new__(cls) -> Resync:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = Resync()


class SubscriberOverflow(Exception):
    """Raised from a subscriber's iteration when its bounded queue overflowed.

    The subscriber has been cut from all its channels; resubscribe and resume from the cursor.
    """

    def __init__(self, queue_size: int) -> None:
        super().__init__(queue_size)
        self.queue_size = queue_size

    def __str__(self) -> str:
        return (
            f"subscriber fell more than {self.queue_size} messages behind and was cut off; "
            "resubscribe and resume from the last cursor you processed"
        )


class BrokerUnavailable(Exception):
    """The message could not be published, even after one retry (or the broker is stopped)."""


class Transport(Protocol):
    """What the Broker needs from a message bus. Connection failures raise `ConnectionError`.

    `connect`, `disconnect`, `subscribe`, `unsubscribe`, `ping` are called by the owner task
    only; `next_message` by the reader task of the current connection; `publish` by anyone.
    """

    async def connect(self) -> None:
        """Open the subscription connection (no channels subscribed)."""

    async def disconnect(self) -> None:
        """Close the subscription connection; a pending `next_message` fails."""

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe; return once the transport acknowledged every channel."""

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        """Unsubscribe; return once acknowledged."""

    async def ping(self) -> None:
        """Round-trip on the subscription connection, to detect a dead peer."""

    async def next_message(self) -> tuple[str, str]:
        """The next (channel, data) published on a subscribed channel."""

    def publish(self, channel: str, data: str) -> Awaitable[None]:
        """Publish on a connection separate from the subscription connection: an awaitable
        (a future that is already on its way, or a coroutine the broker runs as a task)."""

    async def aclose(self) -> None:
        """Release everything, including the publishing connections."""


class Backoff:
    """Capped exponential delays: initial, 2x, 4x, ... up to `maximum`; `reset()` on success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial


class Subscriber:
    """A local reader of any number of channels, through one bounded queue.

    Iterate it for `Message`s and `RESYNC`. Iteration raises `SubscriberOverflow` once it was cut
    for falling behind, and ends (StopAsyncIteration) when the broker stops.
    """

    def __init__(self, broker: Broker, queue_size: int) -> None:
        self._broker = broker
        self._queue_size = queue_size
        self._items: deque[Message | Resync] = deque()
        self._wakeup = asyncio.Event()
        self._channels: set[str] = set()
        self._ended = False
        self._overflowed = False

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    @property
    def pending(self) -> int:
        """Messages queued and not yet read (never more than the broker's queue_size)."""
        return len(self._items)

    async def add(self, channel: str) -> None:
        """Listen to `channel`; returns once it is live on the transport (idempotent).

        Callers may then replay from the database: anything published after this returns is
        delivered. If the broker stops meanwhile, this returns and iteration ends at once.
        """
        while not self._ended:
            added_here = channel not in self._channels
            if added_here:
                self._channels.add(channel)
                self._broker._attach(self, channel)
            try:
                await self._broker._until_live(channel)
            except BaseException:
                # Cancelled mid-setup: leave no reference behind, so the owner unsubscribes
                # the channel again if we were its only subscriber.
                if added_here:
                    self._detach(channel)
                raise
            if channel in self._channels:
                return
            # A concurrent add() of this channel attached it and was cancelled: attach again.

    def remove(self, channel: str) -> None:
        """Stop listening to `channel`; the transport unsubscribes when nobody else listens.

        Synchronous, so it can run in cleanup that must not be interrupted.
        """
        self._detach(channel)

    def _detach(self, channel: str) -> None:
        if channel in self._channels:
            self._channels.discard(channel)
            self._broker._detach(self, channel)

    def __aiter__(self) -> AsyncIterator[Message | Resync]:
        return self

    async def __anext__(self) -> Message | Resync:
        while True:
            if self._overflowed:
                raise SubscriberOverflow(self._queue_size)
            if self._items:
                return self._items.popleft()
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def _offer(self, item: Message | Resync) -> bool:
        """Queue without blocking; False means the queue is full and the subscriber must go."""
        if self._ended:
            return True
        if len(self._items) >= self._queue_size:
            return False
        self._items.append(item)
        self._wakeup.set()
        return True

    def _end(self, *, overflowed: bool = False) -> None:
        if overflowed:
            self._overflowed = True
            self._items.clear()  # the reader resumes from its cursor; free the memory now
        self._ended = True
        self._wakeup.set()


class Broker:
    """Local fan-out hub over one transport subscription connection, with supervision.

    `start()` launches the owner task and returns at once; `ready` says whether the transport
    is connected and every wanted channel is subscribed.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        prefix: str = "chatr",
        queue_size: int = 1000,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        command_timeout: float = 2.0,
        health_check_interval: float = 5.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._transport = transport
        self._prefix = f"{prefix}:"
        self._queue_size = queue_size
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._command_timeout = command_timeout
        self._health_check_interval = health_check_interval
        # Wanted: logical channel -> its local subscribers (the reference count).
        self._channels: dict[str, set[Subscriber]] = {}
        # Live: channels the transport acknowledged on the current connection.
        self._live: set[str] = set()
        # add() calls waiting for their channel to become live.
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._subscribers: set[Subscriber] = set()
        self._changed = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self._ready = False
        self._stopped = False
        self._connections = 0
        self._counters = dict.fromkeys(
            (
                "published",
                "publish_retries",
                "publish_failures",
                "received",
                "delivered",
                "overflows",
                "reconnects",
            ),
            0,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._owner is not None:
            raise RuntimeError("Broker.start() was already called")
        self._owner = asyncio.create_task(self._run(), name="chatr-pubsub-owner")

    async def stop(self) -> None:
        """End every subscriber's iteration, stop the owner task, close the transport."""
        if self._stopped:
            return
        self._stopped = True
        if self._owner is not None:
            self._owner.cancel()
            await asyncio.wait([self._owner])
        self._ready = False
        for sub in self._subscribers:
            sub._end()
        for waiters in self._waiters.values():
            _resolve(waiters)
        self._waiters.clear()
        await self._transport.aclose()

    @property
    def ready(self) -> bool:
        return self._ready

    def metrics(self) -> dict[str, int]:
        return {
            **self._counters,
            "subscribers": len(self._subscribers),
            "channels": len(self._channels),
            "live_channels": len(self._live),
            "ready": int(self._ready),
        }

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, channel: str, data: str) -> None:
        """Publish `data` and wait for the bus's answer (`publish_soon`'s outcome), bounded by
        the command timeout in case a transport does not bound its own."""
        try:
            async with asyncio.timeout(self._command_timeout):
                await self.publish_soon(channel, data)
        except TimeoutError:
            raise BrokerUnavailable(f"could not publish to {channel!r}: no answer") from None

    def publish_soon(self, channel: str, data: str) -> asyncio.Future[None]:
        """Start publishing `data`; the future answers None once the bus took it, or
        BrokerUnavailable after one retry (which covers a stale connection) failed too.

        Nothing waits for it unless the caller does: a mutation announces its committed
        change and answers without a round trip to Redis (chatr.pubsub.announcer), and the
        transport's own timeout bounds the attempt (the Redis lane's batch deadline).
        """
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stopped:
            outcome.set_exception(BrokerUnavailable("the broker is stopped"))
        else:
            self._attempt_publish(channel, data, outcome, retried=False)
        return outcome

    def _attempt_publish(
        self, channel: str, data: str, outcome: asyncio.Future[None], *, retried: bool
    ) -> None:
        sent: asyncio.Future[None]
        try:
            sent = asyncio.ensure_future(self._transport.publish(self._prefix + channel, data))
        except Exception as error:  # (a transport that refuses before sending anything)
            sent = asyncio.get_running_loop().create_future()
            sent.set_exception(error)
        sent.add_done_callback(
            lambda done: self._publish_answered(channel, data, outcome, done, retried=retried)
        )

    def _publish_answered(
        self,
        channel: str,
        data: str,
        outcome: asyncio.Future[None],
        sent: asyncio.Future[None],
        *,
        retried: bool,
    ) -> None:
        error: BaseException | None = (
            ConnectionError("the publish was cancelled") if sent.cancelled() else sent.exception()
        )
        if error is None:
            self._counters["published"] += 1
            if not outcome.done():
                outcome.set_result(None)
            return
        if isinstance(error, (ConnectionError, TimeoutError)):
            if not retried:
                self._counters["publish_retries"] += 1
                log.info("publish to %s failed (%s); retrying once", channel, error)
                self._attempt_publish(channel, data, outcome, retried=True)
                return
            self._counters["publish_failures"] += 1
            error = BrokerUnavailable(f"could not publish to {channel!r}: {error}")
        if not outcome.done():
            outcome.set_exception(error)

    # -- subscribing -----------------------------------------------------------------------

    @asynccontextmanager
    async def subscriber(self, *, queue_size: int | None = None) -> AsyncIterator[Subscriber]:
        """A subscriber with no channels yet; leaving the block releases all its channels.

        `queue_size` overrides the broker's default bound for this subscriber.
        """
        if self._owner is None:
            raise RuntimeError("call Broker.start() before subscribing")
        if self._stopped:
            raise BrokerUnavailable("the broker is stopped")
        sub = Subscriber(self, queue_size or self._queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            # Synchronous on purpose: cleanup cannot be interrupted by a second cancellation.
            for channel in sub.channels:
                sub._detach(channel)
            self._subscribers.discard(sub)
            sub._end()

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:
        """`subscriber()` already listening to `channel` (live when the block starts)."""
        async with self.subscriber() as sub:
            await sub.add(channel)
            yield sub

    def _attach(self, sub: Subscriber, channel: str) -> None:
        subs = self._channels.setdefault(channel, set())
        subs.add(sub)
        if len(subs) == 1:
            self._changed.set()

    def _detach(self, sub: Subscriber, channel: str) -> None:
        subs = self._channels.get(channel)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._channels[channel]
            self._changed.set()
            # Anyone still waiting lost the attachment it waited on; let it re-check.
            _resolve(self._waiters.pop(channel, ()))

    async def _until_live(self, channel: str) -> None:
        if channel in self._live or self._stopped:
            return
        # One Future per waiter: cancelling this caller cancels nothing the owner shares.
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(channel, set())
        waiters.add(waiter)
        try:
            await waiter
        finally:
            waiters.discard(waiter)
            if not waiters and self._waiters.get(channel) is waiters:
                del self._waiters[channel]

    # -- the owner task --------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, and on any failure reconnect with capped exponential backoff."""
        backoff = Backoff(self._backoff_initial, self._backoff_max)
        failures = 0
        while True:
            connections = self._connections
            try:
                await self._session(backoff)
            except (ConnectionError, TimeoutError) as error:
                failures = 1 if self._connections > connections else failures + 1
                # One warning per outage; a long outage's retries go to debug.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "pub/sub connection lost or unavailable: %s", error)
            except Exception:
                log.exception("pub/sub owner failed; reconnecting")
            await asyncio.sleep(backoff.next())

    async def _session(self, backoff: Backoff) -> None:
        """One connection's life; returns only by raising."""
        await self._bounded(self._transport.connect())  # a hung server accepts, never answers
        reader = asyncio.create_task(self._read(), name="chatr-pubsub-reader")
        reader.add_done_callback(lambda _: self._changed.set())
        try:
            await self._sync(reader)
            self._ready = True
            backoff.reset()
            self._connections += 1
            if self._connections > 1:
                self._counters["reconnects"] += 1
                log.info("pub/sub reconnected; %d channels resubscribed", len(self._live))
                # Only now: every channel is live again, so nothing after RESYNC is missed.
                self._broadcast(RESYNC)
            while True:
                try:
                    async with asyncio.timeout(self._health_check_interval):
                        await self._changed.wait()
                except TimeoutError:
                    await self._bounded(self._transport.ping())
                await self._sync(reader)
        finally:
            self._ready = False
            self._live.clear()
            reader.cancel()
            await asyncio.wait([reader])
            if not reader.cancelled():
                reader.exception()  # mark it retrieved: _sync or the transport reported it
            await self._transport.disconnect()

    async def _sync(self, reader: asyncio.Task[None]) -> None:
        """Make the transport's subscriptions equal the wanted channels, one command at a time."""
        self._changed.clear()
        while True:
            if reader.done():
                error = None if reader.cancelled() else reader.exception()
                if isinstance(error, ConnectionError):
                    raise error
                raise ConnectionError(f"the subscription reader stopped: {error!r}") from error
            stale = self._live - self._channels.keys()
            if stale:
                # Not live from now on, so an add() meanwhile waits for the re-SUBSCRIBE.
                self._live -= stale
                await self._bounded(self._transport.unsubscribe(self._keys(stale)))
                continue
            new = self._channels.keys() - self._live
            if not new:
                return
            await self._bounded(self._transport.subscribe(self._keys(new)))
            self._live |= new
            for channel in new:
                _resolve(self._waiters.pop(channel, ()))

    async def _bounded(self, operation: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self._command_timeout):
                await operation
        except TimeoutError:
            raise ConnectionError("the transport did not answer in time") from None

    def _keys(self, channels: Iterable[str]) -> list[str]:
        return [self._prefix + channel for channel in sorted(channels)]

    # -- the reader task -------------------------------------------------------------------

    async def _read(self) -> None:
        prefix_length = len(self._prefix)
        while True:
            key, data = await self._transport.next_message()
            self._counters["received"] += 1
            if key.startswith(self._prefix):
                self._deliver(key[prefix_length:], data)

    def _deliver(self, channel: str, data: str) -> None:
        subs = self._channels.get(channel)
        if not subs:
            return
        message = Message(channel, data)
        overflowed = [sub for sub in subs if not sub._offer(message)]
        self._counters["delivered"] += len(subs) - len(overflowed)
        for sub in overflowed:
            self._cut(sub)

    def _broadcast(self, item: Resync) -> None:
        for sub in [sub for sub in self._subscribers if not sub._offer(item)]:
            self._cut(sub)

    def _cut(self, sub: Subscriber) -> None:
        log.warning("cutting a subscriber that fell %d messages behind", self._queue_size)
        self._counters["overflows"] += 1
        for channel in sub.channels:
            sub._detach(channel)
        sub._end(overflowed=True)


def _resolve(waiters: Iterable[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def uses_redis(url: str) -> bool:
    """Whether a broker URL names a Redis server (else `memory://`, the embedded default)."""
    return urlsplit(url).scheme in ("redis", "rediss", "unix")


def create_broker(
    url: str,
    *,
    prefix: str = "chatr",
    queue_size: int = 1000,
    commands: RedisCommands | None = None,
) -> Broker:
    """`memory://` for the in-process transport, `redis://` / `rediss://` / `unix://` for Redis
    (publishing through `commands`, the instance's shared lane, when given)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from chatr.pubsub.memory_transport import MemoryTransport

        return Broker(MemoryTransport(), prefix=prefix, queue_size=queue_size)
    if uses_redis(url):
        from chatr.pubsub.redis_transport import RedisTransport

        return Broker(RedisTransport(url, commands=commands), prefix=prefix, queue_size=queue_size)
    raise ValueError(f"unsupported broker URL scheme {scheme!r} (use memory:// or redis://)")
