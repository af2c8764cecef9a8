"""Sending and reading messages."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import (
    BigInteger,
    String,
    Text,
    bindparam,
    case,
    exists,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chatr.db import insert_ignoring_conflicts
from chatr.errors import BadUserInput, Forbidden
from chatr.models import (
    Conversation,
    ConversationStatus,
    EventType,
    Membership,
    MembershipState,
    Message,
    MessageKind,
)
from chatr.models.base import UTCDateTime, utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import conversations, event_log, rate_limits, social, validation
from chatr.services.pagination import Page, PageRequest, paginate


class _AlreadySent(Exception):
    """Unwinds the send transaction when this client id was already used by the sender."""


class _NotPostable(Exception):
    """Unwinds the send transaction when the conversation is missing or not the sender's."""


_conversations = Conversation.__table__
_memberships = Membership.__table__
_messages = Message.__table__

# Sending is the hottest write: its statements are built once, as Core, with bind parameters
# (constructing and ORM-executing them per call cost more CPU than the database work).
_TAKE_NEXT_SEQ = (
    update(_conversations)
    .where(
        _conversations.c.id == bindparam("b_conversation_id"),
        exists().where(
            _memberships.c.conversation_id == bindparam("b_conversation_id"),
            _memberships.c.user_id == bindparam("b_sender_id"),
            _memberships.c.state == MembershipState.ACCEPTED,
        ),
        social.no_block_in_direct(bindparam("b_conversation_id"), bindparam("b_sender_id")),
    )
    .values(
        last_seq=_conversations.c.last_seq + 1,
        last_activity_at=bindparam("b_now"),
        # A reply from the person asked accepts a message request.
        status=case(
            (
                (_conversations.c.status == ConversationStatus.PENDING)
                & (_conversations.c.created_by_id != bindparam("b_sender_id")),
                ConversationStatus.ACTIVE,
            ),
            else_=_conversations.c.status,
        ),
    )
    .returning(_conversations.c.last_seq)
)
_MARK_OWN_MESSAGE_READ = (
    update(_memberships)
    .where(
        _memberships.c.conversation_id == bindparam("b_conversation_id"),
        _memberships.c.user_id == bindparam("b_sender_id"),
    )
    .values(last_read_seq=bindparam("b_seq"), last_delivered_seq=bindparam("b_seq"))
)


@functools.cache
def _insert_message(dialect_name: str) -> Any:
    return (
        insert_ignoring_conflicts(dialect_name, _messages)
        .on_conflict_do_nothing(index_elements=["sender_id", "client_id"])
        .returning(_messages.c.id)
    )


async def _find_by_client_id(rt: Runtime, *, sender_id: int, client_id: str) -> Message | None:
    async with rt.db.reader() as session:
        return await session.scalar(
            select(Message).where(Message.sender_id == sender_id, Message.client_id == client_id)
        )


async def _explain_refusal(rt: Runtime, *, sender_id: int, conversation_id: int) -> NoReturn:
    """Why the send statement took no seq: a block in a DM, or not a member."""
    async with rt.db.reader() as session:
        await social.ensure_not_blocked_in(
            session, user_id=sender_id, conversation_id=conversation_id
        )
        await conversations.get_membership_or_raise(
            session, viewer_id=sender_id, conversation_id=conversation_id
        )
    raise Forbidden("You cannot post in this conversation.", field="conversationId")


async def _ensure_recipient_not_blocked(rt: Runtime, *, sender_id: int, recipient_id: int) -> None:
    """By recipient the DM may not exist yet, so the block rule is checked before it is made.

    (Into an existing conversation the rule rides on the send statement itself, at no extra
    round trip.) Accepted race: a block committed between this check and the send lets that
    one message through, as if sent a moment before the block; later sends see it.
    """
    async with rt.db.autocommit_engine.connect() as connection:
        await social.ensure_not_blocked(
            connection, user_id=sender_id, other_id=recipient_id, field="recipientId"
        )


@dataclass(frozen=True)
class StoredMessage:
    conversation_id: int
    sender_id: int
    client_id: str
    body: str
    now: datetime


