"""Append to and read from the durable event log.

Positions: the log's order is `(xid, id)` (see chatr.models.event); this module packs the pair
into one int, `xid << 64 | id`, so a position compares, sorts and travels (cursors,
announcements, the live hub) like the plain event id it replaces, and an event id handed out
before migration 0002 (xid 0) is still the same position. Readers on PostgreSQL only ever see
events below the horizon `(xmin, 0)`, where xmin is the oldest transaction still running:
that part of the log is final, so "after the last position delivered" never skips an event
that commits late.

Appending takes no lock shared by all writers. What keeps one conversation's events in seq
order is `serialise`: every transaction that takes a conversation's next seq takes that
conversation's advisory lock before its first write, i.e. before PostgreSQL assigns it an
xid, so xid order follows seq order within a conversation.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Insert,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.schema import Column

from chatr.errors import BadUserInput
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

_ID_BITS = 64
_ID_MASK = (1 << _ID_BITS) - 1
#: xid and id are both PostgreSQL bigints (non-negative).
_PART_LIMIT = 1 << 63


def position_of(xid: int, event_id: int) -> int:
    """The position of event `event_id` written by transaction `xid`."""
    return (xid << _ID_BITS) | event_id


def split_position(position: int) -> tuple[int, int]:
    """(xid, id) of a position."""
    return position >> _ID_BITS, position & _ID_MASK


def position_from_cursor(cursor: str, *, field: str) -> int:
    """A client's cursor as a position; BAD_USER_INPUT unless it could be one.

    A cursor is the position's decimal text: opaque to clients. One issued before migration
    0002 (a plain event id) is the position (0, id) and resumes exactly where it did.
    """
    try:
        position = int(cursor)
    except ValueError:
        raise BadUserInput("The cursor is not valid.", field=field) from None
    xid, event_id = split_position(position)
    if position < 0 or xid >= _PART_LIMIT or event_id >= _PART_LIMIT:
        raise BadUserInput("The cursor is not valid.", field=field)
    return position


def cursor_of(position: int) -> str:
    return str(position)


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
    forwarded: bool
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    deleted_by_id: int | None
    pinned_at: datetime | None
    pinned_by_id: int | None


_SNAPSHOT_FIELDS = tuple(f.name for f in fields(MessageSnapshot))


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One log entry with the message it concerns, read in a single query."""

    #: Its position in the log (`position_of(xid, id)`): what cursors and the live hub track.
    id: int
    type: EventType
    conversation_id: int
    actor_id: int | None
    seq: int | None
    data: dict[str, Any] | None
    message: MessageSnapshot | None
    #: Only this user sees the event (see `Event.audience_id`); None: every accepted member.
    audience_id: int | None = None


def may_see(
    event: LoggedEvent,
    members: frozenset[int] | None,
    since: Mapping[int, int] | None = None,
) -> frozenset[int]:
    """Who may see `event`, given the accepted `members` of its conversation and, for those
    whose membership counts from a later position than some events being read, that
    position (`since`; see `Membership.since_xid`): the live fan-out's form of the replay
    queries' rule (an event addressed to one user is theirs alone; any other is the members'
    who were members when it was logged). Live, an addressed event is read moments after it
    was written, while its user still has the place it concerns; a replay later also asks
    that they still have it (see `_replay`)."""
    if event.audience_id is not None:
        return frozenset((event.audience_id,))
    if not members:
        return frozenset()
    if since:
        late = [user_id for user_id, position in since.items() if position >= event.id]
        if late:
            return members.difference(late)
    return members


