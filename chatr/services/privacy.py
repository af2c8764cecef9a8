"""Who may see what of a person: privacy settings and the viewer's standing.

Every place a user is shown goes through `may_see`, so a setting holds everywhere at once
(profile lookups, message senders, members, friends lists, search results, events). The
rules:
- yourself: everything;
- a block either way: none of the controlled details, whatever the setting (the blocked party
  sees only that they are blocked);
- a friend: what is shared with EVERYONE or FRIENDS;
- anyone else: what is shared with EVERYONE.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import ColumnElement, and_, case, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chatr.models import (
    Block,
    Conversation,
    ConversationKind,
    ConversationStatus,
    Friendship,
    FriendshipState,
    Membership,
    User,
)


class Audience(enum.StrEnum):
    EVERYONE = "EVERYONE"
    FRIENDS = "FRIENDS"
    NOBODY = "NOBODY"


class Detail(enum.StrEnum):
    """A detail a person controls; the value is its key in `User.privacy`."""

    ONLINE_STATUS = "online_status"
    LAST_SEEN = "last_seen"
    PHONE = "phone"
    EMAIL = "email"
    FULL_NAME = "full_name"
    GENDER = "gender"
    JOINED_DATE = "joined_date"
    READ_RECEIPTS = "read_receipts"


#: Contact details are private until the person shares them; the rest is public as in most
#: chat apps, and each can be narrowed.
DEFAULTS: Mapping[Detail, Audience] = {
    Detail.ONLINE_STATUS: Audience.EVERYONE,
    Detail.LAST_SEEN: Audience.EVERYONE,
    Detail.PHONE: Audience.NOBODY,
    Detail.EMAIL: Audience.NOBODY,
    Detail.FULL_NAME: Audience.EVERYONE,
    Detail.GENDER: Audience.EVERYONE,
    Detail.JOINED_DATE: Audience.EVERYONE,
    Detail.READ_RECEIPTS: Audience.EVERYONE,
}


class Standing(enum.StrEnum):
    """Where a viewer stands with the person they look at."""

    SELF = "SELF"
    FRIEND = "FRIEND"
    STRANGER = "STRANGER"
    BLOCKED = "BLOCKED"  # either of the two blocked the other
    #: A stranger the viewer wrote a message request to that is not answered yet: until the
    #: recipient accepts, the requester learns nothing of their presence.
    REQUESTER = "REQUESTER"


#: What an unanswered message request hides from the requester, whatever the settings.
_HIDDEN_FROM_REQUESTER = frozenset({Detail.ONLINE_STATUS, Detail.LAST_SEEN})


def settings_of(user: User) -> dict[Detail, Audience]:
    """The person's settings, defaults filled in (unknown stored keys are ignored)."""
    stored = user.privacy or {}
    settings = dict(DEFAULTS)
    for detail in Detail:
        value = stored.get(detail.value)
        if isinstance(value, str) and value in Audience.__members__:
            settings[detail] = Audience(value)
    return settings


def may_see(user: User, detail: Detail, standing: Standing) -> bool:
    if standing is Standing.SELF:
        return True
    if standing is Standing.BLOCKED:
        return False
    if standing is Standing.REQUESTER and detail in _HIDDEN_FROM_REQUESTER:
        return False
    audience = settings_of(user)[detail]
    if audience is Audience.EVERYONE:
        return True
    return audience is Audience.FRIENDS and standing is Standing.FRIEND


def visible_clause(detail: Detail, *, is_friend: ColumnElement[bool]) -> ColumnElement[bool]:
    """`may_see` as SQL over `users`, for a viewer who is a stranger or (where `is_friend`) a
    friend: what a query may MATCH on, not only show. Search uses it so a hidden detail
    cannot be confirmed by guessing it (the blocked and the viewer themselves never get here).

    An absent or unknown stored value means the default, as in `settings_of`.
    """
    stored = User.__table__.c.privacy[detail.value].as_string()
    audience = case(
        (stored.in_([a.value for a in Audience]), stored), else_=literal(DEFAULTS[detail].value)
    )
    return or_(
        audience == Audience.EVERYONE.value,
        and_(is_friend, audience == Audience.FRIENDS.value),
    )


async def standings(
    db: AsyncSession | AsyncConnection, *, viewer_id: int | None, user_ids: Sequence[int]
) -> dict[int, Standing]:
    """The viewer's standing with each of `user_ids`, in one statement.

    An anonymous viewer is a stranger to everybody.
    """
    if viewer_id is None:
        return dict.fromkeys(user_ids, Standing.STRANGER)
    found = await standings_between(db, viewer_ids=[viewer_id], user_ids=user_ids)
    return {user_id: found[viewer_id, user_id] for user_id in user_ids}


async def standings_between(
    db: AsyncSession | AsyncConnection, *, viewer_ids: Collection[int], user_ids: Collection[int]
) -> dict[tuple[int, int], Standing]:
    """Every (viewer, user) pair's standing, in one statement: many viewers looking at one
    sender is what live fan-out asks.

    A block outranks a friendship (blocking ends friendships anyway).
    """
    viewers = set(viewer_ids)
    users = set(user_ids)
    found: dict[tuple[int, int], Standing] = {}
    only_self = len(viewers) == 1 and users == viewers
    if viewers and users and not only_self:
        friends = Friendship.__table__
        blocks = Block.__table__
        dms = Conversation.__table__
        members = Membership.__table__
        statement = union_all(
            select(friends.c.requester_id, friends.c.addressee_id, literal("F")).where(
                friends.c.requester_id.in_(viewers),
                friends.c.addressee_id.in_(users),
                friends.c.state == FriendshipState.ACCEPTED,
            ),
            select(friends.c.addressee_id, friends.c.requester_id, literal("F")).where(
                friends.c.addressee_id.in_(viewers),
                friends.c.requester_id.in_(users),
                friends.c.state == FriendshipState.ACCEPTED,
            ),
            select(blocks.c.blocker_id, blocks.c.blocked_id, literal("B")).where(
                blocks.c.blocker_id.in_(viewers), blocks.c.blocked_id.in_(users)
            ),
            select(blocks.c.blocked_id, blocks.c.blocker_id, literal("B")).where(
                blocks.c.blocked_id.in_(viewers), blocks.c.blocker_id.in_(users)
            ),
            select(dms.c.created_by_id, members.c.user_id, literal("R"))
            .select_from(members.join(dms, dms.c.id == members.c.conversation_id))
            .where(
                dms.c.kind == ConversationKind.DIRECT,
                dms.c.status == ConversationStatus.PENDING,
                dms.c.created_by_id.in_(viewers),
                members.c.user_id.in_(users),
                members.c.user_id != dms.c.created_by_id,
            ),
        )
        rank = {"B": Standing.BLOCKED, "F": Standing.FRIEND, "R": Standing.REQUESTER}
        for viewer, other, kind in (await db.execute(statement)).all():
            # a block outranks everything; friends have no pending requests between them
            if viewer != other and found.get((viewer, other)) is not Standing.BLOCKED:
                found[viewer, other] = rank[kind]
    return {
        (viewer, user): Standing.SELF
        if viewer == user
        else found.get((viewer, user), Standing.STRANGER)
        for viewer in viewers
        for user in users
    }
