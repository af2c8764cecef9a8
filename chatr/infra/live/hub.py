"""One reader of the event log per instance, fanning out to every live subscription here.

Why: when every subscriber re-read the log on every announcement, a message to a 1,000-member
group cost 1,000 queries on each instance. The hub reads once per round for all its taps (live
subscriptions), learns who of them may see each event in one more query, and hands each item
to all taps that share a renderer at once, so the renderer can work the payload out once for
many of them (see `chatr.schema.broadcast`).

What a tap is promised, as before:
- every durable event it may see after its cursor, once, in log order (the log is only read
  below the horizon, where it is final, so reading "after the position" never skips a late
  commit; see chatr.infra.event_log);
- subscribe, then replay: its channels are live before it replays from its cursor, and the hub
  adopts it (catches it up from where its replay ended, then includes it in dispatch; see
  `chatr.infra.live.adoption`), so no event falls between replay and live;
- who may see an event is decided by accepted membership when the event is read, counted
  from the position each membership starts at, as the replay queries decide it (see
  docs/architecture.md, "The replay contract"); typing reaches the conversations a tap
  follows;
- a tap that falls `queue_size` items behind is ended with SUBSCRIBER_OVERFLOW and the cursor
  to resume from; nobody else waits for it; a tap whose own catch-up fails ends with
  STREAM_FAILED and its cursor, and nobody else notices.

What the instance is promised: the listener and the dispatcher run under the instance's
supervisor (a crash is logged, restarted and shown on /readyz; rounds that keep failing show
the dispatcher degraded), the log is re-read every `tick` seconds even when nothing is
announced (an announcement lost for good only delays its event), and nobody waits for a
channel forever (`channel_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from chatr.db import Database
from chatr.errors import Forbidden, ServiceUnavailable
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live.adoption import Adopter, failed
from chatr.infra.live.tap import Deliver, ReadLog, Renderer, StreamItem, Tap, Typing
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Backoff, Broker, Message, Resync, Subscriber, SubscriberOverflow
from chatr.supervision import SupervisedTask, Supervisor

log = logging.getLogger("chatr.services.live")

#: The hub's own broker queue: it only buffers announcements between two rounds.
HUB_QUEUE_SIZE = 100_000
#: Typing signals waiting for a round beyond this are dropped (they are ephemeral).
MAX_PENDING_SIGNALS = 10_000
#: An announced event below no horizon yet (a transaction that started earlier is still
#: running; it may not even write events, so nothing else will wake the hub): read again
#: after this long, doubling up to the maximum while the horizon stays behind.
HORIZON_RETRY_SECONDS = (0.002, 0.05)
#: How long a subscription waits for its channels to go live before it fails (the broker or
#: the hub's listener is down).
CHANNEL_TIMEOUT = 10.0
#: Seconds a client is told to wait before subscribing again when that happens.
CHANNEL_RETRY_AFTER = 5
ROUND_FAILED = "live fan-out round failed; retrying"


class LiveHub:
    """The instance's fan-out: one broker subscriber, one log reader, every tap."""

    def __init__(self, *, db: Database, broker: Broker, tick: float = 2.0) -> None:
        self._db = db
        self._broker = broker
        self._tick = tick
        #: Bounds every wait for a channel to go live (settable for tests).
        self.channel_timeout = CHANNEL_TIMEOUT
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
        #: The dispatcher moves it on after each read; a handover may move it back.
        self._position: int | None = None
        #: The highest position announced so far; above `_position`: read again soon.
        self._announced = 0
        self._horizon_retry: asyncio.TimerHandle | None = None
        self._horizon_delay = HORIZON_RETRY_SECONDS[0]
        self._dirty = False
        self._last_read = 0.0
        #: Bumped by every handover: a round in flight then leaves the tap to the next round
        #: and `_position` alone (see `_hand_over`, `_recipients`, `_read_and_dispatch`).
        self._rewinds = 0
        self._signals: deque[tuple[str, envelopes.Envelope]] = deque()
        self._adopter = Adopter(
            db=db,
            deliver=self._deliver,
            hand_over=self._hand_over,
            follow=self._follow,
            position=lambda: self._position,
        )
        self._wakeup = asyncio.Event()
        #: The dispatcher's own connection: it never queues behind replays for the pool.
        self._connection: AsyncConnection | None = None
        self._dispatcher: SupervisedTask | None = None
        self.counters = dict.fromkeys(
            ("rounds", "events", "deliveries", "renders", "executions", "overflows"), 0
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, supervisor: Supervisor) -> None:
        supervisor.spawn("live-listener", self._listen)
        supervisor.spawn("live-adopter", self._adopter.run)
        self._dispatcher = supervisor.spawn("live-dispatcher", self._dispatch_forever)

    async def stop(self) -> None:
        """End every tap; the supervisor stops the listener, adopter and dispatcher."""
        if self._horizon_retry is not None:
            self._horizon_retry.cancel()
        self._adopter.stop()
        for tap in list(self._taps):
            tap.end()

    @property
    def position(self) -> int | None:
        """Where dispatch has read the log up to; None while nobody listens here."""
        return self._position

    def metrics(self) -> dict[str, int]:
        return {
            **self.counters,
            "taps": len(self._taps),
            "live_taps": sum(tap.live for tap in self._taps),
            "adopting": len(self._adopter.adopting),
            "channels": len(self._refs),
        }

    # -- taps ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def attach(self, tap: Tap) -> AsyncIterator[None]:
        """Keep `tap` here for the block; its channels are live when the block starts.

        A myEvents tap listens to its viewer's channel (new conversations); a conversation tap
        follows its conversation. Leaving the block forgets the tap and ends it.
        """
        tap.counters = self.counters
        self._taps.add(tap)
        if tap.conversation_id is None:
            self._by_user.setdefault(tap.viewer_id, set()).add(tap)
            ready = [self._acquire(channels.user(tap.viewer_id))]
        else:
            self._by_conversation.setdefault(tap.conversation_id, set()).add(tap)
            ready = [self._follow(tap, tap.conversation_id)]
        try:
            await self._until_live(ready)
            yield
        finally:
            self._forget(tap)

    async def follow(self, tap: Tap, conversation_ids: Iterable[int]) -> None:
        """Let `tap` hear these conversations' typing; returns once their channels are live."""
        await self._until_live([self._follow(tap, c) for c in conversation_ids])

    async def go_live(self, tap: Tap, *, cursor: int, read: ReadLog) -> None:
        """Catch `tap` up from `cursor`, then dispatch to it from there on.

        Returns once it is live, or ended: a tap whose catch-up fails ends with STREAM_FAILED
        and its cursor (see `adoption`). `read` is its own view of the log, used only if the
        batched catch-up fails.
        """
        await self._adopter.adopt(tap, cursor=cursor, read=read)

    def _hand_over(self, tap: Tap, covered: int) -> None:
        """Include a caught-up tap in dispatch (synchronous: nothing runs in between)."""
        tap.cursor = max(tap.cursor, covered)
        self._rewinds += 1
        tap.live, tap.live_since = True, self._rewinds
        if self._position is None or covered < self._position:
            # Dispatch re-reads from where the tap is covered; the others skip what they
            # already had by their own cursor.
            self._position = covered
        # Always, even when the position is not past `covered`: a round in flight may have
        # read events past `covered` (its read came after the tap's catch-up), and does not
        # deliver them to this tap (see `_recipients`); it must not move the position past
        # them. The next round re-reads from here, and taps that had those events skip them.
        self._mark_dirty()

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

    async def _until_live(self, ready: list[asyncio.Future[None]]) -> None:
        """Wait (bounded) until these channels are live; SERVICE_UNAVAILABLE if they do not
        go live (the broker or the hub's listener is down): the client retries shortly."""
        try:
            async with asyncio.timeout(self.channel_timeout):
                for future in ready:
                    # Shielded: the SUBSCRIBE is shared with other taps of the same channel.
                    await asyncio.shield(future)
        except (TimeoutError, Exception) as error:
            log.warning("a live subscription's channels did not go live: %r", error)
            raise ServiceUnavailable(
                "Live updates are unavailable right now; subscribe again shortly.",
                retry_after=CHANNEL_RETRY_AFTER,
            ) from error

    def _acquire(self, channel: str) -> asyncio.Future[None]:
        """Count one more user of `channel`; the future is done once it is live."""
        self._refs[channel] = self._refs.get(channel, 0) + 1
        ready = self._ready.get(channel)
        if ready is None or (ready.done() and (ready.cancelled() or ready.exception())):
            # A task of its own: a tap cancelled mid-setup must not cancel a SUBSCRIBE that
            # other taps of the same channel wait on. A failed one is tried again.
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
        """Turn announcements into work for the dispatcher; never waits on anything else.

        Supervised: anything but an overflow ends it and the supervisor restarts it.
        """
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
        try:
            while True:
                await self._next_wakeup()
                try:
                    await self._round()
                except Exception as error:
                    # The database went away, say: nothing is lost (the position did not
                    # move), the round is simply tried again.
                    log.exception(ROUND_FAILED)
                    await self._drop_connection()
                    if self._dispatcher is not None:
                        self._dispatcher.degraded(f"fan-out rounds fail: {error!r}")
                    await asyncio.sleep(backoff.next())
                    self._wakeup.set()
                else:
                    backoff.reset()
                    if self._dispatcher is not None:
                        self._dispatcher.recovered()
        finally:
            await self._drop_connection()

    async def _next_wakeup(self) -> None:
        """Until there is work, or the tick says to re-read the log anyway."""
        if not self._wakeup.is_set():
            delay = self._last_read + self._tick - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0)):
                    await self._wakeup.wait()
            if not self._wakeup.is_set() and self._taps:
                self._dirty = True  # an announcement may have been lost for good
        self._wakeup.clear()

    async def _round(self) -> None:
        self.counters["rounds"] += 1
        while self._signals:
            channel, envelope = self._signals[0]
            await self._on_signal(channel, envelope)
            self._signals.popleft()
        if self._dirty:
            self._dirty = False
            try:
                await self._read_and_dispatch()
            except BaseException:
                self._dirty = True
                raise
        if not self._taps:
            self._last_read = time.monotonic()  # nothing to tick for

    async def _reader(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._db.autocommit_engine.connect()
        return self._connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _read_and_dispatch(self) -> None:
        self._last_read = time.monotonic()
        if not self._taps:
            return
        connection = await self._reader()
        position = self._position
        if position is None:
            # Handovers set it; only taps that left meanwhile leave it unset. Start from now,
            # unless a handover set it while this read ran.
            current = await event_log.current_position(connection)
            if self._position is None:
                self._position = current
            return
        rewinds = self._rewinds
        while True:
            viewers = set(self._by_user)
            for taps in self._by_conversation.values():
                viewers.update(tap.viewer_id for tap in taps)
            batch = await event_log.read_for_listeners(
                connection,
                after=position,
                conversation_ids=list(self._by_conversation),
                user_ids=list(self._by_user),
                member_ids=viewers,
            )
            jobs: list[tuple[StreamItem, list[Tap]]] = []
            for event in batch.events:
                recipients = self._recipients(event, batch.may_see(event), began=rewinds)
                if recipients:
                    jobs.append((event, recipients))
            await self._deliver(jobs)
            self.counters["events"] += len(batch.events)
            if self._rewinds != rewinds:
                return  # a tap went live during this round: the next one starts where it is
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

    def _recipients(self, event: LoggedEvent, members: frozenset[int], *, began: int) -> list[Tap]:
        """`members`: who may see the event (`ListenerBatch.may_see`); `began`: the handover
        count when the round's read began.

        Only taps live before then: one handed over while the read was on its way is covered
        up to a position the read may have passed (an earlier round read on while it was
        being caught up). Handing it this batch would move its cursor past the events in
        between, and the re-read from where it is covered would skip them for it; that
        re-read (see `_hand_over`) serves it instead."""
        if not members:
            return []
        recipients = [
            tap
            for tap in self._by_conversation.get(event.conversation_id, ())
            if tap.live
            and tap.live_since <= began
            and tap.cursor < event.id
            and tap.viewer_id in members
        ]
        for user_id in members:
            for tap in self._by_user.get(user_id, ()):
                if tap.live and tap.live_since <= began and tap.cursor < event.id:
                    recipients.append(tap)
                    # Hear its typing too, once a member (not for an invitation, say).
                    if event.audience_id is None and event.conversation_id not in tap.following:
                        self._follow(tap, event.conversation_id)
        for tap in recipients:
            tap.cursor = event.id
        return recipients

    async def _on_signal(self, channel: str, envelope: envelopes.Envelope) -> None:
        if isinstance(envelope, envelopes.TypingChanged):
            if envelope.expires_at < time.time() - 1:
                return  # stale: it would only flicker
            # Taps being caught up hear it too: it is ephemeral, and a client that saw its
            # replay end and someone start typing right then should see that.
            adopting = self._adopter.adopting
            taps = [
                tap
                for tap in self._followers.get(envelope.conversation_id, ())
                if (tap.live or tap in adopting) and tap.viewer_id != envelope.user_id
            ]
            item = Typing(
                envelope.conversation_id,
                envelope.user_id,
                envelope.typing,
                envelope.expires_at,
                envelope.activity,
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
            for gone_id in gone:
                for tap in list(self._by_user.get(gone_id, ())):
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
                failed(group, result, doing="rendering a live event")
                continue
            self.counters["deliveries"] += len(group)
            result()


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
