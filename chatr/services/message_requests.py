"""Message requests: a DM between people who are not friends waits for the recipient.

The requester may write; the recipient accepts (explicitly, or by replying, which the send
statement does at no extra cost) or declines, which deletes the conversation for both. While
it is pending the requester learns nothing of the recipient's activity: no delivered or read
ticks and no typing (receipts are still recorded, for the recipient's own unread counts).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import Forbidden
from chatr.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Membership,
    MembershipState,
)
from chatr.runtime import Runtime
from chatr.services import conversation_deletion, conversations
from chatr.services.pagination import Page, PageRequest


def is_pending(conversation: Conversation) -> bool:
    return conversation.status == ConversationStatus.PENDING


def hides_activity_of(conversation: Conversation, *, actor_id: int) -> bool:
    """Whether `actor_id`'s receipts and typing stay hidden from the other member: they are
    the recipient of a request they have not answered."""
    return is_pending(conversation) and conversation.created_by_id != actor_id


def hides_from(conversation: Conversation, *, viewer_id: int, member_id: int) -> bool:
    """Whether the viewer (the requester) may not see `member_id`'s (the recipient's) markers."""
    return member_id != viewer_id and hides_activity_of(conversation, actor_id=member_id)


async def _request_to_viewer(
    session: AsyncSession, *, viewer_id: int, conversation_id: int
) -> Conversation:
    conversation, _ = await conversations.get_membership_or_raise(
        session, viewer_id=viewer_id, conversation_id=conversation_id
    )
    if not is_pending(conversation):
        raise Forbidden("This conversation is not a message request.", field="conversationId")
    if conversation.created_by_id == viewer_id:
        raise Forbidden(
            "Only the person you wrote to can answer your message request.",
            field="conversationId",
        )
    return conversation


async def accept(rt: Runtime, *, viewer_id: int, conversation_id: int) -> Conversation:
    async with rt.db.session() as session, session.begin():
        conversation = await _request_to_viewer(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )
        conversation.status = ConversationStatus.ACTIVE
    return conversation


async def decline(rt: Runtime, *, viewer_id: int, conversation_id: int) -> bool:
    """Delete the request, its messages and its events, for both people; each of them gets a
    `CONVERSATION_DELETED` event (chatr.services.conversation_deletion)."""
    async with rt.db.session() as session, session.begin():
        await _request_to_viewer(session, viewer_id=viewer_id, conversation_id=conversation_id)
        conversation = await conversation_deletion.lock(rt, session, conversation_id)
        erasure = await conversation_deletion.erase(session, conversation, actor_id=viewer_id)
    await conversation_deletion.announce(rt, conversation_id, erasure)
    return True


async def activate_between(session: AsyncSession, *, user_id: int, other_id: int) -> None:
    """Friends need no acceptance: a pending DM between two new friends becomes active."""
    await session.execute(
        update(Conversation)
        .where(
            Conversation.direct_key == conversations.direct_key(user_id, other_id),
            Conversation.status == ConversationStatus.PENDING,
        )
        .values(status=ConversationStatus.ACTIVE)
    )


async def list_for(
    session: AsyncSession, *, viewer_id: int, page: PageRequest
) -> Page[Conversation]:
    """Requests waiting for the viewer's answer, most recent activity first."""
    statement = (
        select(Conversation)
        .join(
            Membership,
            (Membership.conversation_id == Conversation.id)
            & (Membership.user_id == viewer_id)
            & (Membership.state == MembershipState.ACCEPTED),
        )
        .where(
            Conversation.kind == ConversationKind.DIRECT,
            Conversation.status == ConversationStatus.PENDING,
            Conversation.created_by_id != viewer_id,
        )
    )
    return await conversations.page_by_activity(session, statement, page)