_events = Event.__table__
_EVENT_COLUMNS = ("type", "conversation_id", "actor_id", "message_id", "seq", "data", "audience_id")
_NEXT_POSITION = (
    update(EventStream.__table__)
    .where(EventStream.__table__.c.id == 1)
    .values(position=EventStream.__table__.c.position + 1)
    .returning(EventStream.__table__.c.position)
)
_ORDER_COLUMNS = (_events.c.xid, _events.c.id)
_COUNTER = select(EventStream.__table__.c.position).where(EventStream.__table__.c.id == 1)
#: PostgreSQL: the oldest transaction that was running when the statement's snapshot was
#: taken and may be writing to this database (every transaction below it has committed or
#: aborted, or belongs to another database); the snapshot's xmax when there is none.
#: The snapshot's running xids (`xip`) are cluster-wide: those still running in ANOTHER
#: database (pg_stat_activity, read once per transaction) are left out, so a long
#: transaction elsewhere on the cluster does not hold back delivery here. An xid that cannot
#: be placed (finished since, hidden, a prepared transaction) counts as ours: later, never
#: wrong.
HORIZON_XID = literal_column(
    """(SELECT COALESCE(
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x
         WHERE x::text::bigint % 4294967296 NOT IN (
             SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) AS a
             WHERE a.backend_xid IS NOT NULL AND a.datid <> (
                 SELECT oid FROM pg_database WHERE datname = current_database()))),
        pg_snapshot_xmax(s)::text::bigint)
     FROM pg_current_snapshot() AS s)""",
    BigInteger,
)
#: PostgreSQL: this transaction's 64-bit id (assigned now if it had none).
CURRENT_XID = cast(cast(func.pg_current_xact_id(), Text), BigInteger)


def serialised(conversation_id: Any, *, wait: bool = True) -> ColumnElement[bool]:
    """PostgreSQL: a WHERE condition that waits for the conversation's other seq-taking
    transactions to finish; every statement that takes a seq (or row-locks the conversation
    to take one later) must carry it.

    A transaction-scoped advisory lock keyed by the conversation id (nothing else in chatr
    takes advisory locks). As an uncorrelated scalar subquery it is planned as an InitPlan
    (a One-Time Filter) evaluated before the statement touches any row, so before its first
    write or row lock gives the transaction an xid: one conversation's writers get xids in
    the order they take the lock, which is their seq order. Taking it assigns no xid.

    Its (void) result is compared, as text, so that the planner must evaluate it: under
    EXISTS a subquery's select list is thrown away unevaluated. SQLite serialises writers
    anyway.

    Without `wait` the lock is only tried (`pg_try_advisory_xact_lock`, the same InitPlan):
    the condition is false, and the statement writes nothing, when another transaction
    holds it.
    """
    key = cast(conversation_id, BigInteger)
    if not wait:
        return select(func.pg_try_advisory_xact_lock(key)).scalar_subquery()
    lock = func.pg_advisory_xact_lock(key)
    return select(cast(lock, Text)).scalar_subquery() == ""


def serialised_if_free(conversation_ids: Any) -> ColumnElement[Any]:
    """PostgreSQL: the array of those of `conversation_ids` whose advisory lock (see
    `serialised`) this transaction got without waiting: a statement that writes for several
    conversations at once (a batch of sends) writes only for these.

    An uncorrelated scalar subquery, so an InitPlan: every lock is tried before the
    statement's first write, as `serialised` does. Trying never waits, so the order the
    locks are tried in cannot deadlock.
    """
    requested = func.unnest(conversation_ids).table_valued("id").render_derived(name="requested")
    got = (
        select(func.array_agg(requested.c.id))
        .where(func.pg_try_advisory_xact_lock(cast(requested.c.id, BigInteger)))
        .scalar_subquery()
    )
    # (Cast, so that `= ANY(...)` reads it as one array, not as a subquery's rows.)
    return cast(got, ARRAY(BigInteger))


def append_from(
    *,
    for_each: FromClause | None = None,
    only_if: ColumnElement[bool] | None = None,
    **values: Any,
) -> Insert:
    """PostgreSQL: `INSERT INTO events … SELECT <values>, <this transaction's xid>`.

    `values` are the event's columns (those of `append`, and `created_at`): SQL expressions or
    Python values (bound with the column's type); a column left out is NULL. The id comes
    from the sequence (the column's default). An enclosing statement embeds this as one of
    its steps: the event is then logged once per row of `for_each` (a CTE of the rows it
    wrote, whose columns `values` may use), and only if `only_if` holds (nothing is logged
    when the statement's own writes did not happen). Returns `xid, id`: see `position_of`.
    """
    columns = [*_EVENT_COLUMNS, "created_at"]
    source = select(*(_as_column_value(name, values.get(name)) for name in columns), CURRENT_XID)
    if for_each is not None:
        source = source.select_from(for_each)
    if only_if is not None:
        source = source.where(only_if)
    return (
        insert(_events)
        .from_select([*columns, "xid"], source)
        .returning(_events.c.xid, _events.c.id)
    )


