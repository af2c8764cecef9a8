"""`@username` mentions in group messages, resolved to members when the text is written.

Resolving at send (and edit) time pins a mention to the person who was meant: a later
rename, or someone else taking the old username, does not move it. Only accepted members of
the group are resolved (naming an outsider mentions nobody), never the author, and each
person once however often named. Direct conversations have no mentions: both people see
everything anyway.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.models import (
    Conversation,
    ConversationKind,
    Membership,
    MembershipState,
    Message,
    MessageMention,
    User,
)
from chatr.services import message_visibility

#: A username (chatr.services.validation.USERNAME_PATTERN) after an `@` that does not follow a
#: word character (so an email address mentions nobody).
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,20})(?![A-Za-z0-9_])")
#: Distinct people one message may mention; more names than this are not looked up.
MAX_MENTIONS = 50


def usernames_in(body: str) -> list[str]:
    """The username keys (lower case) a text names, first occurrence first."""
    seen: dict[str, None] = {}
    for name in MENTION.findall(body):
        seen.setdefault(name.lower(), None)
    return list(seen)[:MAX_MENTIONS]


async def resolve(
    session: AsyncSession, *, conversation_id: int, author_id: int, body: str
) -> list[int]:
    """The ids of the group's accepted members the text names (not the author), in the
    order first named; none in a direct conversation."""
    keys = usernames_in(body)
    if not keys:
        return []
    rows = await session.execute(
        select(User.id, User.username_key)
        .join(
            Conversation,
            and_(Conversation.id == conversation_id, Conversation.kind == ConversationKind.GROUP),
        )
        .join(
            Membership,
            and_(
                Membership.user_id == User.id,
                Membership.conversation_id == conversation_id,
                Membership.state == MembershipState.ACCEPTED,
            ),
        )
        .where(User.username_key.in_(keys), User.id != author_id)
    )
    by_key = {key: user_id for user_id, key in rows}
    return [by_key[key] for key in keys if key in by_key]


async def replace(session: AsyncSession, *, message: Message, user_ids: Sequence[int]) -> None:
    """Store the mentions of an edited message in place of the old ones."""
    await session.execute(delete(MessageMention).where(MessageMention.message_id == message.id))
    if user_ids:
        await session.execute(
            insert(MessageMention),
            [
                {
                    "message_id": message.id,
                    "user_id": user_id,
                    "conversation_id": message.conversation_id,
                    "seq": message.seq,
                }
                for user_id in user_ids
            ],
        )


async def by_message(
    session: AsyncSession, *, message_ids: Collection[int]
) -> dict[int, list[int]]:
    """Who each message mentions, in the order named (one query for a page of messages)."""
    rows = await session.execute(
        select(MessageMention.message_id, MessageMention.user_id)
        .where(MessageMention.message_id.in_(list(message_ids)))
        .order_by(MessageMention.message_id, MessageMention.id)
    )
    found: dict[int, list[int]] = {}
    for message_id, user_id in rows:
        found.setdefault(message_id, []).append(user_id)
    return found


async def unread_counts(
    session: AsyncSession, *, user_id: int, conversation_ids: Collection[int]
) -> dict[int, int]:
    """`mentionCount` per conversation: messages mentioning the user after their read
    marker, leaving out those unsent or hidden by them (one query for the whole inbox)."""
    rows = await session.execute(
        select(MessageMention.conversation_id, func.count())
        .join(
            Membership,
            and_(
                Membership.conversation_id == MessageMention.conversation_id,
                Membership.user_id == user_id,
                Membership.state == MembershipState.ACCEPTED,
            ),
        )
        .join(Message, Message.id == MessageMention.message_id)
        .where(
            MessageMention.user_id == user_id,
            MessageMention.conversation_id.in_(list(conversation_ids)),
            MessageMention.seq > Membership.last_read_seq,
            MessageMention.seq > Membership.cleared_seq,
            Message.deleted_at.is_(None),
            message_visibility.in_history_of(user_id),
        )
        .group_by(MessageMention.conversation_id)
    )
    return {conversation_id: count for conversation_id, count in rows}
