"""Append to and read from the durable event log.

`append` must be the last write of its transaction: it takes the event-stream row lock and
holds it until commit, which is what makes event ids visible in commit order (see
chatr.models.event). Keep the work after it down to the commit itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.models import Event, EventStream, EventType, Membership, MembershipState

REPLAY_PAGE = 100


async def append(
    session: AsyncSession,
    *,
    type: EventType,
    conversation_id: int,
    actor_id: int | None,
    message_id: int | None = None,
    seq: int | None = None,
    data: dict[str, object] | None = None,
) -> Event:
    position = await session.scalar(
        update(EventStream)
        .where(EventStream.id == 1)
        .values(position=EventStream.position + 1)
        .returning(EventStream.position)
    )
    assert position is not None, "event_stream row missing: run the migrations"
    event = Event(
        id=position,
        type=type,
        conversation_id=conversation_id,
        actor_id=actor_id,
        message_id=message_id,
        seq=seq,
        data=data,
    )
    session.add(event)
    await session.flush()
    return event


async def current_position(session: AsyncSession) -> int:
    """Everything committed so far has an id at or below this."""
    return await session.scalar(select(EventStream.position).where(EventStream.id == 1)) or 0


async def position_before_seq(session: AsyncSession, *, conversation_id: int, seq: int) -> int:
    """The event id of message `seq` (or of the newest message below it; 0 when none).

    Replaying events after it yields every message with a larger seq and everything else
    (receipts, edits) that happened since.
    """
    if seq <= 0:
        return 0
    position = await session.scalar(
        select(func.max(Event.id)).where(
            Event.conversation_id == conversation_id,
            Event.type == EventType.MESSAGE_POSTED,
            Event.seq <= seq,
        )
    )
    return position or 0


def _visible_to(user_id: int):
    return (
        (Membership.conversation_id == Event.conversation_id)
        & (Membership.user_id == user_id)
        & (Membership.state == MembershipState.ACCEPTED)
    )


async def list_for_conversation(
    session: AsyncSession, *, viewer_id: int, conversation_id: int, after: int
) -> Sequence[Event]:
    """Events after `after` in one conversation, only while the viewer is a member."""
    result = await session.scalars(
        select(Event)
        .join(Membership, _visible_to(viewer_id))
        .where(Event.conversation_id == conversation_id, Event.id > after)
        .order_by(Event.id)
        .limit(REPLAY_PAGE)
    )
    return result.all()


async def list_for_user(session: AsyncSession, *, viewer_id: int, after: int) -> Sequence[Event]:
    """Events after `after` in every conversation the viewer is an accepted member of."""
    result = await session.scalars(
        select(Event)
        .join(Membership, _visible_to(viewer_id))
        .where(Event.id > after)
        .order_by(Event.id)
        .limit(REPLAY_PAGE)
    )
    return result.all()