def _as_column_value(name: str, value: Any) -> ColumnElement[Any]:
    if isinstance(value, ColumnElement):
        return value
    if value is None:
        return null()
    return literal(value, type_=_events.c[name].type)


@functools.cache
def _append_statement(dialect_name: str) -> Any:
    """PostgreSQL: `append_from` with bind parameters (one round trip). Elsewhere (SQLite)
    the insert takes the counter's next id as a parameter."""
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
    audience_id: int | None = None,
) -> int:
    """Record an event in the connection's transaction; returns its position.

    If the transaction takes the conversation's next seq, its first statement must carry
    `serialised`. `audience_id`: an event for that user alone (announce it on their user
    channel too: they may not be following the conversation).
    """
    values: dict[str, Any] = {
        "type": type,
        "conversation_id": conversation_id,
        "actor_id": actor_id,
        "message_id": message_id,
        "seq": seq,
        "data": data,
        "audience_id": audience_id,
    }
    statement = _append_statement(connection.dialect.name)
    if connection.dialect.name == "postgresql":
        row = (
            await connection.execute(
                statement, {f"b_{name}": value for name, value in values.items()}
            )
        ).one()
        return position_of(row.xid, row.id)
    event_id = await connection.scalar(_NEXT_POSITION)
    assert event_id is not None, "event_stream row missing: run the migrations"
    await connection.execute(
        statement, {"id": event_id, "xid": 0, "created_at": utcnow(), **values}
    )
    return position_of(0, event_id)


def since_now(dialect_name: str) -> dict[str, ColumnElement[int]]:
    """Values for a membership's `since_xid` and `since_event_id` (assigned to the model
    before its flush): the position from which it counts, in the transaction that adds,
    invites or lets the member in. Every event that transaction or a later one logs comes
    after it; none of an earlier one does.

    PostgreSQL: `(this transaction's xid, 0)`; within a conversation, transactions that take
    its advisory lock (`serialised`), as membership changes and sends do, get xids in lock
    order, so the member counts from exactly their own change on. SQLite (one writer at a
    time): the counter as it is now, before this transaction logs anything.
    """
    if dialect_name == "postgresql":
        return {"since_xid": CURRENT_XID, "since_event_id": literal(0, BigInteger)}
    return {"since_xid": literal(0, BigInteger), "since_event_id": _COUNTER.scalar_subquery()}


async def current_position(db: AsyncSession | AsyncConnection) -> int:
    """The horizon: every event below it is committed, visible, and can no longer change.

    PostgreSQL: (xmin, 0). SQLite: the counter (one writer at a time, so everything up to it
    is committed once the counter is).
    """
    dialect = db.get_bind().dialect if isinstance(db, AsyncSession) else db.dialect
    if dialect.name == "postgresql":
        return position_of(await db.scalar(select(HORIZON_XID)) or 0, 0)
    return position_of(0, await db.scalar(_COUNTER) or 0)


@dataclass(frozen=True, slots=True)
class Start:
    """Where a stream that begins "now" begins, taken from one snapshot of the database.

    "Now" is that snapshot: events it sees (committed before) are not for the stream, events
    it does not see are, including those of transactions already running, which commit later
    at positions below events that committed before. So the stream reads from `after`, skips
    what `committed_before` says, and keeps reading until the horizon reaches `settled`
    (every transaction running at the snapshot has finished): from there on the plain cursor
    rule holds. For any stream, a replay that reached `settled` has seen everything
    committed before the snapshot.
    """

    #: Read from here (everything at or below it committed before the snapshot).
    after: int
    #: Replay until the horizon reaches this: then nothing below it can still commit.
    settled: int
    #: Below this position, only events of `in_flight` transactions are new.
    seen_below: int
    in_flight: frozenset[int]

    def committed_before(self, position: int) -> bool:
        return position < self.seen_below and position >> _ID_BITS not in self.in_flight


#: PostgreSQL: the current snapshot's xmin, xmax and running transactions, as bigints.
_SNAPSHOT = text(
    "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint AS xmax,"
    " ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x) AS xip"
    " FROM pg_current_snapshot() AS s"
)


