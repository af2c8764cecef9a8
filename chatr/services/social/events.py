"""The live `friend` events: what changed between two people, announced to both of them on
their user channel, and each one's stream of them."""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from chatr.errors import SubscriberOverflowError
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Message, SubscriberOverflow
from chatr.runtime import Runtime


class FriendChange(enum.StrEnum):
    """What a live `friend` event says happened between two people."""

    REQUESTED = "REQUESTED"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    REMOVED = "REMOVED"
    BLOCKED = "BLOCKED"
    UNBLOCKED = "UNBLOCKED"


@dataclass(frozen=True, slots=True)
class FriendEvent:
    """A `friend` event as one of the two people sees it."""

    change: FriendChange
    #: The other person.
    user_id: int
    #: True when the viewer made the change (from any of their devices).
    by_viewer: bool
    occurred_at: datetime


async def announce(rt: Runtime, change: FriendChange, *, actor_id: int, subject_id: int) -> None:
    envelope = envelopes.FriendChanged(
        change=change.value, actor_id=actor_id, subject_id=subject_id, occurred_at=time.time()
    )
    for user_id in (actor_id, subject_id):
        await rt.announce(channels.user(user_id), envelope)


def _as_seen_by(viewer_id: int, envelope: envelopes.FriendChanged) -> FriendEvent | None:
    if viewer_id not in (envelope.actor_id, envelope.subject_id):
        return None
    try:
        change = FriendChange(envelope.change)
    except ValueError:  # a newer instance's change: skip it, like an unknown envelope
        return None
    by_viewer = envelope.actor_id == viewer_id
    return FriendEvent(
        change=change,
        user_id=envelope.subject_id if by_viewer else envelope.actor_id,
        by_viewer=by_viewer,
        occurred_at=datetime.fromtimestamp(envelope.occurred_at, UTC),
    )


async def events_for(rt: Runtime, *, viewer_id: int) -> AsyncIterator[FriendEvent]:
    """Live `friend` events of the viewer, from every instance (through `user:{id}`).

    Ephemeral: nothing is replayed. A broker reconnect (RESYNC) may have lost some, and a
    client that reconnects has missed some; either way the lists are the truth to re-query.
    """
    async with rt.broker.subscribe(channels.user(viewer_id)) as sub:
        try:
            async for item in sub:
                if not isinstance(item, Message):
                    continue
                envelope = envelopes.decode(item.data)
                if isinstance(envelope, envelopes.FriendChanged):
                    event = _as_seen_by(viewer_id, envelope)
                    if event is not None:
                        yield event
        except SubscriberOverflow as error:
            raise SubscriberOverflowError(
                "This subscription fell too far behind and was closed; "
                "resubscribe and re-query your friends and requests."
            ) from error
