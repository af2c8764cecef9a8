"""Conversations and membership checks; the inbox."""

from __future__ import annotations

from sqlalchemy import Select, and_, case, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput, Forbidden, NotFound
from chatr.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Friendship,
    FriendshipState,
    Membership,
    MembershipState,
    User,
    UserKind,
    UserRole,
)
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import accounts
from chatr.services.pagination import Page, PageRequest, paginate

#: Who may talk with support-widget guests.
STAFF_ROLES = frozenset({UserRole.SUPPORT, UserRole.ADMIN})


def direct_key(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


def not_yours(field: str = "conversationId") -> NotFound:
    """The one answer for a conversation (or group) that is missing or not the viewer's.

    A conversation that exists but is someone else's is answered exactly like one that does
    not exist, so ids cannot be probed; that includes the viewer's former groups (whoever left
    or was removed sees nothing of the group, not even what they saw while in it).
    """
    return NotFound("No such conversation.", field=field)


def _own(
    membership: Membership | None, *, viewer_id: int, conversation_id: int, field: str
) -> Membership:
    """The viewer's row in that conversation, whatever its state; else NOT_FOUND."""
    if (
        membership is None
        or membership.user_id != viewer_id
        or membership.conversation_id != conversation_id
    ):
        raise not_yours(field)
    return membership


def require_accepted(
    membership: Membership | None,
    *,
    viewer_id: int,
    conversation_id: int,
    field: str = "conversationId",
) -> Membership:
    """The viewer's accepted membership, or the refusal: the rule every conversation- and
    group-scoped field applies, here and nowhere else.

    No membership at all: NOT_FOUND (`not_yours`). An invitation not yet accepted: FORBIDDEN,
    since the invitee already sees the group in `myGroupInvites` and may only not use it yet.
    """
    membership = _own(membership, viewer_id=viewer_id, conversation_id=conversation_id, field=field)
    if membership.state != MembershipState.ACCEPTED:
        raise Forbidden("Accept the invitation to this group first.", field=field)
    return membership


def require_invited(
    membership: Membership | None,
    *,
    viewer_id: int,
    conversation_id: int,
    field: str = "conversationId",
) -> Membership:
    """The viewer's pending invitation, for answering it: the same rule the other way round
    (a member, who can see the group, is told FORBIDDEN; anyone else NOT_FOUND)."""
    membership = _own(membership, viewer_id=viewer_id, conversation_id=conversation_id, field=field)
    if membership.state != MembershipState.PENDING:
        raise Forbidden("You have no pending invitation to this group.", field=field)
    return membership


async def get_membership_or_raise(
    session: AsyncSession, *, viewer_id: int, conversation_id: int
) -> tuple[Conversation, Membership]:
    """The conversation and the viewer's accepted membership in it (see `require_accepted`)."""
    row = (
        await session.execute(
            select(Conversation, Membership)
            .join(
                Membership,
                (Membership.conversation_id == Conversation.id) & (Membership.user_id == viewer_id),
            )
            .where(Conversation.id == conversation_id)
        )
    ).first()
    if row is None:
        raise not_yours()
    conversation, membership = row
    require_accepted(membership, viewer_id=viewer_id, conversation_id=conversation_id)
    return conversation, membership


async def get_or_create_direct_id(rt: Runtime, *, viewer_id: int, recipient_id: int) -> int:
    """The id of the one DM conversation between two users, created on first use."""
    if recipient_id == viewer_id:
        raise BadUserInput("You cannot message yourself.", field="recipientId")
    key = direct_key(viewer_id, recipient_id)
    async with rt.db.reader() as session:
        existing = await session.scalar(
            select(Conversation.id).where(Conversation.direct_key == key)
        )
    if existing is not None:
        return existing
    return await _create_direct(rt, viewer_id=viewer_id, recipient_id=recipient_id, key=key)


async def _first_status(
    session: AsyncSession, *, sender: User, recipient: User
) -> ConversationStatus:
    """A DM between people who are not friends starts as a message request (PENDING).

    Support chats (a guest and staff) and the assistant bot need no acceptance.
    """
    if sender.kind != UserKind.PERSON or recipient.kind != UserKind.PERSON:
        return ConversationStatus.ACTIVE
    friends = await session.scalar(
        select(Friendship.id).where(
            Friendship.state == FriendshipState.ACCEPTED,
            or_(
                and_(Friendship.requester_id == sender.id, Friendship.addressee_id == recipient.id),
                and_(Friendship.requester_id == recipient.id, Friendship.addressee_id == sender.id),
            ),
        )
    )
    return ConversationStatus.ACTIVE if friends is not None else ConversationStatus.PENDING


async def _create_direct(rt: Runtime, *, viewer_id: int, recipient_id: int, key: str) -> int:
    async with rt.db.session() as session:
        recipient = await session.get(User, recipient_id)
        if recipient is None or recipient.suspended_at is not None:
            raise NotFound("No such user.", field="recipientId")
        sender = await accounts.require_viewer(session, viewer_id=viewer_id)
        # Support-widget guests talk to support staff only, in either direction.
        if UserKind.GUEST in (sender.kind, recipient.kind) and not (
            sender.role in STAFF_ROLES or recipient.role in STAFF_ROLES
        ):
            raise Forbidden("Guests can only talk to support staff.", field="recipientId")
        now = utcnow()
        conversation = Conversation(
            kind=ConversationKind.DIRECT,
            status=await _first_status(session, sender=sender, recipient=recipient),
            direct_key=key,
            created_by_id=viewer_id,
            created_at=now,
            last_activity_at=now,
        )
        session.add(conversation)
        try:
            await session.flush()
            session.add_all(
                Membership(conversation_id=conversation.id, user_id=user_id, joined_at=now)
                for user_id in (viewer_id, recipient_id)
            )
            await session.commit()
        except IntegrityError:
            # Both sides messaged each other for the first time at once: use the winner's.
            await session.rollback()
            existing = await session.scalar(
                select(Conversation.id).where(Conversation.direct_key == key)
            )
            if existing is None:
                raise
            return existing
    for user_id in (viewer_id, recipient_id):
        await rt.announce(channels.user(user_id), envelopes.ConversationJoined(conversation.id))
    return conversation.id


async def ids_for_member(session: AsyncSession, *, user_id: int) -> list[int]:
    result = await session.scalars(
        select(Membership.conversation_id).where(
            Membership.user_id == user_id, Membership.state == MembershipState.ACCEPTED
        )
    )
    return list(result)


#: The inbox's first sort key: 1 for a conversation the viewer pinned, else 0.
_PINNED_FIRST = case((Membership.pinned_at.is_not(None), 1), else_=0)


async def list_for(
    session: AsyncSession, *, viewer_id: int, page: PageRequest, archived: bool = False
) -> Page[Conversation]:
    """The inbox: conversations the viewer is in, the ones they pinned first, then most
    recent activity first; archived ones only (`archived`) or none of them (the default)."""
    statement = (
        select(Conversation)
        .join(
            Membership,
            (Membership.conversation_id == Conversation.id)
            & (Membership.user_id == viewer_id)
            & (Membership.state == MembershipState.ACCEPTED),
        )
        .where(
            Membership.archived_at.is_not(None) if archived else Membership.archived_at.is_(None)
        )
        .add_columns(_PINNED_FIRST.label("pinned"))
    )
    found = await paginate(
        session,
        statement,
        keys=(_PINNED_FIRST, Conversation.last_activity_at, Conversation.id),
        descending=True,
        request=page,
        key_values=lambda row: (row.pinned, row.Conversation.last_activity_at, row.Conversation.id),
        scalars=False,
    )
    return Page(
        [(cursor, row.Conversation) for cursor, row in found.edges],
        has_next_page=found.has_next_page,
        has_previous_page=found.has_previous_page,
    )


async def page_by_activity(
    session: AsyncSession, statement: Select[Conversation], page: PageRequest
) -> Page[Conversation]:
    """A page of conversations, most recent activity first (the inbox order)."""
    return await paginate(
        session,
        statement,
        keys=(Conversation.last_activity_at, Conversation.id),
        descending=True,
        request=page,
        key_values=lambda c: (c.last_activity_at, c.id),
    )


async def get_for_viewer(
    session: AsyncSession, *, viewer_id: int, conversation_id: int
) -> Conversation:
    conversation, _ = await get_membership_or_raise(
        session, viewer_id=viewer_id, conversation_id=conversation_id
    )
    return conversation


async def memberships_for_user(
    session: AsyncSession, *, user_id: int, conversation_ids: list[int]
) -> list[Membership]:
    result = await session.scalars(
        select(Membership).where(
            Membership.user_id == user_id, Membership.conversation_id.in_(conversation_ids)
        )
    )
    return list(result)


async def members_of(
    session: AsyncSession,
    *,
    conversation_ids: list[int],
    state: MembershipState = MembershipState.ACCEPTED,
) -> list[Membership]:
    """Members in `state` (ACCEPTED, or PENDING: the invited), in joining order."""
    result = await session.scalars(
        select(Membership)
        .where(
            Membership.conversation_id.in_(conversation_ids),
            Membership.state == state,
        )
        .order_by(Membership.conversation_id, Membership.id)
    )
    return list(result)


async def list_by_ids(session: AsyncSession, *, conversation_ids: list[int]) -> list[Conversation]:
    """Rows only: callers reach these ids through an already-authorised message or membership."""
    result = await session.scalars(
        select(Conversation).where(Conversation.id.in_(conversation_ids))
    )
    return list(result)
