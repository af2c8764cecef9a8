"""Live, durable news of a profile change, for the people who may see what changed.

Who hears of it: the people who share a conversation with the person (accepted members
both; they see the person as a sender or member there), and of them only those who may see
at least one of the changed details under chatr.services.privacy: a block either way hides
everything; a name or gender shared with FRIENDS only is news to friends only. Display
name and pictures are news to everyone else who shares a conversation. Nobody else learns
that anything changed.

Each of them gets one `PROFILE_UPDATED` event addressed to them alone (`Event.audience_id`),
logged in one conversation they share with the person (the oldest: any would do; the event
needs one). It carries nothing but who changed: the client reads `user`, which shows the
viewer exactly what privacy lets them see at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from chatr.infra import event_log
from chatr.models import EventType, Membership, MembershipState, User
from chatr.runtime import Runtime
from chatr.services import inbox, privacy
from chatr.services.privacy import Detail, Standing

#: Columns whose change others may see, and the privacy detail that governs each (None:
#: shown to everyone who is not blocked).
_DETAIL_OF: dict[str, Detail | None] = {
    "display_name": None,
    "avatar_url": None,
    "cover_url": None,
    "first_name": Detail.FULL_NAME,
    "last_name": Detail.FULL_NAME,
    "gender": Detail.GENDER,
}

#: (user id, conversation id, position): announced after commit.
Notices = list[tuple[int, int, int]]


async def _co_members(session: AsyncSession, user_id: int) -> dict[int, int]:
    """Everyone who shares an accepted conversation with `user_id` -> the oldest shared one."""
    mine, theirs = aliased(Membership), aliased(Membership)
    rows = await session.execute(
        select(theirs.user_id, func.min(theirs.conversation_id))
        .join(mine, mine.conversation_id == theirs.conversation_id)
        .where(
            mine.user_id == user_id,
            mine.state == MembershipState.ACCEPTED,
            theirs.state == MembershipState.ACCEPTED,
            theirs.user_id != user_id,
        )
        .group_by(theirs.user_id)
    )
    return {other: conversation for other, conversation in rows.all()}


def _sees_a_change(user: User, changed: Collection[str], standing: Standing) -> bool:
    """Whether a viewer of this standing sees a difference in one of the `changed` columns."""
    if standing is Standing.BLOCKED:
        return False
    details = {_DETAIL_OF[name] for name in changed if name in _DETAIL_OF}
    return any(detail is None or privacy.may_see(user, detail, standing) for detail in details)


def _sees_other_details(
    before: Mapping[str, str], user: User, changed: Collection[Detail], standing: Standing
) -> bool:
    """Whether a viewer of this standing may see one of `changed` now and not before, or
    the other way round (new privacy settings)."""
    earlier = User(id=user.id, privacy=dict(before))
    return any(
        privacy.may_see(earlier, detail, standing) != privacy.may_see(user, detail, standing)
        for detail in changed
    )


async def _log(
    session: AsyncSession, user: User, is_news_to: Callable[[Standing], bool]
) -> Notices:
    """One `PROFILE_UPDATED` for each person sharing a conversation with `user` to whom
    `is_news_to` their standing."""
    shared = await _co_members(session, user.id)
    if not shared:
        return []
    standings = await privacy.standings_between(
        session, viewer_ids=list(shared), user_ids=[user.id]
    )
    await session.flush()
    connection = await session.connection()
    notices: Notices = []
    for viewer_id, conversation_id in sorted(shared.items()):
        if not is_news_to(standings[viewer_id, user.id]):
            continue
        position = await event_log.append(
            connection,
            type=EventType.PROFILE_UPDATED,
            conversation_id=conversation_id,
            actor_id=user.id,
            audience_id=viewer_id,
        )
        notices.append((viewer_id, conversation_id, position))
    return notices


async def log_profile_change(
    session: AsyncSession, user: User, changed: Collection[str]
) -> Notices:
    """After `user`'s `changed` columns were updated (in this transaction)."""
    if not any(name in _DETAIL_OF for name in changed):
        return []
    return await _log(session, user, lambda standing: _sees_a_change(user, changed, standing))


async def log_privacy_change(
    session: AsyncSession, user: User, before: Mapping[str, str], changed: Collection[Detail]
) -> Notices:
    """After `user`'s privacy settings went from `before` to what they hold now."""
    if not changed:
        return []
    return await _log(
        session, user, lambda standing: _sees_other_details(before, user, changed, standing)
    )


async def announce(rt: Runtime, notices: Notices) -> None:
    for viewer_id, conversation_id, position in notices:
        await inbox.announce_to(rt, viewer_id, conversation_id, position, EventType.PROFILE_UPDATED)
