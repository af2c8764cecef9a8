"""The inbox's own operations: mute, archive and pin a conversation; find the DM with someone.

Mute, archive and pin are the member's private settings (columns of their membership):
nobody else learns of them. Each change is a durable event addressed to the member alone
(`Event.audience_id`), so their other devices follow it live and catch up from a cursor.

The inbox (`chatr.services.conversations.list_for`) lists pinned conversations first,
newest pin first, then the rest by last activity; archived ones only when asked for. A new
message does not unarchive a conversation (the member archived it on purpose; muting and
archiving are independent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput
from chatr.infra import event_log, rate_limits
from chatr.models import Conversation, EventType, Membership, MembershipState
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import conversations

#: "Leave the mute as it is" (None unmutes).
KEEP: object = object()
#: Pinned conversations per member, as in the apps chatr replaces (a short list on top).
MAX_PINNED = 5


@dataclass(frozen=True)
class Settings:
    """A member's settings after a change (what the event carries)."""

    conversation_id: int
    muted_until: datetime | None
    archived: bool
    pinned: bool


def settings_of(membership: Membership) -> Settings:
    return Settings(
        conversation_id=membership.conversation_id,
        muted_until=membership.muted_until,
        archived=membership.archived_at is not None,
        pinned=membership.pinned_at is not None,
    )


def event_data(settings: Settings) -> dict[str, object]:
    return {
        "mutedUntil": None if settings.muted_until is None else settings.muted_until.isoformat(),
        "archived": settings.archived,
        "pinned": settings.pinned,
    }


def is_muted(membership: Membership, now: datetime | None = None) -> bool:
    until = membership.muted_until
    return until is not None and until > (now or utcnow())


async def _change(
    rt: Runtime,
    *,
    viewer_id: int,
    conversation_id: int,
    muted_until: datetime | object | None = KEEP,
    archived: bool | None = None,
    pinned: bool | None = None,
) -> Conversation:
    """Apply the given settings to the viewer's membership and log the result for them."""
    await rt.limits.hit(rate_limits.INBOX_CHANGE, str(viewer_id))
    async with rt.db.session() as session, session.begin():
        conversation, membership = await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )
        now = utcnow()
        before = settings_of(membership)
        if muted_until is not KEEP:
            membership.muted_until = muted_until  # type: ignore[assignment]
        if archived is not None and archived != before.archived:
            membership.archived_at = now if archived else None
        if pinned is not None and pinned != before.pinned:
            if pinned:
                await _ensure_room_to_pin(session, viewer_id=viewer_id)
            membership.pinned_at = now if pinned else None
        after = settings_of(membership)
        if after == before:
            return conversation
        await session.flush()
        position = await event_log.append(
            await session.connection(),
            type=EventType.MEMBER_SETTINGS_CHANGED,
            conversation_id=conversation_id,
            actor_id=viewer_id,
            data=event_data(after),
            audience_id=viewer_id,
        )
    await announce_to(rt, viewer_id, conversation_id, position, EventType.MEMBER_SETTINGS_CHANGED)
    return conversation


async def announce_to(
    rt: Runtime, user_id: int, conversation_id: int, position: int, type: EventType
) -> None:
    """Announce an event addressed to `user_id`: on their channel (their myEvents, which may
    not follow the conversation) and the conversation's (their conversationEvents)."""
    envelope = envelopes.EventAnnounced(position, conversation_id, type.value)
    await rt.announce(channels.user(user_id), envelope)
    await rt.announce(channels.conversation(conversation_id), envelope)


async def _ensure_room_to_pin(session: AsyncSession, *, viewer_id: int) -> None:
    pinned = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.user_id == viewer_id,
            Membership.state == MembershipState.ACCEPTED,
            Membership.pinned_at.is_not(None),
        )
    )
    if (pinned or 0) >= MAX_PINNED:
        raise BadUserInput(
            f"At most {MAX_PINNED} conversations can be pinned; unpin one first.",
            field="conversationId",
        )


async def mute(
    rt: Runtime, *, viewer_id: int, conversation_id: int, until: datetime | None
) -> Conversation:
    """Silence notifications until `until` (a future time); None unmutes."""
    if until is not None:
        if until.tzinfo is None:
            raise BadUserInput("`until` needs a time zone.", field="until")
        if until <= utcnow():
            raise BadUserInput("`until` must be in the future.", field="until")
    return await _change(
        rt, viewer_id=viewer_id, conversation_id=conversation_id, muted_until=until
    )


async def archive(
    rt: Runtime, *, viewer_id: int, conversation_id: int, archived: bool
) -> Conversation:
    return await _change(
        rt, viewer_id=viewer_id, conversation_id=conversation_id, archived=archived
    )


async def pin(rt: Runtime, *, viewer_id: int, conversation_id: int, pinned: bool) -> Conversation:
    return await _change(rt, viewer_id=viewer_id, conversation_id=conversation_id, pinned=pinned)


async def direct_with(
    session: AsyncSession, *, viewer_id: int, user_id: int
) -> Conversation | None:
    """The viewer's DM with `user_id` if they have one, else None; never creates one.

    Creating it here would open a conversation the other person never asked for outside the
    send path, which is where message requests and blocks are decided (a DM with a
    stranger starts as a request when the first message is sent). The client shows an empty
    chat and the first `sendMessage(recipientId)` creates it. A pending request the viewer
    sent or received is returned (it is in their inbox or requests); someone who is not a
    user, or the viewer themselves, has no DM with them: None, the same answer as "no DM
    yet", so the field tells nothing about who exists.
    """
    if user_id == viewer_id:
        raise BadUserInput("There is no conversation with yourself.", field="userId")
    return await session.scalar(
        select(Conversation)
        .join(
            Membership,
            (Membership.conversation_id == Conversation.id)
            & (Membership.user_id == viewer_id)
            & (Membership.state == MembershipState.ACCEPTED),
        )
        .where(Conversation.direct_key == conversations.direct_key(viewer_id, user_id))
    )
