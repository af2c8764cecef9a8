"""Sending and reading messages."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput
from chatr.models import Conversation, EventType, Membership, Message, MessageKind
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import conversations, event_log, validation
from chatr.services.pagination import Page, PageRequest, paginate


class _AlreadySent(Exception):
    """Unwinds the send transaction when a concurrent retry already stored the message."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.id)
        self.message = message


async def _find_by_client_id(
    session: AsyncSession, *, sender_id: int, client_id: str
) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.sender_id == sender_id, Message.client_id == client_id)
    )


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

    The seq comes from incrementing `conversations.last_seq` in the same transaction: the row
    lock serialises concurrent senders, so seqs are 1..N without gaps and commit in order.
    """
    body = validation.message_body(body)
    client_id = validation.client_id(client_id)
    if (conversation_id is None) == (recipient_id is None):
        raise BadUserInput(
            "Pass exactly one of recipientId or conversationId.", field="recipientId"
        )

    async with rt.db.session() as session:
        existing = await _find_by_client_id(session, sender_id=sender_id, client_id=client_id)
        if existing is not None:
            return existing
        if conversation_id is not None:
            await conversations.get_membership_or_raise(
                session, viewer_id=sender_id, conversation_id=conversation_id
            )
    if conversation_id is None:
        assert recipient_id is not None
        conversation = await conversations.get_or_create_direct(
            rt, viewer_id=sender_id, recipient_id=recipient_id
        )
        conversation_id = conversation.id

    now = utcnow()
    async with rt.db.session() as session:
        try:
            async with session.begin():
                seq = await session.scalar(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(last_seq=Conversation.last_seq + 1, last_activity_at=now)
                    .returning(Conversation.last_seq)
                )
                # A concurrent retry may have committed while we waited for the row lock.
                existing = await _find_by_client_id(
                    session, sender_id=sender_id, client_id=client_id
                )
                if existing is not None:
                    # Detach first: the rollback below would expire it.
                    session.expunge(existing)
                    raise _AlreadySent(existing)
                message = Message(
                    conversation_id=conversation_id,
                    seq=seq,
                    sender_id=sender_id,
                    client_id=client_id,
                    kind=MessageKind.TEXT,
                    body=body,
                    created_at=now,
                )
                session.add(message)
                await session.flush()
                # Sending implies having read everything up to one's own message.
                await session.execute(
                    update(Membership)
                    .where(
                        Membership.conversation_id == conversation_id,
                        Membership.user_id == sender_id,
                    )
                    .values(last_read_seq=seq, last_delivered_seq=seq)
                )
                event = await event_log.append(
                    session,
                    type=EventType.MESSAGE_POSTED,
                    conversation_id=conversation_id,
                    actor_id=sender_id,
                    message_id=message.id,
                    seq=seq,
                )
        except _AlreadySent as duplicate:
            return duplicate.message
        except IntegrityError:
            async with rt.db.session() as retry_session:
                existing = await _find_by_client_id(
                    retry_session, sender_id=sender_id, client_id=client_id
                )
            if existing is None:
                raise
            return existing
    await rt.announce(
        channels.conversation(conversation_id),
        envelopes.EventAnnounced(event.id, conversation_id, event.type.value, seq),
    )
    return message


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
