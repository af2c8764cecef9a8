"""How a text message is written: the send's statements, built once, and their runner.

Sending is the hottest write: its statements are built once, as Core, with bind parameters
(constructing and ORM-executing them per call cost more CPU than the database work). All
three forms are assembled from the same fragments (functions of the SQL expressions that
supply a send's values: bind parameters, or the columns of a batch):

* PostgreSQL, one send: one statement in autocommit (`send_in_one_statement`);
* PostgreSQL, several sends that queued together (`chatr.aio.GroupCommit`): one statement
  for all of them (`send_batch_statement`), which pays the database's fixed cost per
  statement and per commit once;
* SQLite: the same steps as separate statements in one transaction (`store_step_by_step`).

`store_all` is the runner the instance's group commit calls with each batch.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    BindParameter,
    Boolean,
    ColumnElement,
    DateTime,
    Select,
    String,
    Text,
    Update,
    any_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatr.db import ConnectionLost, insert_ignoring_conflicts
from chatr.infra import event_log, precompiled
from chatr.infra.precompiled import Precompiled
from chatr.models import (
    Conversation,
    ConversationStatus,
    Event,
    EventType,
    Membership,
    MembershipState,
    Message,
    MessageKind,
    MessageMention,
)
from chatr.services.social import blocks

log = logging.getLogger("chatr.sends")

_conversations = Conversation.__table__
_memberships = Membership.__table__
_messages = Message.__table__
_mentions = MessageMention.__table__
_events = Event.__table__


class AlreadySent(Exception):
    """The sender already used this client id: nothing was written."""


class NotPostable(Exception):
    """The conversation is missing or the sender may not post there: nothing was written."""


class Unwritten(Exception):
    """A statement that does not wait for locks did not write this send (see `store_all`)."""


@dataclass(frozen=True, slots=True)
class Written:
    """What the database assigned to a stored message."""

    message_id: int
    seq: int
    #: Its event's position in the log (chatr.infra.event_log.position_of).
    position: int


@dataclass(frozen=True)
class StoredMessage:
    conversation_id: int
    sender_id: int
    client_id: str
    body: str | None
    now: datetime
    reply_to_id: int | None = None
    reply_snapshot: dict[str, Any] | None = None
    forwarded: bool = False
    #: Members the text mentions (resolved before the send; chatr.services.mentions).
    mention_ids: tuple[int, ...] = ()

    def parameters(self) -> dict[str, Any]:
        """The bind parameters of the one-send forms (by hand: `asdict` deep-copies, which
        cost more than building the statement's parameters)."""
        parameters = {
            "b_conversation_id": self.conversation_id,
            "b_sender_id": self.sender_id,
            "b_client_id": self.client_id,
            "b_body": self.body,
            "b_reply_to_id": self.reply_to_id,
            "b_reply_snapshot": self.reply_snapshot,
            "b_forwarded": self.forwarded,
            "b_now": self.now,
        }
        if self.mention_ids:
            parameters["b_mention_ids"] = list(self.mention_ids)
        return parameters


def _parameter(name: str, column: ColumnElement[Any]) -> BindParameter[Any]:
    return bindparam(f"b_{name}", type_=column.type)


@dataclass(frozen=True)
class _SendValues:
    """The SQL expressions a send's statement takes its values from."""

    conversation_id: ColumnElement[Any]
    sender_id: ColumnElement[Any]
    client_id: ColumnElement[Any]
    body: ColumnElement[Any]
    reply_to_id: ColumnElement[Any]
    reply_snapshot: ColumnElement[Any]
    forwarded: ColumnElement[Any]
    now: ColumnElement[Any]

    @classmethod
    def columns_of(cls, rows: Any, conversation_id: ColumnElement[Any]) -> _SendValues:
        """The values as columns of `rows` (the batch, or a step's RETURNING) named as in
        `_CARRIED`; JSON travels as text, so it is cast back."""
        return cls(
            conversation_id=conversation_id,
            sender_id=rows.c.sender_id,
            client_id=rows.c.client_id,
            body=rows.c.body,
            reply_to_id=rows.c.reply_to_id,
            reply_snapshot=cast(rows.c.reply_snapshot, JSON),
            forwarded=rows.c.forwarded,
            now=rows.c.now,
        )


#: One send's values, as bind parameters (`StoredMessage.parameters`).
_BOUND = _SendValues(
    conversation_id=_parameter("conversation_id", _messages.c.conversation_id),
    sender_id=_parameter("sender_id", _messages.c.sender_id),
    client_id=_parameter("client_id", _messages.c.client_id),
    body=_parameter("body", _messages.c.body),
    reply_to_id=_parameter("reply_to_id", _messages.c.reply_to_id),
    reply_snapshot=_parameter("reply_snapshot", _messages.c.reply_snapshot),
    forwarded=_parameter("forwarded", _messages.c.forwarded),
    now=_parameter("now", _messages.c.created_at),
)


def _take_next_seq(send: _SendValues) -> Update:
    """Take the next seq (the conversation's row lock) if the sender may post: an accepted
    member, and no block between the two people of a DM."""
    return (
        update(_conversations)
        .where(
            _conversations.c.id == send.conversation_id,
            # Re-checked on the row's newest version after waiting for its lock: a send that
            # waited for a deletion for everyone takes no seq in what is left of it.
            _conversations.c.deleted_at.is_(None),
            exists().where(
                _memberships.c.conversation_id == send.conversation_id,
                _memberships.c.user_id == send.sender_id,
                _memberships.c.state == MembershipState.ACCEPTED,
            ),
            blocks.no_block_in_direct(send.conversation_id, send.sender_id),
        )
        .values(
            last_seq=_conversations.c.last_seq + 1,
            last_activity_at=send.now,
            # A reply from the person asked accepts a message request.
            status=case(
                (
                    (_conversations.c.status == ConversationStatus.PENDING)
                    & (_conversations.c.created_by_id != send.sender_id),
                    ConversationStatus.ACTIVE,
                ),
                else_=_conversations.c.status,
            ),
        )
    )


def _message_values(send: _SendValues, seq: ColumnElement[int]) -> dict[str, ColumnElement[Any]]:
    """The new message's row, at `seq`."""
    return {
        "conversation_id": send.conversation_id,
        "seq": seq,
        "sender_id": send.sender_id,
        "client_id": send.client_id,
        "kind": literal(MessageKind.TEXT, type_=_messages.c.kind.type),
        "body": send.body,
        "reply_to_id": send.reply_to_id,
        "reply_snapshot": send.reply_snapshot,
        "forwarded": send.forwarded,
        "created_at": send.now,
    }


def _mark_own_message_read(
    conversation_id: ColumnElement[int], sender_id: ColumnElement[int], seq: ColumnElement[int]
) -> Update:
    """Sending implies having read everything up to one's own message."""
    return (
        update(_memberships)
        .where(
            _memberships.c.conversation_id == conversation_id,
            _memberships.c.user_id == sender_id,
        )
        .values(last_read_seq=seq, last_delivered_seq=seq)
    )


# -- SQLite: step by step ------------------------------------------------------------------

_TAKE_NEXT_SEQ = _take_next_seq(_BOUND).returning(_conversations.c.last_seq)
_SEQ = _parameter("seq", _messages.c.seq)
_MARK_OWN_MESSAGE_READ = _mark_own_message_read(_BOUND.conversation_id, _BOUND.sender_id, _SEQ)


@functools.cache
def _insert_message(dialect_name: str) -> Any:
    return (
        insert_ignoring_conflicts(dialect_name, _messages)
        .values(_message_values(_BOUND, _SEQ))
        .on_conflict_do_nothing(index_elements=["sender_id", "client_id"])
        .returning(_messages.c.id)
    )


async def store_step_by_step(connection: AsyncConnection, stored: StoredMessage) -> Written:
    """The send as separate statements in the caller's transaction: SQLite (which
    serialises writers), and media messages, whose transaction does more."""
    parameters = stored.parameters()
    seq = await connection.scalar(_TAKE_NEXT_SEQ, parameters)
    if seq is None:
        raise NotPostable
    parameters["b_seq"] = seq
    message_id = await connection.scalar(_insert_message(connection.dialect.name), parameters)
    if message_id is None:
        raise AlreadySent
    await connection.execute(_MARK_OWN_MESSAGE_READ, parameters)
    if stored.mention_ids:
        await connection.execute(
            insert(_mentions),
            [
                {
                    "message_id": message_id,
                    "user_id": user_id,
                    "conversation_id": stored.conversation_id,
                    "seq": seq,
                }
                for user_id in stored.mention_ids
            ],
        )
    position = await event_log.append(
        connection,
        type=EventType.MESSAGE_POSTED,
        conversation_id=stored.conversation_id,
        actor_id=stored.sender_id,
        message_id=message_id,
        seq=seq,
    )
    return Written(message_id, seq, position)


# -- PostgreSQL: one send, one statement ---------------------------------------------------

_MENTION_IDS = bindparam("b_mention_ids", type_=ARRAY(BigInteger))


@functools.cache
def send_in_one_statement(*, with_mentions: bool, wait: bool = True) -> Select[int, int, int, int]:
    """PostgreSQL: the whole send as one statement, run in autocommit: one round trip.

    Statement-level atomicity does the transaction's job. A reused client id makes the INSERT
    violate its unique index (no ON CONFLICT here), which aborts the whole statement, the seq
    increment included, so no gap; a sender who may not post takes no seq, so nothing
    downstream happens. Each step reads the previous one's RETURNING, which fixes the order
    rows are locked in: conversation (the seq lock), then the sender's membership — the same
    order as the step-by-step version, so the two can never deadlock each other.

    The conversation's advisory lock (`event_log.serialised`) is an InitPlan of the seq
    UPDATE's WHERE: taken before the UPDATE writes, i.e. before this transaction has an xid,
    so one conversation's sends get xids in seq order. Nothing is shared with sends to other
    conversations: the event's id comes from a sequence. Without `wait` the lock is only
    tried: a busy one makes the statement write nothing (see `store_all`).
    """
    send = _BOUND
    taken = (
        _take_next_seq(send)
        .where(event_log.serialised(send.conversation_id, wait=wait))
        .returning(_conversations.c.last_seq)
        .cte("taken")
    )
    values = _message_values(send, taken.c.last_seq)
    inserted = (
        insert(_messages)
        .from_select(list(values), select(*values.values()))
        .returning(_messages.c.id, _messages.c.conversation_id, _messages.c.seq)
        .cte("inserted")
    )
    own_read = (
        _mark_own_message_read(inserted.c.conversation_id, send.sender_id, inserted.c.seq)
        .returning(_memberships.c.id)
        .cte("own_read")
    )
    logged = event_log.append_from(
        for_each=inserted,
        only_if=exists(select(own_read.c.id)),
        type=EventType.MESSAGE_POSTED,
        conversation_id=inserted.c.conversation_id,
        actor_id=send.sender_id,
        message_id=inserted.c.id,
        seq=inserted.c.seq,
        created_at=send.now,
    ).cte("logged")
    statement = select(inserted.c.id, inserted.c.seq, logged.c.xid, logged.c.id).select_from(
        inserted.join(logged, true())
    )
    if with_mentions:
        # Its own step, only in the statement for texts that mention someone: most don't.
        named = func.unnest(_MENTION_IDS).table_valued("user_id").render_derived(name="named")
        mentioned = (
            insert(_mentions)
            .from_select(
                ["message_id", "user_id", "conversation_id", "seq"],
                select(
                    inserted.c.id, named.c.user_id, inserted.c.conversation_id, inserted.c.seq
                ).select_from(inserted.join(named, true())),
            )
            .returning(_mentions.c.id)
            .cte("mentioned")
        )
        statement = statement.add_cte(mentioned)
    return statement


@functools.lru_cache(maxsize=16)
def _precompiled_send(dialect: Dialect, *, with_mentions: bool, wait: bool) -> Precompiled:
    return Precompiled(send_in_one_statement(with_mentions=with_mentions, wait=wait), dialect)


async def store_one(engine: AsyncEngine, stored: StoredMessage) -> Written:
    """One send in one statement that waits for its conversation's lock; raises
    `AlreadySent` or `NotPostable` when it wrote nothing."""
    outcome = await _store_one(engine, stored, wait=True)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def _store_one(
    engine: AsyncEngine, stored: StoredMessage, *, wait: bool
) -> Written | Exception:
    """One send in one statement, on asyncpg directly (chatr.infra.precompiled). Without
    `wait`, a busy conversation lock makes it write nothing, like a refusal: `Unwritten`."""
    statement = _precompiled_send(engine.dialect, with_mentions=bool(stored.mention_ids), wait=wait)
    try:
        row = await precompiled.fetch_row(engine, statement, stored.parameters())
    except asyncpg.IntegrityConstraintViolationError as error:
        already = AlreadySent()
        already.__cause__ = error
        return already
    if row is None:
        return NotPostable() if wait else Unwritten()
    message_id, seq, xid, event_id = row
    return Written(message_id, seq, event_log.position_of(xid, event_id))


# -- PostgreSQL: a batch of sends, one statement -------------------------------------------

#: Sends one batch statement carries at most (its arrays are bound as parameters).
BATCH_LIMIT = 64

#: The batch's columns that `_SendValues.columns_of` reads (the conversation's id aside).
_CARRIED = ("sender_id", "client_id", "body", "reply_to_id", "reply_snapshot", "forwarded", "now")

#: The batch's sends as rows: one array parameter per value, unnested side by side.
_BATCH = (
    func.unnest(
        bindparam("b_conversation_ids", type_=ARRAY(BigInteger)),
        bindparam("b_sender_ids", type_=ARRAY(BigInteger)),
        bindparam("b_client_ids", type_=ARRAY(String)),
        bindparam("b_bodies", type_=ARRAY(Text)),
        bindparam("b_reply_to_ids", type_=ARRAY(BigInteger)),
        # JSON as text: an array of json would need its own codec on the driver.
        bindparam("b_reply_snapshots", type_=ARRAY(Text)),
        bindparam("b_forwarded", type_=ARRAY(Boolean)),
        bindparam("b_nows", type_=ARRAY(DateTime(timezone=True))),
    )
    .table_valued(
        column("conversation_id", BigInteger),
        column("sender_id", BigInteger),
        column("client_id", String),
        column("body", Text),
        column("reply_to_id", BigInteger),
        column("reply_snapshot", Text),
        column("forwarded", Boolean),
        column("now", DateTime(timezone=True)),
        with_ordinality="position",
    )
    .render_derived(name="batch")
)


@functools.cache
def send_batch_statement() -> Select[int, int, int, int, int]:
    """PostgreSQL: several sends, each to a different conversation, as one statement.

    The one-send statement's steps, each over the batch's rows; every send's rules are the
    same, row by row. Rows are `(position, message id, seq, xid, event id)` for the sends
    that were written; a send missing from them took no seq and wrote nothing, either
    because its sender may not post there or because its conversation's lock was busy.

    The conversations' advisory locks are *tried* (`event_log.serialised_if_free`), in one
    InitPlan before the first write, so before the transaction has an xid, as in the
    one-send statement: a batch never waits for another transaction's seq lock, so a send
    is never held up by a busy conversation it merely shares a batch with. A send whose lock
    was busy is left out and sent again on its own, which waits its turn.
    """
    batch = _BATCH
    send = _SendValues.columns_of(batch, batch.c.conversation_id)
    conversation_ids = bindparam("b_conversation_ids", type_=ARRAY(BigInteger))
    locked = event_log.serialised_if_free(conversation_ids)
    taken = (
        _take_next_seq(send)
        .where(batch.c.conversation_id == any_(locked))
        # Implied by the join, but it lets the generic plan fetch the batch's conversations
        # by primary key. Without it, once the prepared statement went generic (its sixth
        # run on a connection), the planner, which takes an array parameter for ~100 rows,
        # read all of `conversations` into a hash join: one sequential scan per statement,
        # a fifth to a third of the statement's PostgreSQL CPU at 1,000 conversations and growing
        # with the table (docs/architecture.md, "Where a batch finds its conversations").
        .where(_conversations.c.id == any_(conversation_ids))
        # (the batch's values ride along to the next steps)
        .returning(
            _conversations.c.id,
            _conversations.c.last_seq,
            batch.c.position,
            *(batch.c[name] for name in _CARRIED),
        )
        .cte("taken")
    )
    values = _message_values(_SendValues.columns_of(taken, taken.c.id), taken.c.last_seq)
    inserted = (
        insert(_messages)
        .from_select(list(values), select(*values.values()).order_by(taken.c.position))
        .returning(
            _messages.c.id,
            _messages.c.conversation_id,
            _messages.c.seq,
            _messages.c.sender_id,
            _messages.c.created_at,
        )
        .cte("inserted")
    )
    own_read = (
        _mark_own_message_read(inserted.c.conversation_id, inserted.c.sender_id, inserted.c.seq)
        .returning(_memberships.c.id)
        .cte("own_read")
    )
    logged = (
        event_log.append_from(
            for_each=inserted,
            only_if=exists(select(own_read.c.id)),
            type=EventType.MESSAGE_POSTED,
            conversation_id=inserted.c.conversation_id,
            actor_id=inserted.c.sender_id,
            message_id=inserted.c.id,
            seq=inserted.c.seq,
            created_at=inserted.c.created_at,
        )
        .returning(_events.c.message_id)
        .cte("logged")
    )
    return select(
        taken.c.position, inserted.c.id, inserted.c.seq, logged.c.xid, logged.c.id
    ).select_from(
        inserted.join(taken, taken.c.id == inserted.c.conversation_id).join(
            logged, logged.c.message_id == inserted.c.id
        )
    )


@functools.lru_cache(maxsize=4)
def _precompiled_batch(dialect: Dialect) -> Precompiled:
    return Precompiled(send_batch_statement(), dialect)


def _batch_parameters(sends: Sequence[StoredMessage]) -> dict[str, Any]:
    return {
        "b_conversation_ids": [s.conversation_id for s in sends],
        "b_sender_ids": [s.sender_id for s in sends],
        "b_client_ids": [s.client_id for s in sends],
        "b_bodies": [s.body for s in sends],
        "b_reply_to_ids": [s.reply_to_id for s in sends],
        "b_reply_snapshots": [
            None if s.reply_snapshot is None else json.dumps(s.reply_snapshot) for s in sends
        ],
        "b_forwarded": [s.forwarded for s in sends],
        "b_nows": [s.now for s in sends],
    }


async def store_all(
    engine: AsyncEngine, sends: Sequence[StoredMessage]
) -> list[Written | Exception]:
    """The group commit's runner: write `sends` (each to a different conversation, none
    mentioning anyone) without waiting for any conversation's lock.

    One send alone goes in the one-send statement, more in the batch statement. Each gets
    `Written`; or `AlreadySent` (alone: its client id was used); or `Unwritten`: its lock
    was busy, it may not post, or the batch statement failed as a whole (a client id used
    again aborts it, as it does a single send). An unwritten send is sent again on its own
    by `store_one`, outside the group commit, which waits for its lock and gives it its
    definitive answer: a retried send finds its earlier self, a refused one is refused
    alone, and a send that waits for a busy conversation holds up no other.
    """
    if any(stored.mention_ids for stored in sends):
        raise ValueError("a send that mentions someone is sent on its own (store_one)")
    if len(sends) == 1:
        return [await _store_one(engine, sends[0], wait=False)]
    try:
        rows = await precompiled.fetch_rows(
            engine, _precompiled_batch(engine.dialect), _batch_parameters(sends)
        )
    except (asyncpg.PostgresError, ConnectionLost) as error:
        log.info("a batch of %d sends failed (each is sent again alone): %r", len(sends), error)
        rows = []
    outcomes: list[Written | Exception] = [Unwritten() for _ in sends]
    for position, message_id, seq, xid, event_id in rows:
        outcomes[position - 1] = Written(message_id, seq, event_log.position_of(xid, event_id))
    return outcomes