async def starting_point(connection: AsyncConnection) -> Start:
    """The start of a stream that begins now (see `Start`)."""
    if connection.dialect.name != "postgresql":
        counter = await connection.scalar(_COUNTER) or 0
        now = position_of(0, counter)
        return Start(after=now, settled=now, seen_below=now + 1, in_flight=frozenset())
    row = (await connection.execute(_SNAPSHOT)).one()
    return Start(
        after=position_of(row.xmin, 0),
        settled=position_of(row.xmax, 0),
        seen_below=position_of(row.xmax, 0),
        in_flight=frozenset(row.xip or ()),
    )


async def position_before_seq(session: AsyncSession, *, conversation_id: int, seq: int) -> int:
    """The position of message `seq`'s event (or the newest message's below it; 0 if none).

    Replaying events after it yields every message with a larger seq and everything else
    (receipts, edits) that happened since.
    """
    if seq <= 0:
        return 0
    row = (
        await session.execute(
            select(Event.xid, Event.id)
            .where(
                Event.conversation_id == conversation_id,
                Event.type == EventType.MESSAGE_POSTED,
                Event.seq <= seq,
            )
            .order_by(Event.xid.desc(), Event.id.desc())
            .limit(1)
        )
    ).first()
    return 0 if row is None else position_of(row.xid, row.id)


# Built once, as Core: replay runs on every announcement for every live subscription, and
# the ORM's per-query machinery cost more than the query.
_messages = Message.__table__
_memberships = Membership.__table__
_MESSAGE_COLUMNS = [_messages.c[name].label(f"m_{name}") for name in _SNAPSHOT_FIELDS]
_MESSAGE_KEYS = tuple(f"m_{name}" for name in _SNAPSHOT_FIELDS)
_ORDER = _ORDER_COLUMNS


def _after_and_final(
    dialect_name: str, horizon_xid: ColumnElement[int] | None = None
) -> list[ColumnElement[bool]]:
    """Events after the position bound as (after_xid, after_id) and, on PostgreSQL, below the
    horizon (`horizon_xid`, else the statement's own): the part of the log no transaction can
    still add to."""
    after = tuple_(*_ORDER) > tuple_(
        bindparam("after_xid", type_=BigInteger), bindparam("after_id", type_=BigInteger)
    )
    if dialect_name != "postgresql":
        return [after]
    if horizon_xid is None:
        horizon_xid = select(HORIZON_XID).scalar_subquery()
    return [after, _events.c.xid < horizon_xid]


def _after(position: int) -> dict[str, int]:
    xid, event_id = split_position(position)
    return {"after_xid": xid, "after_id": event_id}


#: The event comes after the position the (joined) membership counts from.
_AFTER_SINCE = tuple_(*_ORDER_COLUMNS) > tuple_(
    _memberships.c.since_xid, _memberships.c.since_event_id
)


#: Events addressed to someone who no longer has a place in the conversation, which reach
#: them nevertheless: they say so.
_FOR_FORMER_MEMBERS = (EventType.CONVERSATION_DELETED, EventType.MEMBERSHIP_ENDED)


@functools.cache
def _replay(dialect_name: str, *, one_conversation: bool) -> Any:
    """The viewer's events: those of conversations they are an accepted member of now,
    logged since their membership counts (`Membership.since_xid`: a late joiner gets
    nothing from before they joined), and those addressed to them alone (`audience_id`)
    since they have had their place there (invited or a member), or telling them that the
    conversation was deleted or that they left it or were removed (those are for former
    members: `_FOR_FORMER_MEMBERS`). Whoever left or was removed sees nothing else of it
    any more, not even an invitation they once had: an
    invitation withdrawn or declined reaches nobody, and one repeated later is the only
    one the invitee gets."""
    statement = (
        select(_events, *_MESSAGE_COLUMNS)
        .outerjoin(
            _memberships,
            and_(
                _memberships.c.conversation_id == _events.c.conversation_id,
                _memberships.c.user_id == bindparam("viewer_id"),
            ),
        )
        .outerjoin(_messages, _messages.c.id == _events.c.message_id)
        .where(
            *_after_and_final(dialect_name),
            or_(
                and_(
                    _memberships.c.state == MembershipState.ACCEPTED,
                    _events.c.audience_id.is_(None),
                    _AFTER_SINCE,
                ),
                and_(
                    _events.c.audience_id == bindparam("viewer_id"),
                    or_(
                        and_(_memberships.c.id.is_not(None), _AFTER_SINCE),
                        _events.c.type.in_(_FOR_FORMER_MEMBERS),
                    ),
                ),
            ),
        )
        .order_by(*_ORDER)
        .limit(REPLAY_PAGE)
    )
    if one_conversation:
        statement = statement.where(_events.c.conversation_id == bindparam("conversation_id"))
    return statement


