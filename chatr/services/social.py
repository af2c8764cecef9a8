"""Friends and blocks: requests, answers, removal, blocking, and the live `friend` events.

One row per pair of people in `friendships` (REQUESTED by its requester, or ACCEPTED), and
one row per blocker in `blocks` (two people may block each other; each lifts only their own).
Every change takes both users' rows locked (PostgreSQL), so two people asking each other at
once, or a request racing a block, run one after the other and the one-row rule holds.

Duplicates are refused, not ignored: asking twice, asking a friend, or blocking twice is
CONFLICT; answering or removing something that is not there is NOT_FOUND. A client whose
response got lost can treat CONFLICT as "already done" and re-query the lists.
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chatr.errors import BadUserInput, Conflict, Forbidden, NotFound, SubscriberOverflowError
from chatr.models import (
    Block,
    Conversation,
    ConversationKind,
    Friendship,
    FriendshipState,
    Membership,
    User,
    UserKind,
)
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Message, SubscriberOverflow
from chatr.runtime import Runtime
from chatr.services import message_requests, privacy, validation
from chatr.services.pagination import Page, PageRequest, paginate
from chatr.services.privacy import Detail

#: `extensions.reason` of the FORBIDDEN raised when either side blocked the other.
BLOCKED = "BLOCKED"


class FriendChange(enum.StrEnum):
    """What a live `friend` event says happened between two people."""

    REQUESTED = "REQUESTED"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    REMOVED = "REMOVED"
    BLOCKED = "BLOCKED"
    UNBLOCKED = "UNBLOCKED"


@dataclass(frozen=True, slots=True)
class FriendEvent:
    """A `friend` event as one of the two people sees it."""

    change: FriendChange
    #: The other person.
    user_id: int
    #: True when the viewer made the change (from any of their devices).
    by_viewer: bool
    occurred_at: datetime


# -- blocks, as other services check them -----------------------------------------------------

_blocks = Block.__table__
_conversations = Conversation.__table__
_memberships = Membership.__table__
_peer = _memberships.alias("peer")


def _blocked_between(
    a: ColumnElement[Any] | int, b: ColumnElement[Any] | int
) -> ColumnElement[bool]:
    return or_(
        and_(_blocks.c.blocker_id == a, _blocks.c.blocked_id == b),
        and_(_blocks.c.blocker_id == b, _blocks.c.blocked_id == a),
    )


# Checked before every DM send: built once, as Core, with bind parameters.
_BLOCK_BETWEEN = (
    select(_blocks.c.id)
    .where(_blocked_between(bindparam("b_user_id"), bindparam("b_other_id")))
    .limit(1)
)
#: A block between the user and the other member of a DIRECT conversation they are in. Groups
#: and conversations the user is not in find nothing (the membership rule answers those).
_BLOCK_IN_DIRECT = (
    select(_blocks.c.id)
    .select_from(
        _conversations.join(_peer, _peer.c.conversation_id == _conversations.c.id).join(
            _blocks, _blocked_between(bindparam("b_user_id"), _peer.c.user_id)
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
            _blocked_between(sender_id, peer.c.user_id),
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


# -- changing friendships and blocks ----------------------------------------------------------


@asynccontextmanager
async def _between(rt: Runtime, *, viewer_id: int, user_id: int) -> AsyncIterator[AsyncSession]:
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


async def _ensure_both_people(session: AsyncSession, *, viewer_id: int, user_id: int) -> None:
    """Friendship is between people: support-widget guests and bots have no friends list."""
    rows = await session.execute(
        select(User.id, User.kind).where(User.id.in_((viewer_id, user_id)))
    )
    kinds = {user_id_: kind for user_id_, kind in rows}
    if kinds.get(viewer_id) != UserKind.PERSON:
        raise Forbidden("Guest and bot accounts cannot have friends.", field="userId")
    if kinds.get(user_id) != UserKind.PERSON:
        raise Forbidden("Guests and bots cannot be asked to be friends.", field="userId")


async def _friendship(session: AsyncSession, *, viewer_id: int, user_id: int) -> Friendship | None:
    return await session.scalar(
        select(Friendship).where(
            or_(
                and_(Friendship.requester_id == viewer_id, Friendship.addressee_id == user_id),
                and_(Friendship.requester_id == user_id, Friendship.addressee_id == viewer_id),
            )
        )
    )


async def _announce(rt: Runtime, change: FriendChange, *, actor_id: int, subject_id: int) -> None:
    envelope = envelopes.FriendChanged(
        change=change.value, actor_id=actor_id, subject_id=subject_id, occurred_at=time.time()
    )
    for user_id in (actor_id, subject_id):
        await rt.announce(channels.user(user_id), envelope)


async def send_request(rt: Runtime, *, viewer_id: int, user_id: int) -> Friendship:
    """Ask `user_id` to be friends; if they already asked the viewer, that makes them friends."""
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        await ensure_not_blocked(session, user_id=viewer_id, other_id=user_id)
        await _ensure_both_people(session, viewer_id=viewer_id, user_id=user_id)
        friendship = await _friendship(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is None:
            friendship = Friendship(
                requester_id=viewer_id,
                addressee_id=user_id,
                state=FriendshipState.REQUESTED,
                created_at=utcnow(),
            )
            session.add(friendship)
            change = FriendChange.REQUESTED
        elif friendship.state == FriendshipState.ACCEPTED:
            raise Conflict("You are already friends.", field="userId")
        elif friendship.requester_id == viewer_id:
            raise Conflict("You already asked this user; wait for their answer.", field="userId")
        else:
            friendship.state = FriendshipState.ACCEPTED
            friendship.accepted_at = utcnow()
            await message_requests.activate_between(session, user_id=viewer_id, other_id=user_id)
            change = FriendChange.ACCEPTED
    await _announce(rt, change, actor_id=viewer_id, subject_id=user_id)
    return friendship


def _request_to_viewer(
    friendship: Friendship | None, *, viewer_id: int, wrong_side: str
) -> Friendship:
    """The pending request the other person sent the viewer; FORBIDDEN if it is the viewer's."""
    if friendship is None or friendship.state != FriendshipState.REQUESTED:
        raise NotFound("No friend request from this user.", field="userId")
    if friendship.requester_id == viewer_id:
        raise Forbidden(wrong_side, field="userId")
    return friendship


