"""Append to and read from the durable event log.

`append` must be the last write of its transaction: it takes the event-stream row lock and
holds it until commit, which is what makes event ids visible in commit order (see
chatr.models.event). Keep the work after it down to the commit itself.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Insert,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.schema import Column

from chatr.models import (
    Event,
    EventStream,
    EventType,
    Membership,
    MembershipState,
    Message,
    MessageKind,
)
from chatr.models.base import utcnow

REPLAY_PAGE = 100


@dataclass(frozen=True, slots=True)
class MessageSnapshot:
    """A message as read with its event: the same public attributes as the model.

    Replay builds one per event on every subscriber's hot path; a plain slotted object is
    several times cheaper to build than an ORM instance, and nothing here is ever written.
    """

    id: int
    conversation_id: int
    seq: int
    sender_id: int | None
    client_id: str | None
    kind: MessageKind
    body: str | None
    reply_to_id: int | None
    reply_snapshot: dict[str, object] | None
    link_preview: dict[str, object] | None
    extra: dict[str, object] | None
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None


_SNAPSHOT_FIELDS = tuple(f.name for f in fields(MessageSnapshot))


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One log entry with the message it concerns, read in a single query."""

    id: int
    type: EventType
    conversation_id: int
    actor_id: int | None
    seq: int | None
    data: dict[str, object] | None
    message: MessageSnapshot | None


_events = Event.__table__
_EVENT_COLUMNS = ("type", "conversation_id", "actor_id", "message_id", "seq", "data")
_NEXT_POSITION = (
    update(EventStream.__table__)
    .where(EventStream.__table__.c.id == 1)
    .values(position=EventStream.__table__.c.position + 1)
    .returning(EventStream.__table__.c.position)
)

_HORIZON = select(EventStream.__table__.c.position).where(EventStream.__table__.c.id == 1)


def append_from(
    *,
    for_each: FromClause | None = None,
    only_if: ColumnElement[bool] | None = None,
    **values: Any,
) -> Insert:
    """PostgreSQL: `INSERT INTO events … SELECT <next position>, <values>` as one statement.

    Taking the position and inserting with it in one statement saves a round trip. `values`
    are the event's columns (those of `append`, and `created_at`): SQL expressions or Python
    values (bound with the column's type); a column left out is NULL. An enclosing statement
    embeds this as one of its steps: the event is then logged once per row of `for_each` (a
    CTE of the rows it wrote, whose columns `values` may use), and the position is taken only
    if `only_if` holds, which makes the event-stream lock its last write and leaves the
    position alone when its own writes did not happen (one row of `for_each` at most: each
    event takes the next position).
    """
    next_position = _NEXT_POSITION if only_if is None else _NEXT_POSITION.where(only_if)
    position = next_position.cte("next_position")
    rows = position if for_each is None else position.join(for_each, true())
    columns = [*_EVENT_COLUMNS, "created_at"]
    source = select(
        position.c.position, *(_as_column_value(name, values.get(name)) for name in columns)
    ).select_from(rows)
    return insert(_events).from_select(["id", *columns], source).returning(_events.c.id)


def _as_column_value(name: str, value: Any) -> ColumnElement[Any]:
    if isinstance(value, ColumnElement):
        return value
    if value is None:
        return null()
    return literal(value, type_=_events.c[name].type)


@functools.cache
def _append_statement(dialect_name: str) -> Any:
    """PostgreSQL: `append_from` with bind parameters (one round trip).

    Elsewhere (SQLite serialises writers anyway) the insert takes the position as a parameter.
    """
    if dialect_name != "postgresql":
        return insert(_events)
    values: dict[str, Any] = {
        name: bindparam(f"b_{name}", type_=_events.c[name].type) for name in _EVENT_COLUMNS
    }
    return append_from(**values, created_at=func.now())


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


async def current_position(db: AsyncSession | AsyncConnection) -> int:
    """Everything committed so far has an id at or below this (and all of it is visible)."""
    return await db.scalar(_HORIZON) or 0


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


