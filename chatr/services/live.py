"""One reader of the event log per instance, fanning out to every live subscription here.

Why: when every subscriber re-read the log on every announcement, a message to a 1,000-member
group cost 1,000 queries on each instance. The hub reads once per round for all its taps (live
subscriptions), learns who of them may see each event in one more query, and hands each item
to all taps that share a renderer at once, so the renderer can work the payload out once for
many of them (see `chatr.schema.broadcast`).

What a tap is promised, as before:
- every durable event it may see after its cursor, once, in log order (the log is only read
  below the horizon, where it is final, so reading "after the position" never skips a late
  commit; see chatr.services.event_log);
- subscribe, then replay: its channels are live before it replays from its cursor, and the hub
  adopts it (catches it up from where its replay ended, then includes it in dispatch) between
  its own rounds, so no event falls between replay and live;
- who may see an event is decided by accepted membership when the event is read, as the
  replay queries decide it; typing reaches the conversations a tap follows;
- a tap that falls `queue_size` items behind is ended with SUBSCRIBER_OVERFLOW and the cursor
  to resume from; nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from chatr.db import Database
from chatr.errors import ChatrError, Forbidden, StreamFailed, SubscriberOverflowError
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Backoff, Broker, Message, Resync, Subscriber, SubscriberOverflow
from chatr.services import event_log
from chatr.services.event_log import LoggedEvent

log = logging.getLogger(__name__)

#: The hub's own broker queue: it only buffers announcements between two rounds.
HUB_QUEUE_SIZE = 100_000
#: Typing signals waiting for a round beyond this are dropped (they are ephemeral).
MAX_PENDING_SIGNALS = 10_000
#: An announced event below no horizon yet (a transaction that started earlier is still
#: running; it may not even write events, so nothing else will wake the hub): read again
#: after this long, doubling up to the maximum while the horizon stays behind.
HORIZON_RETRY_SECONDS = (0.002, 0.05)


@dataclass(frozen=True, slots=True)
class Typing:
    conversation_id: int
    user_id: int
    typing: bool
    expires_at: float


StreamItem = LoggedEvent | Typing
ReadLog = Callable[[int], Awaitable[Sequence[LoggedEvent]]]
#: Hands a rendered item to its taps; called in item order, after the rendering finished.
Deliver = Callable[[], None]


class Renderer(Protocol):
    """Turns one item into what each of `taps` receives.

    Called once per item for all the taps that share the renderer; the returned `Deliver` is
    called later, in item order, so renderings of successive items may overlap.
    """

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver: ...


class Outlet(Protocol):
    """A renderer's per-tap end (a socket writer, say)."""

    def bind(self, tap: Tap) -> None:
        """The tap this outlet serves (to end it when the client falls behind or goes)."""

    def close(self) -> None:
        """The tap ended: drop whatever is still pending."""


