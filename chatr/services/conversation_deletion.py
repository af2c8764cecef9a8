"""Deleting a conversation for everyone: a DM by either person, a group by its owner.

What goes: every message (with reactions, revisions, attachments, mentions, stars: they
cascade), every earlier event of the conversation, and every membership, so each field
that takes its id answers NOT_FOUND for everyone from then on and search finds nothing of
it. What stays: the conversation row, marked `deleted_at`, and one `CONVERSATION_DELETED`
event per former member (accepted or invited), addressed to that member alone
(`Event.audience_id`). A device that was offline replays it from its cursor like any
other event and drops the conversation; nobody else learns anything. A DM's pair key is
released, so the two people can start a new conversation later (a new message request if
they are not friends). The files go too, once the deletion has committed: every attachment's
bytes and a group's avatar and cover (`remove_files`), as unsending a message removes its own.

The caller holds the conversation's row lock (and, on PostgreSQL, its advisory lock: no
send can take a seq meanwhile; a send that was waiting finds no membership and is refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import Forbidden
from chatr.infra import event_log
from chatr.models import (
    Attachment,
    Conversation,
    ConversationKind,
    Event,
    EventType,
    MemberRole,
    Membership,
    Message,
)
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import conversations, inbox, picture_files, uploads


@dataclass
class Erasure:
    """What a deletion leaves to do once it has committed."""

    #: (user id, position) of each deletion event, to announce.
    notices: list[tuple[int, int]] = field(default_factory=list)
    #: The attachments' stored bytes (their rows cascade with the messages).
    stored_keys: list[str] = field(default_factory=list)
    #: A group's avatar and cover URLs (chatr.services.pictures discards their files).
    pictures: list[str] = field(default_factory=list)


async def erase(session: AsyncSession, conversation: Conversation, *, actor_id: int) -> Erasure:
    """Delete the conversation's content and members; log the deletion for each of them."""
    former = list(
        await session.scalars(
            select(Membership.user_id)
            .where(Membership.conversation_id == conversation.id)
            .order_by(Membership.id)
        )
    )
    erasure = Erasure(
        stored_keys=list(
            await session.scalars(
                select(Attachment.storage_key)
                .join(Message, Attachment.message_id == Message.id)
                .where(Message.conversation_id == conversation.id)
            )
        ),
        pictures=[url for url in (conversation.avatar_url, conversation.cover_url) if url],
    )
    conversation.avatar_url = conversation.cover_url = None
    await session.execute(delete(Membership).where(Membership.conversation_id == conversation.id))
    await session.execute(delete(Message).where(Message.conversation_id == conversation.id))
    await session.execute(delete(Event).where(Event.conversation_id == conversation.id))
    conversation.deleted_at = utcnow()
    conversation.direct_key = None
    await session.flush()
    connection = await session.connection()
    for user_id in former:
        position = await event_log.append(
            connection,
            type=EventType.CONVERSATION_DELETED,
            conversation_id=conversation.id,
            actor_id=actor_id,
            audience_id=user_id,
        )
        erasure.notices.append((user_id, position))
    return erasure


async def remove_files(rt: Runtime, erasure: Erasure) -> None:
    """After commit: nothing links to these bytes any more."""
    await uploads.delete_objects(rt, erasure.stored_keys)
    for url in erasure.pictures:
        await picture_files.discard(rt, url)


async def announce(rt: Runtime, conversation_id: int, erasure: Erasure) -> None:
    await remove_files(rt, erasure)
    for user_id, position in erasure.notices:
        await inbox.announce_to(
            rt, user_id, conversation_id, position, EventType.CONVERSATION_DELETED
        )


async def lock(rt: Runtime, session: AsyncSession, conversation_id: int) -> Conversation:
    """The conversation row, locked as a send's seq is taken (NOT_FOUND if there is none)."""
    statement = select(Conversation).where(Conversation.id == conversation_id).with_for_update()
    if not rt.db.is_sqlite:
        statement = statement.where(event_log.serialised(conversation_id))
    conversation = await session.scalar(statement)
    if conversation is None:
        raise conversations.not_yours()
    return conversation


async def delete_for_everyone(rt: Runtime, *, viewer_id: int, conversation_id: int) -> bool:
    """Either person deletes a DM; only the owner deletes a group (FORBIDDEN for the rest)."""
    async with rt.db.session() as session, session.begin():
        conversation = await lock(rt, session, conversation_id)
        membership = await session.scalar(
            select(Membership).where(
                Membership.conversation_id == conversation_id, Membership.user_id == viewer_id
            )
        )
        membership = conversations.require_accepted(
            membership, viewer_id=viewer_id, conversation_id=conversation_id
        )
        if conversation.kind == ConversationKind.GROUP and membership.role != MemberRole.OWNER:
            raise Forbidden("Only the owner can delete a group.", field="conversationId")
        erasure = await erase(session, conversation, actor_id=viewer_id)
    await announce(rt, conversation_id, erasure)
    return True