# Built once, as Core: replay runs on every announcement for every live subscription, and
# the ORM's per-query machinery cost more than the query.
_messages = Message.__table__
_memberships = Membership.__table__
_MESSAGE_COLUMNS = [_messages.c[name].label(f"m_{name}") for name in _SNAPSHOT_FIELDS]
_MESSAGE_KEYS = tuple(f"m_{name}" for name in _SNAPSHOT_FIELDS)
_REPLAY = (
    select(_events, *_MESSAGE_COLUMNS)
    .join(
        _memberships,
        and_(
            _memberships.c.conversation_id == _events.c.conversation_id,
            _memberships.c.user_id == bindparam("viewer_id"),
            _memberships.c.state == MembershipState.ACCEPTED,
        ),
    )
    .outerjoin(_messages, _messages.c.id == _events.c.message_id)
    .where(_events.c.id > bindparam("after"))
    .order_by(_events.c.id)
    .limit(REPLAY_PAGE)
)
_REPLAY_ONE_CONVERSATION = _REPLAY.where(_events.c.conversation_id == bindparam("conversation_id"))


def _logged(rows: Sequence[Any]) -> list[LoggedEvent]:
    events = []
    for row in rows:
        values = row._mapping
        message = None
        if values["m_id"] is not None:
            message = MessageSnapshot(*(values[key] for key in _MESSAGE_KEYS))
        events.append(
            LoggedEvent(
                values["id"],
                EventType(values["type"]),
                values["conversation_id"],
                values["actor_id"],
                values["seq"],
                values["data"],
                message,
            )
        )
    return events


async def list_for_conversation(
    connection: AsyncConnection, *, viewer_id: int, conversation_id: int, after: int
) -> list[LoggedEvent]:
    """Events after `after` in one conversation, only while the viewer is a member."""
    result = await connection.execute(
        _REPLAY_ONE_CONVERSATION,
        {"viewer_id": viewer_id, "conversation_id": conversation_id, "after": after},
    )
    return _logged(result.all())


async def list_for_user(
    connection: AsyncConnection, *, viewer_id: int, after: int
) -> list[LoggedEvent]:
    """Events after `after` in every conversation the viewer is an accepted member of."""
    result = await connection.execute(_REPLAY, {"viewer_id": viewer_id, "after": after})
    return _logged(result.all())