class Tap:
    """One live subscription on this instance: a viewer and one conversation, or all theirs.

    Without a renderer of its own, items queue here and the subscription's generator yields
    them; with one, the renderer delivers and the generator only waits for the end.
    """

    def __init__(
        self,
        *,
        viewer_id: int,
        conversation_id: int | None,
        queue_size: int,
        renderer: Renderer | None = None,
        outlet: Outlet | None = None,
    ) -> None:
        self.viewer_id = viewer_id
        #: None: every conversation the viewer is in (myEvents).
        self.conversation_id = conversation_id
        self.renderer: Renderer = renderer or QUEUE
        self.outlet = outlet
        #: The last durable event handed to the renderer (dispatch skips anything up to it).
        self.cursor = 0
        #: The last durable event that reached the client: where it resumes after a cut.
        self.acknowledged = 0
        self.live = False
        #: Conversations whose typing this tap hears.
        self.following: set[int] = set()
        self._queue_size = queue_size
        self._items: deque[StreamItem] = deque()
        self._wakeup = asyncio.Event()
        #: No more deliveries (read on every delivery: a plain attribute, not a property).
        self.ended = False
        self._overflowed = False
        self._error: ChatrError | None = None
        self._hub: LiveHub | None = None
        if outlet is not None:
            outlet.bind(self)

    @property
    def queued(self) -> bool:
        """Whether items reach the client through this tap's own queue (no renderer)."""
        return self.renderer is QUEUE

    def end(self, error: ChatrError | None = None) -> None:
        """Stop delivering; the subscription then ends with `error` (or completes)."""
        if self.ended:
            return
        self.ended = True
        self._error = error
        if error is not None:
            self._items.clear()
        if self.outlet is not None:
            self.outlet.close()
        self._wakeup.set()

    def overflowed(self) -> None:
        """The client fell `queue_size` items behind: cut it (it resumes by cursor)."""
        if self.ended:
            return
        self._overflowed = True
        if self._hub is not None:
            self._hub.counters["overflows"] += 1
        log.warning("cutting a live subscription that fell %d items behind", self._queue_size)
        self._items.clear()
        self.end()

    def offer(self, item: StreamItem) -> None:
        """Queue an item for the subscription's generator (the renderer-less path)."""
        if self.ended:
            return
        if len(self._items) >= self._queue_size:
            self.overflowed()
            return
        self._items.append(item)
        self._wakeup.set()

    async def next_item(self) -> StreamItem:
        """The next queued item; raises the ending error, or StopAsyncIteration once ended."""
        while True:
            if self._items:
                return self._items.popleft()
            if self.ended:
                self._raise_ending()
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    async def until_ended(self) -> None:
        """Wait for the end; raises its error, if any."""
        while not self.ended:
            self._wakeup.clear()
            await self._wakeup.wait()
        self._raise_ending()

    def _raise_ending(self) -> None:
        if self._overflowed:
            # Built now: `acknowledged` has moved on since the cut was decided.
            raise SubscriberOverflowError(
                "This subscription fell too far behind and was closed; "
                "resubscribe with the cursor of the last event you received.",
                cursor=str(self.acknowledged),
            )
        if self._error is not None:
            raise self._error


class _QueueRenderer:
    """The renderer-less path: each tap's generator gets the item itself."""

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver:
        def deliver() -> None:
            for tap in taps:
                tap.offer(item)

        return deliver


QUEUE = _QueueRenderer()


