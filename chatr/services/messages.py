"""Sending and reading messages."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NoReturn

from sqlalchemy import bindparam, exists, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.db import insert_ignoring_conflicts
from chatr.errors import BadUserInput, Forbidden
from chatr.models import (
    Conversation,
    EventType,
    Membership,
    MembershipState,
    Message,
    MessageKind,
)
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import conversations, event_log, validation
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
    )
    .values(last_seq=_conversations.c.last_seq + 1, last_activity_at=bindparam("b_now"))
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
    async with rt.db.reader() as session:
        await conversations.get_membership_or_raise(
            session, viewer_id=sender_id, conversation_id=conversation_id
        )
    raise Forbidden("You cannot post in this conversation.", field="conversationId")


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
    if conversation_id is None:
        assert recipient_id is not None
        conversation_id = await conversations.get_or_create_direct_id(
            rt, viewer_id=sender_id, recipient_id=recipient_id
        )

    now = utcnow()
    keys = {"b_conversation_id": conversation_id, "b_sender_id": sender_id}
    try:
        async with rt.db.engine.begin() as connection:
            seq = await connection.scalar(_TAKE_NEXT_SEQ, {**keys, "b_now": now})
            if seq is None:
                raise _NotPostable
            message_id = await connection.scalar(
                _insert_message(connection.dialect.name),
                {
                    "conversation_id": conversation_id,
                    "seq": seq,
                    "sender_id": sender_id,
                    "client_id": client_id,
                    "kind": MessageKind.TEXT,
                    "body": body,
                    "created_at": now,
                },
            )
            if message_id is None:
                raise _AlreadySent
            # Sending implies having read everything up to one's own message.
            await connection.execute(_MARK_OWN_MESSAGE_READ, {**keys, "b_seq": seq})
            event_id = await event_log.append(
                connection,
                type=EventType.MESSAGE_POSTED,
                conversation_id=conversation_id,
                actor_id=sender_id,
                message_id=message_id,
                seq=seq,
            )
    except (_AlreadySent, _NotPostable) as refusal:
        existing = await _find_by_client_id(rt, sender_id=sender_id, client_id=client_id)
        if existing is not None:
            return existing
        assert isinstance(refusal, _NotPostable), "a conflicting client id vanished"
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