def _logged(rows: Sequence[Any]) -> list[LoggedEvent]:
    events = []
    for row in rows:
        values = row._mapping
        message = None
        if values["m_id"] is not None:
            message = MessageSnapshot(*(values[key] for key in _MESSAGE_KEYS))
        events.append(
            LoggedEvent(
                position_of(values["xid"], values["id"]),
                EventType(values["type"]),
                values["conversation_id"],
                values["actor_id"],
                values["seq"],
                values["data"],
                message,
                values["audience_id"],
            )
        )
    return events


async def list_for_conversation(
    connection: AsyncConnection, *, viewer_id: int, conversation_id: int, after: int
) -> list[LoggedEvent]:
    """Events after `after` in one conversation, only while the viewer is a member."""
    result = await connection.execute(
        _replay(connection.dialect.name, one_conversation=True),
        {"viewer_id": viewer_id, "conversation_id": conversation_id, **_after(after)},
    )
    return _logged(result.all())


async def list_for_user(
    connection: AsyncConnection, *, viewer_id: int, after: int
) -> list[LoggedEvent]:
    """Events after `after` in every conversation the viewer is an accepted member of."""
    result = await connection.execute(
        _replay(connection.dialect.name, one_conversation=False),
        {"viewer_id": viewer_id, **_after(after)},
    )
    return _logged(result.all())


