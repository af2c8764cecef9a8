"""Blocks: blocking and unblocking someone, the list of people I blocked, and the rule every
other service checks (no DMs, typing or friend requests either way across a block)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chatr.errors import Conflict, Forbidden, NotFound
from chatr.models import Block, Conversation, ConversationKind, Membership
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services.pagination import Page, PageRequest, paginate
from chatr.services.social import events, pairs
from chatr.services.social.events import FriendChange

#: `extensions.reason` of the FORBIDDEN raised when either side blocked the other.
BLOCKED = "BLOCKED"


# -- the rule, as other services check it ----------------------------------------------------

_blocks = Block.__table__
_conversations = Conversation.__table__
_memberships = Membership.__table__
_peer = _memberships.alias("peer")


def blocked_between(
    a: ColumnElement[Any] | int, b: ColumnElement[Any] | int
) -> ColumnElement[bool]:
    return or_(
        and_(_blocks.c.blocker_id == a, _blocks.c.blocked_id == b),
        and_(_blocks.c.blocker_id == b, _blocks.c.blocked_id == a),
    )


# Checked before every DM send: built once, as Core, with bind parameters.
_BLOCK_BETWEEN = (
    select(_blocks.c.id)
    .where(blocked_between(bindparam("b_user_id"), bindparam("b_other_id")))
    .limit(1)
)
#: A block between the user and the other member of a DIRECT conversation they are in. Groups
#: and conversations the user is not in find nothing (the membership rule answers those).
_BLOCK_IN_DIRECT = (
    select(_blocks.c.id)
    .select_from(
        _conversations.join(_peer, _peer.c.conversation_id == _conversations.c.id).join(
            _blocks, blocked_between(bindparam("b_user_id"), _peer.c.user_id)
        )
    )
    .where(
        _conversations.c.id == bindparam("b_conversation_id"),
        _conversations.c.kind == ConversationKind.DIRECT,
        _peer.c.user_id != bindparam("b_user_id"),
        exists().where(
            _memberships.c.conversation_id == bindparam("b_conversation_id"),
            _memberships.c.user_id == bindparam("b_user_id"),
        ),
    )
    .limit(1)
)


def no_block_in_direct(conversation_id: Any, sender_id: Any) -> ColumnElement[bool]:
    """Clause for statements on `conversations`: not a DM, or no block between its members.

    The send statement carries it so the block rule costs no extra round trip.
    """
    peer = _memberships.alias("block_peer")
    return or_(
        _conversations.c.kind != ConversationKind.DIRECT,
        ~exists().where(
            peer.c.conversation_id == conversation_id,
            peer.c.user_id != sender_id,
            blocked_between(sender_id, peer.c.user_id),
        ),
    )


def _blocked(field: str) -> Forbidden:
    return Forbidden(
        "You cannot reach this user: one of you has blocked the other.",
        field=field,
        reason=BLOCKED,
    )


async def ensure_not_blocked(
    db: AsyncSession | AsyncConnection, *, user_id: int, other_id: int, field: str = "userId"
) -> None:
    """FORBIDDEN with `reason: BLOCKED` when either of the two has blocked the other."""
    params = {"b_user_id": user_id, "b_other_id": other_id}
    if await db.scalar(_BLOCK_BETWEEN, params) is not None:
        raise _blocked(field)


async def ensure_not_blocked_in(
    db: AsyncSession | AsyncConnection, *, user_id: int, conversation_id: int
) -> None:
    """The same rule for a conversation: one indexed query, and only DMs can be blocked."""
    params = {"b_user_id": user_id, "b_conversation_id": conversation_id}
    if await db.scalar(_BLOCK_IN_DIRECT, params) is not None:
        raise _blocked("conversationId")


# -- blocking and unblocking -----------------------------------------------------------------


async def block(rt: Runtime, *, viewer_id: int, user_id: int) -> Block:
    """Block `user_id`: no DMs, typing or friend requests either way until the viewer unblocks.

    Any friendship or pending request between the two is deleted; the BLOCKED event says so
    (no separate REMOVED/CANCELLED events).
    """
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        existing = await session.scalar(
            select(Block.id).where(Block.blocker_id == viewer_id, Block.blocked_id == user_id)
        )
        if existing is not None:
            raise Conflict("You have already blocked this user.", field="userId")
        friendship = await pairs.friendship_between(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is not None:
            await session.delete(friendship)
        blocked = Block(blocker_id=viewer_id, blocked_id=user_id, created_at=utcnow())
        session.add(blocked)
    await events.announce(rt, FriendChange.BLOCKED, actor_id=viewer_id, subject_id=user_id)
    return blocked


async def unblock(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    """Lift the viewer's own block (a block the other person made stays). Friendship is not
    restored; messaging is, unless the other person blocks the viewer too."""
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        blocks = {
            row.blocker_id: row
            for row in await session.scalars(
                select(Block).where(blocked_between(viewer_id, user_id))
            )
        }
        if viewer_id not in blocks:
            if user_id in blocks:
                raise Forbidden("Only the person who blocked can unblock.", field="userId")
            raise NotFound("You have not blocked this user.", field="userId")
        await session.delete(blocks[viewer_id])
    await events.announce(rt, FriendChange.UNBLOCKED, actor_id=viewer_id, subject_id=user_id)


async def list_blocked_for(
    session: AsyncSession, *, viewer_id: int, page: PageRequest
) -> Page[Block]:
    """The people the viewer blocked (not who blocked the viewer), most recent first."""
    statement = select(Block).where(Block.blocker_id == viewer_id)
    return await paginate(
        session,
        statement,
        keys=(Block.created_at, Block.id),
        descending=True,
        request=page,
        key_values=lambda b: (b.created_at, b.id),
    )
