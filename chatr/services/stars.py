"""Starred messages: private bookmarks; `starredMessages` lists them. Nobody else ever
learns of a star: each change is a durable event addressed to the viewer alone
(MESSAGE_STAR_CHANGED), which their other devices receive live or catch up on from a cursor.

A star only shows while its message is one the viewer sees: in a conversation they are
still in, not hidden by them. Unsending or hiding a message drops its stars.
"""

from __future__ import annotations

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.db import insert_ignoring_conflicts
from chatr.infra import rate_limits
from chatr.models import EventType, Membership, MembershipState, Message, MessageStar
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import message_access, message_changes, message_visibility
from chatr.services.pagination import Page, PageRequest, paginate


async def set_starred(rt: Runtime, *, viewer_id: int, message_id: int, starred: bool) -> Message:
    """Star or unstar a message the viewer sees (NOT_FOUND otherwise); idempotent: only a
    change is logged."""
    await rt.limits.hit(rate_limits.INBOX_CHANGE, str(viewer_id))
    position = None
    async with rt.db.session() as session, session.begin():
        visible = await message_access.get_visible(
            session, viewer_id=viewer_id, message_id=message_id
        )
        message = visible.message
        if starred:
            if message.deleted_at is not None:
                return message
            dialect_name = session.get_bind().dialect.name
            result = await session.execute(
                insert_ignoring_conflicts(dialect_name, MessageStar.__table__)
                .values(message_id=message_id, user_id=viewer_id, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["user_id", "message_id"])
            )
        else:
            result = await session.execute(
                delete(MessageStar).where(
                    MessageStar.message_id == message_id, MessageStar.user_id == viewer_id
                )
            )
        if message_changes.changed_rows(result):
            position = await message_changes.log_for_viewer(
                session,
                EventType.MESSAGE_STAR_CHANGED,
                message=message,
                viewer_id=viewer_id,
                data={"starred": starred},
            )
    if position is not None:
        await message_changes.announce_to_viewer(
            rt, viewer_id, message, position, EventType.MESSAGE_STAR_CHANGED
        )
    return message


async def starred_ids(session: AsyncSession, *, user_id: int, message_ids: list[int]) -> set[int]:
    """Which of these messages the user starred (one query for a page)."""
    found = await session.scalars(
        select(MessageStar.message_id).where(
            MessageStar.user_id == user_id, MessageStar.message_id.in_(message_ids)
        )
    )
    return set(found)


async def list_for(session: AsyncSession, *, viewer_id: int, page: PageRequest) -> Page[Message]:
    """`starredMessages`: most recently starred first."""
    statement = (
        select(Message, MessageStar.id)
        .join(MessageStar, MessageStar.message_id == Message.id)
        .join(
            Membership,
            and_(
                Membership.conversation_id == Message.conversation_id,
                Membership.user_id == viewer_id,
                Membership.state == MembershipState.ACCEPTED,
            ),
        )
        .where(
            MessageStar.user_id == viewer_id,
            Message.seq > Membership.cleared_seq,
            message_visibility.in_history_of(viewer_id),
        )
    )
    found = await paginate(
        session,
        statement,  # type: ignore[arg-type]
        keys=(MessageStar.id,),
        descending=True,
        request=page,
        key_values=lambda row: (row[1],),
        scalars=False,
    )
    return Page(
        [(cursor, row[0]) for cursor, row in found.edges],
        has_next_page=found.has_next_page,
        has_previous_page=found.has_previous_page,
    )