#: PostgreSQL: the whole send is one statement, run in autocommit: one round trip.
#: Statement-level atomicity does the transaction's job. A reused client id makes the INSERT
#: violate its unique index, which aborts the whole statement (the seq increment included, so
#: no gap); a sender who is not a member takes no seq, so nothing downstream happens.
#: Each step reads the previous one's RETURNING, which fixes the order rows are locked in:
#: conversation (the seq lock), then the sender's membership, then the event stream — the
#: same order as the step-by-step version, so the two can never deadlock each other.
_SEND_IN_ONE_STATEMENT = text(
    """
    WITH taken AS (
        UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = :now,
            status = CASE WHEN status = 'PENDING' AND created_by_id <> :sender_id
                          THEN 'ACTIVE' ELSE status END
        WHERE id = :conversation_id AND EXISTS (
            SELECT 1 FROM memberships
            WHERE conversation_id = :conversation_id AND user_id = :sender_id
              AND state = 'ACCEPTED')
          AND (kind <> 'DIRECT' OR NOT EXISTS (
            SELECT 1 FROM memberships AS peer JOIN blocks
              ON (blocks.blocker_id = :sender_id AND blocks.blocked_id = peer.user_id)
              OR (blocks.blocker_id = peer.user_id AND blocks.blocked_id = :sender_id)
            WHERE peer.conversation_id = :conversation_id AND peer.user_id <> :sender_id))
        RETURNING last_seq
    ), inserted AS (
        INSERT INTO messages (conversation_id, seq, sender_id, client_id, kind, body, created_at)
        SELECT :conversation_id, taken.last_seq, :sender_id, :client_id, 'TEXT', :body, :now
        FROM taken
        RETURNING id, seq
    ), own_read AS (
        UPDATE memberships SET last_read_seq = inserted.seq, last_delivered_seq = inserted.seq
        FROM inserted
        WHERE memberships.conversation_id = :conversation_id
          AND memberships.user_id = :sender_id
        RETURNING memberships.id
    ), next_position AS (
        UPDATE event_stream SET position = position + 1
        WHERE id = 1 AND EXISTS (SELECT 1 FROM own_read)
        RETURNING position
    ), logged AS (
        INSERT INTO events (id, type, conversation_id, actor_id, message_id, seq, created_at)
        SELECT next_position.position, 'MESSAGE_POSTED', :conversation_id, :sender_id,
               inserted.id, inserted.seq, :now
        FROM next_position, inserted
        RETURNING id
    )
    SELECT inserted.id, inserted.seq, logged.id FROM inserted, logged
    """
).bindparams(
    bindparam("conversation_id", type_=BigInteger),
    bindparam("sender_id", type_=BigInteger),
    bindparam("client_id", type_=String),
    bindparam("body", type_=Text),
    bindparam("now", type_=UTCDateTime()),
)


async def _store_in_one_statement(rt: Runtime, stored: StoredMessage) -> tuple[int, int, int]:
    try:
        async with rt.db.autocommit_engine.connect() as connection:
            row = (await connection.execute(_SEND_IN_ONE_STATEMENT, asdict(stored))).first()
    except IntegrityError as error:
        raise _AlreadySent from error
    if row is None:
        raise _NotPostable
    return tuple(row)  # type: ignore[return-value]


async def _store_step_by_step(
    connection: AsyncConnection, stored: StoredMessage
) -> tuple[int, int, int]:
    """The same transaction as separate statements, for SQLite (which serialises writers)."""
    keys = {"b_conversation_id": stored.conversation_id, "b_sender_id": stored.sender_id}
    seq = await connection.scalar(_TAKE_NEXT_SEQ, {**keys, "b_now": stored.now})
    if seq is None:
        raise _NotPostable
    message_id = await connection.scalar(
        _insert_message(connection.dialect.name),
        {
            "conversation_id": stored.conversation_id,
            "seq": seq,
            "sender_id": stored.sender_id,
            "client_id": stored.client_id,
            "kind": MessageKind.TEXT,
            "body": stored.body,
            "created_at": stored.now,
        },
    )
    if message_id is None:
        raise _AlreadySent
    # Sending implies having read everything up to one's own message.
    await connection.execute(_MARK_OWN_MESSAGE_READ, {**keys, "b_seq": seq})
    event_id = await event_log.append(
        connection,
        type=EventType.MESSAGE_POSTED,
        conversation_id=stored.conversation_id,
        actor_id=stored.sender_id,
        message_id=message_id,
        seq=seq,
    )
    return message_id, seq, event_id