async def accept_request(rt: Runtime, *, viewer_id: int, user_id: int) -> Friendship:
    """The addressee accepts: they are friends from now on."""
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = await _friendship(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is not None and friendship.state == FriendshipState.ACCEPTED:
            raise Conflict("You are already friends.", field="userId")
        friendship = _request_to_viewer(
            friendship,
            viewer_id=viewer_id,
            wrong_side="Only the person you asked can accept your request.",
        )
        friendship.state = FriendshipState.ACCEPTED
        friendship.accepted_at = utcnow()
        await message_requests.activate_between(session, user_id=viewer_id, other_id=user_id)
    await _announce(rt, FriendChange.ACCEPTED, actor_id=viewer_id, subject_id=user_id)
    return friendship


async def decline_request(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    """The addressee says no: the request is gone (they may ask again later)."""
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = _request_to_viewer(
            await _friendship(session, viewer_id=viewer_id, user_id=user_id),
            viewer_id=viewer_id,
            wrong_side="This is your own request: cancel it instead.",
        )
        await session.delete(friendship)
    await _announce(rt, FriendChange.DECLINED, actor_id=viewer_id, subject_id=user_id)


async def cancel_request(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    """The requester takes their request back."""
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = await _friendship(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is None or friendship.state != FriendshipState.REQUESTED:
            raise NotFound("No friend request to this user.", field="userId")
        if friendship.requester_id != viewer_id:
            raise Forbidden("This user asked you: decline it instead.", field="userId")
        await session.delete(friendship)
    await _announce(rt, FriendChange.CANCELLED, actor_id=viewer_id, subject_id=user_id)


async def remove_friend(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = await _friendship(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is None or friendship.state != FriendshipState.ACCEPTED:
            raise NotFound("You are not friends with this user.", field="userId")
        await session.delete(friendship)
    await _announce(rt, FriendChange.REMOVED, actor_id=viewer_id, subject_id=user_id)


async def block(rt: Runtime, *, viewer_id: int, user_id: int) -> Block:
    """Block `user_id`: no DMs, typing or friend requests either way until the viewer unblocks.

    Any friendship or pending request between the two is deleted; the BLOCKED event says so
    (no separate REMOVED/CANCELLED events).
    """
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        existing = await session.scalar(
            select(Block.id).where(Block.blocker_id == viewer_id, Block.blocked_id == user_id)
        )
        if existing is not None:
            raise Conflict("You have already blocked this user.", field="userId")
        friendship = await _friendship(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is not None:
            await session.delete(friendship)
        blocked = Block(blocker_id=viewer_id, blocked_id=user_id, created_at=utcnow())
        session.add(blocked)
    await _announce(rt, FriendChange.BLOCKED, actor_id=viewer_id, subject_id=user_id)
    return blocked


async def unblock(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    """Lift the viewer's own block (a block the other person made stays). Friendship is not
    restored; messaging is, unless the other person blocks the viewer too."""
    async with _between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        blocks = {
            row.blocker_id: row
            for row in await session.scalars(
                select(Block).where(_blocked_between(viewer_id, user_id))
            )
        }
        if viewer_id not in blocks:
            if user_id in blocks:
                raise Forbidden("Only the person who blocked can unblock.", field="userId")
            raise NotFound("You have not blocked this user.", field="userId")
        await session.delete(blocks[viewer_id])
    await _announce(rt, FriendChange.UNBLOCKED, actor_id=viewer_id, subject_id=user_id)


# -- lists ----------------------------------------------------------------------------------


def other_party(friendship: Friendship, *, viewer_id: int) -> int:
    """The person on the other side of a friendship or request."""
    if friendship.requester_id == viewer_id:
        return friendship.addressee_id
    return friendship.requester_id


async def list_friends_for(
    session: AsyncSession, *, viewer_id: int, page: PageRequest
) -> Page[Friendship]:
    """Accepted friendships, most recently made first."""
    statement = select(Friendship).where(
        Friendship.state == FriendshipState.ACCEPTED,
        or_(Friendship.requester_id == viewer_id, Friendship.addressee_id == viewer_id),
    )
    return await paginate(
        session,
        statement,
        keys=(Friendship.accepted_at, Friendship.id),
        descending=True,
        request=page,
        key_values=lambda f: (f.accepted_at, f.id),
    )


async def _requests(
    session: AsyncSession, *, incoming: bool, viewer_id: int, page: PageRequest
) -> Page[Friendship]:
    side = Friendship.addressee_id if incoming else Friendship.requester_id
    statement = select(Friendship).where(
        Friendship.state == FriendshipState.REQUESTED, side == viewer_id
    )
    return await paginate(
        session,
        statement,
        keys=(Friendship.created_at, Friendship.id),
        descending=True,
        request=page,
        key_values=lambda f: (f.created_at, f.id),
    )


async def list_incoming_requests_for(
    session: AsyncSession, *, viewer_id: int, page: PageRequest
) -> Page[Friendship]:
    """Requests others sent the viewer and the viewer has not answered, newest first."""
    return await _requests(session, incoming=True, viewer_id=viewer_id, page=page)


async def list_outgoing_requests_for(
    session: AsyncSession, *, viewer_id: int, page: PageRequest
) -> Page[Friendship]:
    """Requests the viewer sent that are still unanswered, newest first."""
    return await _requests(session, incoming=False, viewer_id=viewer_id, page=page)


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


# -- live events ----------------------------------------------------------------------------


def _as_seen_by(viewer_id: int, envelope: envelopes.FriendChanged) -> FriendEvent | None:
    if viewer_id not in (envelope.actor_id, envelope.subject_id):
        return None
    try:
        change = FriendChange(envelope.change)
    except ValueError:  # a newer instance's change: skip it, like an unknown envelope
        return None
    by_viewer = envelope.actor_id == viewer_id
    return FriendEvent(
        change=change,
        user_id=envelope.subject_id if by_viewer else envelope.actor_id,
        by_viewer=by_viewer,
        occurred_at=datetime.fromtimestamp(envelope.occurred_at, UTC),
    )


async def events_for(rt: Runtime, *, viewer_id: int) -> AsyncIterator[FriendEvent]:
    """Live `friend` events of the viewer, from every instance (through `user:{id}`).

    Ephemeral: nothing is replayed. A broker reconnect (RESYNC) may have lost some, and a
    client that reconnects has missed some; either way the lists are the truth to re-query.
    """
    async with rt.broker.subscribe(channels.user(viewer_id)) as sub:
        try:
            async for item in sub:
                if not isinstance(item, Message):
                    continue
                envelope = envelopes.decode(item.data)
                if isinstance(envelope, envelopes.FriendChanged):
                    event = _as_seen_by(viewer_id, envelope)
                    if event is not None:
                        yield event
        except SubscriberOverflow as error:
            raise SubscriberOverflowError(
                "This subscription fell too far behind and was closed; "
                "resubscribe and re-query your friends and requests."
            ) from error


# -- finding people ---------------------------------------------------------------------------

MAX_SEARCH_RESULTS = 30


class Relation(enum.StrEnum):
    NONE = "NONE"
    FRIEND = "FRIEND"
    REQUEST_SENT = "REQUEST_SENT"
    REQUEST_RECEIVED = "REQUEST_RECEIVED"


@dataclass(frozen=True)
class PersonMatch:
    user: User
    relation: Relation


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_people(
    session: AsyncSession, *, viewer_id: int, query: str, limit: int = MAX_SEARCH_RESULTS
) -> list[PersonMatch]:
    """People matching `query` in username, display name, or the first and last names the
    viewer may see (`privacy.visible_clause`); friends first, then exact usernames.

    Leaves out the viewer, guests, bots, suspended and unverified accounts, and anyone on
    either side of a block with the viewer.
    """
    text = query.strip().lower()
    if not 1 <= len(text) <= 50:
        raise BadUserInput("Search for 1-50 characters.", field="query")
    if not 1 <= limit <= MAX_SEARCH_RESULTS:
        raise BadUserInput(f"first must be between 1 and {MAX_SEARCH_RESULTS}.", field="first")
    if not validation.storable(text):
        return []  # no name can contain it
    pattern = _like_pattern(text)
    friendship = Friendship.__table__.alias("search_friendship")
    users_table = User.__table__
    rows = await session.execute(
        select(User, friendship.c.state, friendship.c.requester_id)
        .outerjoin(
            friendship,
            or_(
                and_(
                    friendship.c.requester_id == viewer_id,
                    friendship.c.addressee_id == users_table.c.id,
                ),
                and_(
                    friendship.c.requester_id == users_table.c.id,
                    friendship.c.addressee_id == viewer_id,
                ),
            ),
        )
        .where(
            users_table.c.id != viewer_id,
            users_table.c.kind == UserKind.PERSON,
            users_table.c.suspended_at.is_(None),
            or_(
                users_table.c.email_verified_at.is_not(None),
                users_table.c.phone_verified_at.is_not(None),
            ),
            ~exists().where(_blocked_between(viewer_id, users_table.c.id)),
            or_(
                func.lower(users_table.c.username_key).like(pattern, escape="\\"),
                func.lower(users_table.c.display_name).like(pattern, escape="\\"),
                # Names only where the person shares them with the viewer: a match on a
                # hidden name would confirm a guess at it.
                and_(
                    privacy.visible_clause(
                        Detail.FULL_NAME,
                        is_friend=friendship.c.state == FriendshipState.ACCEPTED,
                    ),
                    or_(
                        func.lower(users_table.c.first_name).like(pattern, escape="\\"),
                        func.lower(users_table.c.last_name).like(pattern, escape="\\"),
                    ),
                ),
            ),
        )
        .order_by(
            case((friendship.c.state == FriendshipState.ACCEPTED, 0), else_=1),
            case((users_table.c.username_key == text, 0), else_=1),
            users_table.c.username_key,
        )
        .limit(limit)
    )
    matches = []
    for user, state, requester_id in rows:
        if state is None:
            relation = Relation.NONE
        elif state == FriendshipState.ACCEPTED:
            relation = Relation.FRIEND
        elif requester_id == viewer_id:
            relation = Relation.REQUEST_SENT
        else:
            relation = Relation.REQUEST_RECEIVED
        matches.append(PersonMatch(user, relation))
    return matches
