"""Announce committed changes, retrying the ones that fail until they go out.

A failed publish must not fail the mutation (the change is already committed), and it must
not be forgotten either: when only the publishing instance lost Redis, subscribers elsewhere
get no RESYNC and would not learn of the change until the next one. Envelopes only point at
positions in the database, so keeping the newest one per channel is enough to make every
subscriber re-read what it missed; typing signals are ephemeral and simply dropped.

`announce` does not wait for the bus: it starts the publish and returns, and the publish's
outcome is settled by a callback (kept for retry if it failed). The change is committed
before it is announced and subscribers read the log from their cursor, so nothing but the
notification's timing depends on it, and a mutation answers one round trip to Redis sooner.

The retry task runs under the instance's supervisor; an unexpected error publishing one
envelope (a bug, not an outage) is logged and drops that envelope, so it cannot wedge the
retries of every other one. `stop()` never raises.
"""

from __future__ import annotations

import asyncio
import logging

from chatr.pubsub import envelopes
from chatr.pubsub.broker import Backoff, Broker, BrokerUnavailable
from chatr.supervision import SupervisedTask, Supervisor

log = logging.getLogger("chatr.pubsub.announcer")

PendingKey = tuple[str, str, int]


def _pending_key(channel: str, envelope: envelopes.Envelope) -> PendingKey | None:
    match envelope:
        case envelopes.EventAnnounced():
            return (channel, envelope.kind, 0)  # the newest position covers older ones
        case envelopes.ConversationJoined(conversation_id=conversation_id):
            return (channel, envelope.kind, conversation_id)
        case envelopes.MembersRemoved(user_ids=user_ids):
            # Each removal must arrive: it is what ends the removed people's live streams.
            return (channel, f"{envelope.kind}:{','.join(map(str, user_ids))}", 0)
        case envelopes.SessionRevoked(user_id=user_id, session_id=session_id):
            return (channel, f"{envelope.kind}:{user_id}", session_id or 0)
        case envelopes.FriendChanged(actor_id=actor_id, subject_id=subject_id):
            # The newest change between two people is the state a client needs.
            low, high = sorted((actor_id, subject_id))
            return (channel, f"{envelope.kind}:{low}", high)
        case _:
            return None


class Announcer:
    def __init__(self, broker: Broker, *, max_pending: int = 10_000) -> None:
        self._broker = broker
        self._max_pending = max_pending
        self._pending: dict[PendingKey, envelopes.Envelope] = {}
        self._wake = asyncio.Event()
        self._record: SupervisedTask | None = None
        #: Announcements dropped because the backlog was full (since it last drained).
        self._dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self, supervisor: Supervisor) -> None:
        self._record = supervisor.spawn("announcer", self._retry_forever)

    async def stop(self) -> None:
        """Stop retrying (the supervisor may have already); say what was never delivered."""
        task = self._record.task if self._record is not None else None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._pending:
            log.warning("%d announcements not delivered at shutdown", len(self._pending))

    async def announce(self, channel: str, envelope: envelopes.Envelope) -> None:
        """Start publishing `envelope` and return without waiting for the bus's answer: the
        change is committed, and a mutation's answer need not wait one more round trip to
        Redis for its notification (bench/throughput.py at 10 conversations, paired runs: p50
        6.5-6.9 ms with the wait, 6.1-6.2 without). A failure is kept and retried all the
        same, from the callback."""
        published = self._broker.publish_soon(channel, envelopes.encode(envelope))
        published.add_done_callback(lambda done: self._published(channel, envelope, done))

    def _published(
        self, channel: str, envelope: envelopes.Envelope, published: asyncio.Future[None]
    ) -> None:
        error = None if published.cancelled() else published.exception()
        if isinstance(error, BrokerUnavailable):
            self._keep(channel, envelope)
        elif error is not None:  # a bug, not an outage: say so, and drop it
            log.error("announcing %s on %s failed", envelope.kind, channel, exc_info=error)

    def _keep(self, channel: str, envelope: envelopes.Envelope) -> None:
        key = _pending_key(channel, envelope)
        if key is None:
            return
        previous = self._pending.get(key)
        if (
            isinstance(previous, envelopes.EventAnnounced)
            and isinstance(envelope, envelopes.EventAnnounced)
            and previous.event_id > envelope.event_id
        ):
            return
        if key not in self._pending and len(self._pending) >= self._max_pending:
            if not self._dropped:
                log.error("announcement backlog full; dropping new ones until it drains")
            self._dropped += 1
            return
        if not self._pending:
            # Once per outage, not once per mutation: every send fails to publish meanwhile.
            log.warning("publish to %s failed; keeping announcements to retry", channel)
        self._pending[key] = envelope
        self._wake.set()

    async def _retry_forever(self) -> None:
        backoff = Backoff(0.05, 2.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                for key, envelope in list(self._pending.items()):
                    try:
                        await self._broker.publish(key[0], envelopes.encode(envelope))
                    except BrokerUnavailable:
                        break
                    except Exception:
                        log.exception("announcing %s on %s failed; dropped", envelope.kind, key[0])
                    if self._pending.get(key) is envelope:
                        del self._pending[key]
                else:
                    backoff.reset()
                    continue
                await asyncio.sleep(backoff.next())
            log.info("kept announcements delivered")
            if self._dropped:
                log.warning("%d announcements were dropped (backlog full)", self._dropped)
                self._dropped = 0
