"""Reactions: one emoji per person per message, toggled, and a summary per message.

Reacting with the emoji I already put on a message takes it back; another emoji replaces
mine. Only the conversation's current members react (chatr.services.message_access), never
in a DM with a block either way, never on an unsent message. Each change is a
REACTION_CHANGED event saying who and what (`data`: `emoji`, null when taken back, and
`previous`).

The emoji is checked server-side to be exactly one emoji as Unicode defines it (one grapheme:
skin tones, ZWJ sequences such as families, flags and keycaps included) with the `emoji`
package's data, which follows the Unicode emoji files; anything else (text, two emoji, an
emoji with trailing text) is BAD_USER_INPUT.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import emoji as emoji_data
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput
from chatr.infra import rate_limits
from chatr.models import EventType, Message, MessageKind, Reaction
from chatr.runtime import Runtime
from chatr.services import message_changes

#: The column's size; the longest emoji sequences (families with skin tones) fit.
MAX_EMOJI_LENGTH = 32
#: Reactors named per emoji in a summary (the count covers everyone).
FIRST_REACTORS = 3


def valid_emoji(value: str) -> str:
    """`value` if it is exactly one emoji; else BAD_USER_INPUT."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_EMOJI_LENGTH
        or not emoji_data.is_emoji(value)
    ):
        raise BadUserInput("A reaction is exactly one emoji.", field="emoji")
    return value


@dataclass(frozen=True)
class ReactionSummary:
    """One emoji on one message: how many, who first, and everyone (for `reactedByMe`)."""

    emoji: str
    count: int
    #: Everyone who reacted with it, earliest first.
    user_ids: tuple[int, ...]

    @property
    def first_user_ids(self) -> tuple[int, ...]:
        return self.user_ids[:FIRST_REACTORS]


async def react(rt: Runtime, *, viewer_id: int, message_id: int, emoji: str) -> Message:
    """Set, replace or (same emoji again) take back the viewer's reaction."""
    emoji = valid_emoji(emoji)
    await rt.limits.hit(rate_limits.REACTION, str(viewer_id))
    async with message_changes.changing(rt, viewer_id=viewer_id, message_id=message_id) as change:
        change.require_content()
        if change.message.kind == MessageKind.SYSTEM:
            raise BadUserInput("Group notices take no reactions.", field="messageId")
        session = change.session
        mine = await session.scalar(
            select(Reaction).where(Reaction.message_id == message_id, Reaction.user_id == viewer_id)
        )
        previous = None if mine is None else mine.emoji
        if mine is None:
            session.add(
                Reaction(
                    message_id=message_id, user_id=viewer_id, emoji=emoji, created_at=change.now
                )
            )
            now_set: str | None = emoji
        elif mine.emoji == emoji:
            await session.delete(mine)
            now_set = None
        else:
            mine.emoji = emoji
            mine.created_at = change.now
            now_set = emoji
        await change.log(EventType.REACTION_CHANGED, {"emoji": now_set, "previous": previous})
    return change.message


async def summaries(
    session: AsyncSession, *, message_ids: Collection[int]
) -> dict[int, list[ReactionSummary]]:
    """Each message's reactions by emoji, most used first (ties: the earliest first), in one
    query for a whole page of messages."""
    rows = await session.execute(
        select(Reaction.message_id, Reaction.emoji, Reaction.user_id)
        .where(Reaction.message_id.in_(list(message_ids)))
        .order_by(Reaction.message_id, Reaction.created_at, Reaction.id)
    )
    grouped: dict[int, dict[str, list[int]]] = {}
    for message_id, emoji, user_id in rows:
        grouped.setdefault(message_id, {}).setdefault(emoji, []).append(user_id)
    return {
        message_id: sorted(
            (ReactionSummary(e, len(users), tuple(users)) for e, users in by_emoji.items()),
            key=lambda summary: -summary.count,
        )
        for message_id, by_emoji in grouped.items()
    }
