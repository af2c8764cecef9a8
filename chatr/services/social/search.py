"""Finding people by name: what the viewer may search by, friends first, never across a
block."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput
from chatr.models import Friendship, FriendshipState, User, UserKind
from chatr.services import privacy, validation
from chatr.services.privacy import Detail
from chatr.services.social.blocks import blocked_between

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
            ~exists().where(blocked_between(viewer_id, users_table.c.id)),
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
