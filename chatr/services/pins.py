"""Pinned messages: up to `max_pinned_messages` per conversation, for everyone in it.

In a DM either person pins and unpins; in a group its owner and admins do (a pin is shown
to every member, like the group's name). Pinning is a MESSAGE_PINNED event and unpinning a
MESSAGE_UNPINNED one; unsending a message unpins it as part of erasing it.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput, Forbidden
from chatr.models import ConversationKind, EventType, Message
from chatr.runtime import Runtime
from chatr.services import conversations, message_changes, message_visibility


async def set_pinned(rt: Runtime, *, viewer_id: int, message_id: int, pinned: bool) -> Message:
    """Pin or unpin; pinning a pinned message (or unpinning an unpinned one) changes nothing."""
    async with message_changes.changing(rt, viewer_id=viewer_id, message_id=message_id) as change:
        if change.conversation.kind == ConversationKind.GROUP and not change.moderates:
            raise Forbidden("Only the group's owner and admins pin messages.", field="messageId")
        message = change.message
        if pinned == (message.pinned_at is not None):
            return message
        if not pinned:
            message.pinned_at = None
            message.pinned_by_id = None
            await change.log(EventType.MESSAGE_UNPINNED)
            return message
        change.require_content()
        limit = rt.settings.max_pinned_messages
        count = await change.session.scalar(
            select(func.count()).where(
                Message.conversation_id == message.conversation_id,
                Message.pinned_at.is_not(None),
            )
        )
        if (count or 0) >= limit:
            raise BadUserInput(
                f"At most {limit} messages can be pinned here: unpin one first.",
                field="messageId",
            )
        message.pinned_at = change.now
        message.pinned_by_id = viewer_id
        await change.log(EventType.MESSAGE_PINNED)
    return message


async def list_for(session: AsyncSession, *, viewer_id: int, conversation_id: int) -> list[Message]:
    """`pinnedMessages`: the conversation's pins, most recently pinned first (a bounded list,
    so no pages), leaving out any the viewer deleted for themselves."""
    _, membership = await conversations.get_membership_or_raise(
        session, viewer_id=viewer_id, conversation_id=conversation_id
    )
    found = await session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.pinned_at.is_not(None),
            Message.seq > membership.cleared_seq,
            message_visibility.in_history_of(viewer_id),
        )
        .order_by(Message.pinned_at.desc(), Message.id.desc())
    )
    return list(found)