def _one_of(column: Column[Any], name: str, dialect_name: str) -> ColumnElement[bool]:
    """`column` is one of the list bound as `name`: `= ANY(array)` on PostgreSQL, so the SQL
    text (and its prepared statement) stays the same whatever the list's length."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


@functools.cache
def _listener_page(dialect_name: str) -> Any:
    """A page of events after `after` in `conversation_ids` or where one of `user_ids` is an
    accepted member."""
    is_member = exists().where(
        _memberships.c.conversation_id == _events.c.conversation_id,
        _one_of(_memberships.c.user_id, "user_ids", dialect_name),
        _memberships.c.state == MembershipState.ACCEPTED,
    )
    return (
        select(_events, *_MESSAGE_COLUMNS)
        .outerjoin(_messages, _messages.c.id == _events.c.message_id)
        .where(
            _events.c.id > bindparam("after"),
            or_(_one_of(_events.c.conversation_id, "conversation_ids", dialect_name), is_member),
        )
        .order_by(_events.c.id)
        .limit(REPLAY_PAGE)
    )


def _members_where(dialect_name: str, conversations: Any) -> list[ColumnElement[bool]]:
    return [
        _memberships.c.conversation_id.in_(conversations),
        _one_of(_memberships.c.user_id, "member_ids", dialect_name),
        _memberships.c.state == MembershipState.ACCEPTED,
    ]


@functools.cache
def _listener_members(dialect_name: str) -> Any:
    """Which of `member_ids` are accepted members of `page_conversation_ids`, one row per
    conversation (a 1,000-member group is one row, not 1,000 through the result machinery)."""
    aggregate = (
        func.array_agg(_memberships.c.user_id)
        if dialect_name == "postgresql"
        else func.group_concat(_memberships.c.user_id)
    )
    conversations = bindparam("page_conversation_ids", expanding=True)
    return (
        select(_memberships.c.conversation_id, aggregate)
        .where(*_members_where(dialect_name, conversations))
        .group_by(_memberships.c.conversation_id)
    )


@functools.cache
def _listener_round_trip() -> Any:
    """PostgreSQL: horizon, page and members in one statement, so one round trip and one
    snapshot (every event up to the horizon is visible to the same statement's page).

    Each conversation's members ride on its first event's row only.
    """
    page = _listener_page("postgresql").cte("page")
    members = (
        select(
            _memberships.c.conversation_id,
            func.array_agg(_memberships.c.user_id).label("member_ids"),
        )
        .where(*_members_where("postgresql", select(page.c.conversation_id)))
        .group_by(_memberships.c.conversation_id)
        .cte("members")
    )
    horizon = _HORIZON.cte("horizon")
    first_of_its_conversation = (
        func.row_number().over(partition_by=page.c.conversation_id, order_by=page.c.id) == 1
    )
    return (
        select(
            horizon.c.position.label("horizon"),
            page,
            case((first_of_its_conversation, members.c.member_ids)).label("member_ids"),
        )
        .select_from(
            horizon.outerjoin(page, true()).outerjoin(
                members, members.c.conversation_id == page.c.conversation_id
            )
        )
        .order_by(page.c.id)
    )


@dataclass(frozen=True, slots=True)
class ListenerBatch:
    """One page of what an instance's live subscriptions may need, read once for all of them."""

    events: list[LoggedEvent]
    #: conversation id -> which of the asked-about users are accepted members now.
    members: dict[int, frozenset[int]]
    #: Every event up to here that concerns the listeners is in `events` (when `complete`).
    horizon: int
    #: Fewer than a page came back: read again only after new announcements.
    complete: bool


async def read_for_listeners(
    connection: AsyncConnection,
    *,
    after: int,
    conversation_ids: Collection[int],
    user_ids: Collection[int],
    member_ids: Collection[int],
) -> ListenerBatch:
    """Events after `after` in one of `conversation_ids` or in a conversation one of
    `user_ids` belongs to, and which of `member_ids` are members of their conversations.

    The horizon is read first (or in the same statement): the counter is committed last in
    each writing transaction, so every event up to it is visible to the read that follows. A
    complete page therefore covers everything up to the horizon, and the next read starts
    there rather than re-scanning events that concern nobody here.
    """
    parameters = {
        "after": after,
        "conversation_ids": list(conversation_ids),
        "user_ids": list(user_ids),
        "member_ids": list(member_ids),
    }
    members: dict[int, frozenset[int]] = {}
    if connection.dialect.name == "postgresql":
        rows = (await connection.execute(_listener_round_trip(), parameters)).all()
        horizon = rows[0].horizon or 0  # the outer join always yields the horizon's row
        rows = [row for row in rows if row.id is not None]
        events = _logged(rows)
        for row in rows:
            if row.member_ids is not None:
                members[row.conversation_id] = frozenset(row.member_ids)
    else:
        horizon = await current_position(connection)
        dialect_name = connection.dialect.name
        result = await connection.execute(_listener_page(dialect_name), parameters)
        events = _logged(result.all())
        if events:
            page_conversation_ids = sorted({event.conversation_id for event in events})
            result = await connection.execute(
                _listener_members(dialect_name),
                {"page_conversation_ids": page_conversation_ids, "member_ids": list(member_ids)},
            )
            for conversation_id, found in result.all():
                user_ids_found = [int(user_id) for user_id in str(found).split(",")]
                members[conversation_id] = frozenset(user_ids_found)
    return ListenerBatch(
        events=events,
        members=members,
        horizon=horizon,
        complete=len(events) < REPLAY_PAGE,
    )