class LiveHub:
    """The instance's fan-out: one broker subscriber, one log reader, every tap."""

    def __init__(self, *, db: Database, broker: Broker) -> None:
        self._db = db
        self._broker = broker
        self._taps: set[Tap] = set()
        #: conversationEvents taps by conversation; myEvents taps by viewer.
        self._by_conversation: dict[int, set[Tap]] = {}
        self._by_user: dict[int, set[Tap]] = {}
        #: Who hears each conversation's typing.
        self._followers: dict[int, set[Tap]] = {}
        #: Channels the taps need, with reference counts, and their SUBSCRIBE in flight.
        self._refs: dict[str, int] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._sub: Subscriber | None = None
        self._sub_ready = asyncio.Event()
        #: Every event up to here has been dispatched (None: no tap, so nothing to track).
        self._position: int | None = None
        #: The highest position announced so far; above `_position`: read again soon.
        self._announced = 0
        self._horizon_retry: asyncio.TimerHandle | None = None
        self._horizon_delay = HORIZON_RETRY_SECONDS[0]
        self._dirty = False
        self._signals: deque[tuple[str, envelopes.Envelope]] = deque()
        self._adoptions: deque[tuple[Tap, int, ReadLog, asyncio.Future[None]]] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.counters = dict.fromkeys(
            ("rounds", "events", "deliveries", "renders", "executions", "overflows"), 0
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="chatr-live-listener"),
            asyncio.create_task(self._dispatch_forever(), name="chatr-live-dispatcher"),
        ]

    async def stop(self) -> None:
        if self._horizon_retry is not None:
            self._horizon_retry.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for tap in list(self._taps):
            tap.end()

    def metrics(self) -> dict[str, int]:
        return {
            **self.counters,
            "taps": len(self._taps),
            "live_taps": sum(tap.live for tap in self._taps),
            "channels": len(self._refs),
        }

    # -- taps ------------------------------------------------------------------------------

    @asynccontextmanager
    async def attach(self, tap: Tap) -> AsyncIterator[None]:
        """Keep `tap` here for the block; its channels are live when the block starts.

        A myEvents tap listens to its viewer's channel (new conversations); a conversation tap
        follows its conversation. Leaving the block forgets the tap and ends it.
        """
        tap._hub = self
        self._taps.add(tap)
        if tap.conversation_id is None:
            self._by_user.setdefault(tap.viewer_id, set()).add(tap)
            ready = [self._acquire(channels.user(tap.viewer_id))]
        else:
            self._by_conversation.setdefault(tap.conversation_id, set()).add(tap)
            ready = [self._follow(tap, tap.conversation_id)]
        try:
            for future in ready:
                await asyncio.shield(future)
            yield
        finally:
            self._forget(tap)

    async def follow(self, tap: Tap, conversation_ids: Iterable[int]) -> None:
        """Let `tap` hear these conversations' typing; returns once their channels are live."""
        for future in [self._follow(tap, c) for c in conversation_ids]:
            await asyncio.shield(future)

    async def go_live(self, tap: Tap, *, cursor: int, read: ReadLog) -> None:
        """Catch `tap` up from `cursor` with `read`, then dispatch to it from there on.

        Runs in the hub's task between rounds, so no event can slip between the catch-up and
        the first dispatch.
        """
        done = asyncio.get_running_loop().create_future()
        self._adoptions.append((tap, cursor, read, done))
        self._wakeup.set()
        await done

    def _forget(self, tap: Tap) -> None:
        self._taps.discard(tap)
        if not self._taps:
            # Nobody listens: the next tap starts from the present instead of having the hub
            # scan everything that happened meanwhile.
            self._position = None
        if tap.conversation_id is None:
            _discard(self._by_user, tap.viewer_id, tap)
            self._release(channels.user(tap.viewer_id))
        else:
            _discard(self._by_conversation, tap.conversation_id, tap)
        for conversation_id in list(tap.following):
            self._unfollow(tap, conversation_id)
        tap.end()

    def _follow(self, tap: Tap, conversation_id: int) -> asyncio.Future[None]:
        channel = channels.conversation(conversation_id)
        if conversation_id in tap.following:
            return self._ready.get(channel) or _done()
        tap.following.add(conversation_id)
        self._followers.setdefault(conversation_id, set()).add(tap)
        return self._acquire(channel)

    def _unfollow(self, tap: Tap, conversation_id: int) -> None:
        if conversation_id not in tap.following:
            return
        tap.following.discard(conversation_id)
        _discard(self._followers, conversation_id, tap)
        self._release(channels.conversation(conversation_id))

    # -- channels --------------------------------------------------------------------------

    def _acquire(self, channel: str) -> asyncio.Future[None]:
        """Count one more user of `channel`; the future is done once it is live."""
        self._refs[channel] = self._refs.get(channel, 0) + 1
        ready = self._ready.get(channel)
        if ready is None:
            # A task of its own: a tap cancelled mid-setup must not cancel a SUBSCRIBE that
            # other taps of the same channel wait on.
            ready = self._ready[channel] = asyncio.ensure_future(self._subscribe(channel))
        return ready

    def _release(self, channel: str) -> None:
        refs = self._refs.get(channel, 0) - 1
        if refs > 0:
            self._refs[channel] = refs
            return
        self._refs.pop(channel, None)
        ready = self._ready.pop(channel, None)
        if ready is None or ready.done():
            self._drop_if_unwanted(channel)
        else:
            ready.add_done_callback(lambda _: self._drop_if_unwanted(channel))

    def _drop_if_unwanted(self, channel: str) -> None:
        if channel not in self._refs and self._sub is not None:
            self._sub.remove(channel)

    async def _subscribe(self, channel: str) -> None:
        await self._sub_ready.wait()
        assert self._sub is not None
        await self._sub.add(channel)

    # -- the broker listener ---------------------------------------------------------------

    async def _listen(self) -> None:
        """Turn announcements into work for the dispatcher; never waits on anything else."""
        while True:
            try:
                async with self._broker.subscriber(queue_size=HUB_QUEUE_SIZE) as sub:
                    self._sub = sub
                    for channel in self._refs:
                        self._ready[channel] = asyncio.ensure_future(sub.add(channel))
                    self._sub_ready.set()
                    self._mark_dirty()  # after a rebuild: whatever was announced meanwhile
                    async for item in sub:
                        self._on_broker_item(item)
                    return  # the broker stopped
            except SubscriberOverflow:
                log.error(
                    "the live hub fell %d announcements behind; resubscribing", HUB_QUEUE_SIZE
                )
            finally:
                self._sub = None
                self._sub_ready.clear()

    def _on_broker_item(self, item: Message | Resync) -> None:
        if isinstance(item, Resync):
            self._mark_dirty()
            return
        envelope = envelopes.decode(item.data)
        if isinstance(envelope, envelopes.EventAnnounced):
            self._announced = max(self._announced, envelope.event_id)
            if self._position is None or envelope.event_id > self._position:
                self._mark_dirty()
        elif isinstance(envelope, envelopes.MembersRemoved | envelopes.ConversationJoined) or (
            isinstance(envelope, envelopes.TypingChanged)
            and len(self._signals) < MAX_PENDING_SIGNALS
        ):
            self._signals.append((item.channel, envelope))
            self._wakeup.set()

    def _mark_dirty(self) -> None:
        self._dirty = True
        self._wakeup.set()

    # -- the dispatcher --------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        backoff = Backoff(0.05, 2.0)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._round()
                backoff.reset()
            except Exception:
                # The database went away, say: nothing is lost (the position did not move),
                # the round is simply tried again.
                log.exception("live fan-out round failed; retrying")
                await asyncio.sleep(backoff.next())
                self._wakeup.set()

    async def _round(self) -> None:
        self.counters["rounds"] += 1
        while self._signals:
            channel, envelope = self._signals[0]
            await self._on_signal(channel, envelope)
            self._signals.popleft()
        while self._adoptions:
            tap, cursor, read, done = self._adoptions[0]
            if not (tap.ended or done.done()):
                await self._adopt(tap, cursor, read)
                if not done.done():  # its subscriber may have gone meanwhile
                    done.set_result(None)
            self._adoptions.popleft()
        if self._dirty:
            self._dirty = False
            try:
                await self._read_and_dispatch()
            except BaseException:
                self._dirty = True
                raise

    async def _adopt(self, tap: Tap, cursor: int, read: ReadLog) -> None:
        if self._position is None:
            async with self._db.autocommit_engine.connect() as connection:
                self._position = await event_log.current_position(connection)
        position = self._position
        # Everything up to `position` was committed before this read starts, so the read
        # finds all of it; what it finds beyond is skipped by dispatch (tap.cursor).
        async for event in drain_log(read, cursor):
            await self._deliver([(event, [tap])])
            if tap.ended:
                return
            cursor = event.id
        tap.cursor = max(cursor, position)
        tap.live = True

    async def _read_and_dispatch(self) -> None:
        if not self._taps:
            return
        position = self._position
        if position is None:
            # Adoption sets it; only taps that left meanwhile leave it unset. Start from now.
            async with self._db.autocommit_engine.connect() as connection:
                self._position = await event_log.current_position(connection)
            return
        while True:
            viewers = set(self._by_user)
            for taps in self._by_conversation.values():
                viewers.update(tap.viewer_id for tap in taps)
            async with self._db.autocommit_engine.connect() as connection:
                batch = await event_log.read_for_listeners(
                    connection,
                    after=position,
                    conversation_ids=list(self._by_conversation),
                    user_ids=list(self._by_user),
                    member_ids=viewers,
                )
            jobs: list[tuple[StreamItem, list[Tap]]] = []
            for event in batch.events:
                recipients = self._recipients(event, batch.members.get(event.conversation_id))
                if recipients:
                    jobs.append((event, recipients))
            await self._deliver(jobs)
            self.counters["events"] += len(batch.events)
            if batch.events:
                position = batch.events[-1].id
            if batch.complete:
                self._position = max(position, batch.horizon)
                self._retry_while_behind_announcements()
                return
            self._position = position

    def _retry_while_behind_announcements(self) -> None:
        """Read again soon while an announced event is still above the horizon."""
        if self._position is None or self._announced <= self._position:
            self._horizon_delay = HORIZON_RETRY_SECONDS[0]
            return
        if self._horizon_retry is None:
            self._horizon_retry = asyncio.get_running_loop().call_later(
                self._horizon_delay, self._retry_now
            )
            self._horizon_delay = min(2 * self._horizon_delay, HORIZON_RETRY_SECONDS[1])

    def _retry_now(self) -> None:
        self._horizon_retry = None
        self._mark_dirty()

    def _recipients(self, event: LoggedEvent, members: frozenset[int] | None) -> list[Tap]:
        if not members:
            return []
        recipients = [
            tap
            for tap in self._by_conversation.get(event.conversation_id, ())
            if tap.live and tap.cursor < event.id and tap.viewer_id in members
        ]
        for user_id in members:
            for tap in self._by_user.get(user_id, ()):
                if tap.live and tap.cursor < event.id:
                    recipients.append(tap)
                    if event.conversation_id not in tap.following:
                        self._follow(tap, event.conversation_id)  # hear its typing too
        for tap in recipients:
            tap.cursor = event.id
        return recipients

    async def _on_signal(self, channel: str, envelope: envelopes.Envelope) -> None:
        if isinstance(envelope, envelopes.TypingChanged):
            if envelope.expires_at < time.time() - 1:
                return  # stale: it would only flicker
            taps = [
                tap
                for tap in self._followers.get(envelope.conversation_id, ())
                if tap.live and tap.viewer_id != envelope.user_id
            ]
            item = Typing(
                envelope.conversation_id, envelope.user_id, envelope.typing, envelope.expires_at
            )
            await self._deliver([(item, taps)] if taps else [])
        elif isinstance(envelope, envelopes.MembersRemoved):
            gone = set(envelope.user_ids)
            for tap in list(self._by_conversation.get(envelope.conversation_id, ())):
                if tap.viewer_id in gone:
                    tap.end(
                        Forbidden(
                            "You are no longer a member of this conversation.",
                            field="conversationId",
                        )
                    )
            for user_id in gone:
                for tap in list(self._by_user.get(user_id, ())):
                    self._unfollow(tap, envelope.conversation_id)
        elif isinstance(envelope, envelopes.ConversationJoined):
            user_id = channels.user_of(channel)
            for tap in list(self._by_user.get(user_id, ())) if user_id is not None else []:
                # What was posted there before its channel went live is read then.
                self._follow(tap, envelope.conversation_id).add_done_callback(
                    lambda _: self._mark_dirty()
                )

    async def _deliver(self, jobs: Sequence[tuple[StreamItem, list[Tap]]]) -> None:
        """Render every (item, taps) job, concurrently, then deliver them in order."""
        work: list[tuple[Renderer, StreamItem, list[Tap]]] = []
        for item, taps in jobs:
            by_renderer: dict[Renderer, list[Tap]] = {}
            for tap in taps:
                by_renderer.setdefault(tap.renderer, []).append(tap)
            work.extend((renderer, item, group) for renderer, group in by_renderer.items())
        if not work:
            return
        self.counters["renders"] += len(work)
        if len(work) == 1:
            renderer, item, group = work[0]
            results: list[Deliver | BaseException] = []
            try:
                results.append(await renderer.render(item, group))
            except Exception as error:
                results.append(error)
        else:
            results = await asyncio.gather(
                *(renderer.render(item, group) for renderer, item, group in work),
                return_exceptions=True,
            )
        for (_, _, group), result in zip(work, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                log.error("rendering a live event failed", exc_info=result)
                for tap in group:
                    tap.end(
                        StreamFailed(
                            "The live stream failed; resubscribe with the last cursor you "
                            "received.",
                            cursor=str(tap.acknowledged),
                        )
                    )
                continue
            self.counters["deliveries"] += len(group)
            result()


async def drain_log(read: ReadLog, after: int) -> AsyncIterator[LoggedEvent]:
    """Every logged event `read` finds after `after`, page by page, in id order."""
    while True:
        page = await read(after)
        for event in page:
            yield event
            after = event.id
        if len(page) < event_log.REPLAY_PAGE:
            return


def _discard(index: dict[int, set[Tap]], key: int, tap: Tap) -> None:
    taps = index.get(key)
    if taps is not None:
        taps.discard(tap)
        if not taps:
            del index[key]


def _done() -> asyncio.Future[None]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
