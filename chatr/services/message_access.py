"""Finding one message the viewer may see, by id: the rule every message-id field applies.

A message is the viewer's to see while they are an accepted member of its conversation, it
is above their `cleared_seq` and they have not deleted it for themselves. Anything else —
a message of a conversation they are not (or no longer) in, one they hid, one that does not
exist — is answered alike with NOT_FOUND, so message ids cannot be probed either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import NotFound
from chatr.models import Conversation, Membership, MembershipState, Message
from chatr.services import message_visibility


def not_found(field: str = "messageId") -> NotFound:
    return NotFound("No such message.", field=field)


@dataclass(frozen=True)
class Visible:
    """A message with its conversation and the viewer's accepted membership there."""

    message: Message
    conversation: Conversation
    membership: Membership


async def conversation_of(session: AsyncSession, *, message_id: int, field: str) -> int:
    """The conversation id of a message (NOT_FOUND if there is none): what to lock before
    the message is read again under the lock. Says nothing to the client by itself."""
    found = await session.scalar(select(Message.conversation_id).where(Message.id == message_id))
    if found is None:
        raise not_found(field)
    return found


async def get_visible(
    session: AsyncSession, *, viewer_id: int, message_id: int, field: str = "messageId"
) -> Visible:
    """The message, if the viewer sees it (see the module docstring); else NOT_FOUND."""
    row = (
        await session.execute(
            select(Message, Conversation, Membership)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(
                Membership,
                and_(
                    Membership.conversation_id == Message.conversation_id,
                    Membership.user_id == viewer_id,
                    Membership.state == MembershipState.ACCEPTED,
                ),
            )
            .where(Message.id == message_id, message_visibility.in_history_of(viewer_id))
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise not_found(field)
    message, conversation, membership = row
    if message.seq <= membership.cleared_seq:
        raise not_found(field)
    return Visible(message, conversation, membership)
