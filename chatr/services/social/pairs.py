"""Changes between two people: one transaction holding both users' rows, and the friendship
row between them, as friends and blocks both change them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput, NotFound
from chatr.models import Friendship, User
from chatr.runtime import Runtime


@asynccontextmanager
async def between(rt: Runtime, *, viewer_id: int, user_id: int) -> AsyncIterator[AsyncSession]:
    """A transaction holding both users' rows, so changes between two people are serialised.

    FOR NO KEY UPDATE: it does not hold up rows that merely reference the users (messages,
    sessions). SQLite ignores it; it serialises writers anyway.
    """
    if user_id == viewer_id:
        raise BadUserInput("You cannot do that to yourself.", field="userId")
    async with rt.db.session() as session, session.begin():
        rows = await session.execute(
            select(User.id, User.suspended_at)
            .where(User.id.in_((viewer_id, user_id)))
            .order_by(User.id)
            .with_for_update(key_share=True)
        )
        if not any(id_ == user_id and suspended is None for id_, suspended in rows):
            raise NotFound("No such user.", field="userId")
        yield session


async def friendship_between(
    session: AsyncSession, *, viewer_id: int, user_id: int
) -> Friendship | None:
    return await session.scalar(
        select(Friendship).where(
            or_(
                and_(Friendship.requester_id == viewer_id, Friendship.addressee_id == user_id),
                and_(Friendship.requester_id == user_id, Friendship.addressee_id == viewer_id),
            )
        )
    )
