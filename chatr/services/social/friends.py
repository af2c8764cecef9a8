"""Friends: asking, accepting, declining, cancelling, removing, and the lists of friends and
pending requests."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import Conflict, Forbidden, NotFound
from chatr.models import Friendship, FriendshipState, User, UserKind
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import message_requests
from chatr.services.pagination import Page, PageRequest, paginate
from chatr.services.social import events, pairs
from chatr.services.social.blocks import ensure_not_blocked
from chatr.services.social.events import FriendChange


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


async def send_request(rt: Runtime, *, viewer_id: int, user_id: int) -> Friendship:
    """Ask `user_id` to be friends; if they already asked the viewer, that makes them friends."""
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        await ensure_not_blocked(session, user_id=viewer_id, other_id=user_id)
        await _ensure_both_people(session, viewer_id=viewer_id, user_id=user_id)
        friendship = await pairs.friendship_between(session, viewer_id=viewer_id, user_id=user_id)
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
    await events.announce(rt, change, actor_id=viewer_id, subject_id=user_id)
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
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = await pairs.friendship_between(session, viewer_id=viewer_id, user_id=user_id)
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
    await events.announce(rt, FriendChange.ACCEPTED, actor_id=viewer_id, subject_id=user_id)
    return friendship


async def decline_request(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    """The addressee says no: the request is gone (they may ask again later)."""
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = _request_to_viewer(
            await pairs.friendship_between(session, viewer_id=viewer_id, user_id=user_id),
            viewer_id=viewer_id,
            wrong_side="This is your own request: cancel it instead.",
        )
        await session.delete(friendship)
    await events.announce(rt, FriendChange.DECLINED, actor_id=viewer_id, subject_id=user_id)


async def cancel_request(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    """The requester takes their request back."""
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = await pairs.friendship_between(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is None or friendship.state != FriendshipState.REQUESTED:
            raise NotFound("No friend request to this user.", field="userId")
        if friendship.requester_id != viewer_id:
            raise Forbidden("This user asked you: decline it instead.", field="userId")
        await session.delete(friendship)
    await events.announce(rt, FriendChange.CANCELLED, actor_id=viewer_id, subject_id=user_id)


async def remove_friend(rt: Runtime, *, viewer_id: int, user_id: int) -> None:
    async with pairs.between(rt, viewer_id=viewer_id, user_id=user_id) as session:
        friendship = await pairs.friendship_between(session, viewer_id=viewer_id, user_id=user_id)
        if friendship is None or friendship.state != FriendshipState.ACCEPTED:
            raise NotFound("You are not friends with this user.", field="userId")
        await session.delete(friendship)
    await events.announce(rt, FriendChange.REMOVED, actor_id=viewer_id, subject_id=user_id)


# -- lists -----------------------------------------------------------------------------------


async def one_of_mine(rt: Runtime, *, viewer_id: int, friendship_id: int) -> Friendship:
    """A friendship or pending request (a `Friendship`), for its two people only: NOT_FOUND
    for anyone else, as for one that does not exist or was declined, cancelled or ended."""
    async with rt.db.reader() as session:
        friendship = await session.get(Friendship, friendship_id)
    if friendship is None or viewer_id not in (friendship.requester_id, friendship.addressee_id):
        raise NotFound("No such friendship.", field="id")
    return friendship


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
