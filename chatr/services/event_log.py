"""Append to and read from the durable event log.

`append` must be the last write of its transaction: it takes the event-stream row lock and
holds it until commit, which is what makes event ids visible in commit order (see
chatr.models.event). Keep the work after it down to the commit itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chatr.models import Event, EventStream, EventType, Membership, MembershipState, Message
from chatr.models.base import utcnow

REPLAY_PAGE = 100


@dataclass(frozen=True)
class LoggedEvent:
    """One log entry with the message it concerns, read in a single query."""

    id: int
    type: EventType
    conversation_id: int
    actor_id: int | None
    seq: int | None
    data: dict[str, object] | None
    message: Message | None


_events = Event.__table__
_EVENT_COLUMNS = ("type", "conversation_id", "actor_id", "message_id", "seq", "data")
_NEXT_POSITION = (
    update(EventStream.__table__)
    .where(EventStream.__table__.c.id == 1)
    .values(position=EventStream.__table__.c.position + 1)
    .returning(EventStream.__table__.c.position)
)


@functools.cache
def _append_statement(dialect_name: str) -> Any:
    """PostgreSQL: take the next position and insert with it in one statement (one round trip).

    Elsewhere (SQLite serialises writers anyway) the insert takes the position as a parameter.
    """
    if dialect_name != "postgresql":
        return insert(_events)
    position = _NEXT_POSITION.cte("next_position")
    source = select(
        position.c.position,
        *(bindparam(f"b_{name}", type_=_events.c[name].type) for name in _EVENT_COLUMNS),
        func.now(),
    )
    return (
        insert(_events)
        .from_select(["id", *_EVENT_COLUMNS, "created_at"], source)
        .returning(_events.c.id)
    )


async def append(
    connection: AsyncConnection,
    *,
    type: EventType,
    conversation_id: int,
    actor_id: int | None,
    message_id: int | None = None,
    seq: int | None = None,
    data: dict[str, object] | None = None,
) -> int:
    """Record an event in the connection's transaction; returns its id."""
    values: dict[str, Any] = {
        "type": type,
        "conversation_id": conversation_id,
        "actor_id": actor_id,
        "message_id": message_id,
        "seq": seq,
        "data": data,
    }
    statement = _append_statement(connection.dialect.name)
    if connection.dialect.name == "postgresql":
        event_id = await connection.scalar(
            statement, {f"b_{name}": value for name, value in values.items()}
        )
    else:
        event_id = await connection.scalar(_NEXT_POSITION)
        await connection.execute(statement, {"id": event_id, "created_at": utcnow(), **values})
    assert event_id is not None, "event_stream row missing: run the migrations"
    return event_id


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


# Built once: replay runs on every announcement for every live subscription.
_REPLAY = (
    select(Event, Message)
    .join(
        Membership,
        and_(
            Membership.conversation_id == Event.conversation_id,
            Membership.user_id == bindparam("viewer_id"),
            Membership.state == MembershipState.ACCEPTED,
        ),
    )
    .outerjoin(Message, Message.id == Event.message_id)
    .where(Event.id > bindparam("after"))
    .order_by(Event.id)
    .limit(REPLAY_PAGE)
)
_REPLAY_ONE_CONVERSATION = _REPLAY.where(Event.conversation_id == bindparam("conversation_id"))


def _logged(rows: Sequence[Any]) -> list[LoggedEvent]:
    return [
        LoggedEvent(e.id, e.type, e.conversation_id, e.actor_id, e.seq, e.data, message)
        for e, message in rows
    ]


async def list_for_conversation(
    session: AsyncSession, *, viewer_id: int, conversation_id: int, after: int
) -> list[LoggedEvent]:
    """Events after `after` in one conversation, only while the viewer is a member."""
    result = await session.execute(
        _REPLAY_ONE_CONVERSATION,
        {"viewer_id": viewer_id, "conversation_id": conversation_id, "after": after},
    )
    return _logged(result.all())


async def list_for_user(session: AsyncSession, *, viewer_id: int, after: int) -> list[LoggedEvent]:
    """Events after `after` in every conversation the viewer is an accepted member of."""
    result = await session.execute(_REPLAY, {"viewer_id": viewer_id, "after": after})
    return _logged(result.all())
