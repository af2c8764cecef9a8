"""Replies: a message may quote an earlier one of the same conversation.

The quote is a snapshot stored on the reply (`Message.reply_snapshot`): the original's id,
seq, kind, sender and an excerpt of its text as it was when quoted. It outlives the original's
edits (it shows what was answered) and its unsending: then the excerpt is erased with the
rest of the original's content and the snapshot says `deleted`
(chatr.services.message_changes.erase).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import Conflict
from chatr.models import Membership, MembershipState, Message, User
from chatr.services import conversations, message_access, message_visibility

#: Characters of the original's text a quote keeps.
EXCERPT_LENGTH = 200


async def snapshot(
    session: AsyncSession, *, viewer_id: int, conversation_id: int, reply_to_id: int
) -> dict[str, Any]:
    """The quote of message `reply_to_id` for a reply the viewer writes in `conversation_id`.

    Not a member of the conversation: the send's own refusal (NOT_FOUND on conversationId),
    so a reply cannot tell a stranger which conversation a message id belongs to. A message
    of another conversation, or one the viewer does not see: NOT_FOUND on replyToId.
    """
    row = (
        await session.execute(
            select(Membership, Message, User)
            .select_from(Membership)
            .outerjoin(
                Message,
                and_(
                    Message.id == reply_to_id,
                    Message.conversation_id == Membership.conversation_id,
                    Message.seq > Membership.cleared_seq,
                    message_visibility.in_history_of(viewer_id),
                ),
            )
            .outerjoin(User, User.id == Message.sender_id)
            .where(
                Membership.conversation_id == conversation_id,
                Membership.user_id == viewer_id,
                Membership.state == MembershipState.ACCEPTED,
            )
        )
    ).first()
    if row is None:
        raise conversations.not_yours()
    _, original, sender = row
    if original is None:
        raise message_access.not_found("replyToId")
    if original.deleted_at is not None:
        raise Conflict("You cannot reply to an unsent message.", field="replyToId")
    return {
        "id": original.id,
        "seq": original.seq,
        "kind": original.kind.value,
        "senderId": original.sender_id,
        "senderName": None if sender is None else sender.display_name,
        "excerpt": None if original.body is None else original.body[:EXCERPT_LENGTH],
        "deleted": False,
    }