def _one_of(column: Column[Any], name: str, dialect_name: str) -> ColumnElement[bool]:
    """`column` is one of the list bound as `name`: `= ANY(array)` on PostgreSQL, so the SQL
    text (and its prepared statement) stays the same whatever the list's length."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


@functools.cache
def _listener_page(dialect_name: str, horizon_xid: ColumnElement[int] | None = None) -> Any:
    """A page of events after `after` in `conversation_ids`, where one of `user_ids` is an
    accepted member, or addressed to one of `user_ids` (below `horizon_xid`: see
    `_after_and_final`)."""
    is_member = exists().where(
        _memberships.c.conversation_id == _events.c.conversation_id,
        _one_of(_memberships.c.user_id, "user_ids", dialect_name),
        _memberships.c.state == MembershipState.ACCEPTED,
    )
    return (
        select(_events, *_MESSAGE_COLUMNS)
        .outerjoin(_messages, _messages.c.id == _events.c.message_id)
        .where(
            *_after_and_final(dialect_name, horizon_xid),
            or_(
                _one_of(_events.c.conversation_id, "conversation_ids", dialect_name),
                is_member,
                _one_of(_events.c.audience_id, "user_ids", dialect_name),
            ),
        )
        .order_by(*_ORDER)
        .limit(REPLAY_PAGE)
    )


def _members_where(dialect_name: str, conversations: Any) -> list[ColumnElement[bool]]:
    return [
        _memberships.c.conversation_id.in_(conversations),
        _one_of(_memberships.c.user_id, "member_ids", dialect_name),
        _memberships.c.state == MembershipState.ACCEPTED,
    ]


#: A member whose membership counts from after the position being read from: some events
#: of the page may predate them.
_JOINED_AFTER = tuple_(_memberships.c.since_xid, _memberships.c.since_event_id) > tuple_(
    bindparam("after_xid", type_=BigInteger), bindparam("after_id", type_=BigInteger)
)


@functools.cache
def _listener_members(dialect_name: str) -> Any:
    """SQLite: which of `member_ids` are accepted members of `page_conversation_ids`, with
    the position each membership counts from."""
    conversations: BindParameter[list[int]] = bindparam("page_conversation_ids", expanding=True)
    return select(
        _memberships.c.conversation_id,
        _memberships.c.user_id,
        _memberships.c.since_xid,
        _memberships.c.since_event_id,
    ).where(*_members_where(dialect_name, conversations))


@functools.cache
def _listener_round_trip() -> Any:
    """PostgreSQL: horizon, page and members in one statement, so one round trip and one
    snapshot (the page is read below the same statement's horizon).

    Each conversation's members ride on its first event's row only.
    """
    # The page is read below the very horizon the statement reports.
    horizon = select(HORIZON_XID.label("xmin")).cte("horizon")
    page = _listener_page("postgresql", select(horizon.c.xmin).scalar_subquery()).cte("page")
    # Members who joined after `after` (rare: usually null) with where they count from.
    late = func.json_agg(
        func.json_build_array(
            _memberships.c.user_id, _memberships.c.since_xid, _memberships.c.since_event_id
        ),
        type_=postgresql.JSON,
    ).filter(_JOINED_AFTER)
    members = (
        select(
            _memberships.c.conversation_id,
            func.array_agg(_memberships.c.user_id).label("member_ids"),
            late.label("late"),
        )
        .where(*_members_where("postgresql", select(page.c.conversation_id)))
        .group_by(_memberships.c.conversation_id)
        .cte("members")
    )
    first_of_its_conversation = (
        func.row_number().over(
            partition_by=page.c.conversation_id, order_by=(page.c.xid, page.c.id)
        )
        == 1
    )
    return (
        select(
            horizon.c.xmin.label("horizon_xid"),
            page,
            case((first_of_its_conversation, members.c.member_ids)).label("member_ids"),
            case((first_of_its_conversation, members.c.late)).label("late"),
        )
        .select_from(
            horizon.outerjoin(page, true()).outerjoin(
                members, members.c.conversation_id == page.c.conversation_id
            )
        )
        .order_by(page.c.xid, page.c.id)
    )


@dataclass(frozen=True, slots=True)
class ListenerBatch:
    """One page of what an instance's live subscriptions may need, read once for all of them."""

    events: list[LoggedEvent]
    #: conversation id -> which of the asked-about users are accepted members now.
    members: dict[int, frozenset[int]]
    #: conversation id -> member -> the position their membership counts from, for those
    #: of `members` who joined after the position the batch was read from.
    since: dict[int, dict[int, int]]
    #: Every event up to here that concerns the listeners is in `events` (when `complete`).
    horizon: int
    #: Fewer than a page came back: read again only after new announcements.
    complete: bool

    def may_see(self, event: LoggedEvent) -> frozenset[int]:
        """Which of the asked-about users may see `event` (see `may_see`)."""
        conversation_id = event.conversation_id
        return may_see(event, self.members.get(conversation_id), self.since.get(conversation_id))


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

    The page is read below the horizon of the same statement (PostgreSQL; see
    `current_position`), or after reading the counter (SQLite), so a complete page covers
    everything up to the horizon, and the next read starts there rather than re-scanning
    events that concern nobody here.
    """
    parameters = {
        **_after(after),
        "conversation_ids": list(conversation_ids),
        "user_ids": list(user_ids),
        "member_ids": list(member_ids),
    }
    members: dict[int, frozenset[int]] = {}
    since: dict[int, dict[int, int]] = {}
    if connection.dialect.name == "postgresql":
        rows = (await connection.execute(_listener_round_trip(), parameters)).all()
        # The outer join always yields the horizon's row.
        horizon = position_of(rows[0].horizon_xid, 0)
        rows = [row for row in rows if row.id is not None]
        events = _logged(rows)
        for row in rows:
            if row.member_ids is not None:
                members[row.conversation_id] = frozenset(row.member_ids)
            if row.late:
                since[row.conversation_id] = {
                    user_id: position_of(xid, event_id) for user_id, xid, event_id in row.late
                }
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
            found: dict[int, set[int]] = {}
            for conversation_id, user_id, xid, event_id in result.all():
                found.setdefault(conversation_id, set()).add(user_id)
                if position_of(xid, event_id) > after:
                    since.setdefault(conversation_id, {})[user_id] = position_of(xid, event_id)
            members = {key: frozenset(value) for key, value in found.items()}
    return ListenerBatch(
        events=events,
        members=members,
        since=since,
        horizon=horizon,
        complete=len(events) < REPLAY_PAGE,
    )