async def send(
    rt: Runtime,
    *,
    sender_id: int,
    body: str,
    client_id: str,
    conversation_id: int | None = None,
    recipient_id: int | None = None,
) -> Message:
    """Store a message and announce it. Idempotent per (sender, client_id).

    One transaction: take the conversation's row lock while incrementing `last_seq` (only if
    the sender is a member), insert the message unless the client id was already used, move
    the sender's own read marker, append to the event log. The lock serialises concurrent
    senders, so seqs are 1..N without gaps and commit in order; a concurrent retry of the
    same client id waits for the first and then finds the conflict.
    """
    body = validation.message_body(body)
    client_id = validation.client_id(client_id)
    if (conversation_id is None) == (recipient_id is None):
        raise BadUserInput(
            "Pass exactly one of recipientId or conversationId.", field="recipientId"
        )
    await rt.limits.hit(rate_limits.SEND_MESSAGE, str(sender_id))
    if conversation_id is None:
        assert recipient_id is not None
        try:
            await _ensure_recipient_not_blocked(rt, sender_id=sender_id, recipient_id=recipient_id)
        except Forbidden:
            # A retry of a message stored before the block still gets the original back.
            existing = await _find_by_client_id(rt, sender_id=sender_id, client_id=client_id)
            if existing is None:
                raise
            return existing
        conversation_id = await conversations.get_or_create_direct_id(
            rt, viewer_id=sender_id, recipient_id=recipient_id
        )

    now = utcnow()
    stored = StoredMessage(conversation_id, sender_id, client_id, body, now)
    try:
        if rt.db.engine.dialect.name == "postgresql":
            message_id, seq, event_id = await _store_in_one_statement(rt, stored)
        else:
            async with rt.db.engine.begin() as connection:
                message_id, seq, event_id = await _store_step_by_step(connection, stored)
    except (_AlreadySent, _NotPostable) as refusal:
        existing = await _find_by_client_id(rt, sender_id=sender_id, client_id=client_id)
        if existing is not None:
            return existing
        if isinstance(refusal, _AlreadySent):
            raise RuntimeError("send broke an integrity rule other than a retry") from refusal
        await _explain_refusal(rt, sender_id=sender_id, conversation_id=conversation_id)
    await rt.announce(
        channels.conversation(conversation_id),
        envelopes.EventAnnounced(event_id, conversation_id, EventType.MESSAGE_POSTED.value, seq),
    )
    return Message(
        id=message_id,
        conversation_id=conversation_id,
        seq=seq,
        sender_id=sender_id,
        client_id=client_id,
        kind=MessageKind.TEXT,
        body=body,
        created_at=now,
        edited_at=None,
        deleted_at=None,
    )


async def list_for(
    session: AsyncSession,
    *,
    viewer_id: int,
    conversation_id: int,
    page: PageRequest,
    membership: Membership | None = None,
) -> Page[Message]:
    """History, newest first, for a member of the conversation.

    `membership` may be passed when a loader already fetched the viewer's row (it is checked
    here all the same); otherwise it is looked up.
    """
    if membership is None:
        _, membership = await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )
    else:
        conversations.require_accepted(
            membership, viewer_id=viewer_id, conversation_id=conversation_id
        )
    statement = select(Message).where(
        Message.conversation_id == conversation_id, Message.seq > membership.cleared_seq
    )
    return await paginate(
        session,
        statement,
        keys=(Message.seq,),
        descending=True,
        request=page,
        key_values=lambda m: (m.seq,),
    )


async def list_by_ids(session: AsyncSession, *, message_ids: Sequence[int]) -> list[Message]:
    result = await session.scalars(select(Message).where(Message.id.in_(list(message_ids))))
    return list(result)


async def list_by_conversation_seq(
    session: AsyncSession, *, keys: Sequence[tuple[int, int]]
) -> list[Message]:
    """Messages by (conversation_id, seq): how the inbox finds each last message."""
    result = await session.scalars(
        select(Message).where(tuple_(Message.conversation_id, Message.seq).in_(list(keys)))
    )
    return list(result)
