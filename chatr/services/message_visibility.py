"""Which messages a member sees: the one rule history, unread counts and search share.

"Delete for me" (`MessageHidden`) takes a message out of one member's history, search and
unread counts, and nowhere else; unsending ("delete for everyone") leaves a tombstone in
everyone's history whose content is gone, so nothing can match it. Every reader of messages
that must honour either asks here rather than writing its own condition, so a new reader
cannot forget one.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.models import Membership, MembershipState, Message, MessageHidden, MessageKind

_messages = Message.__table__
_hidden = MessageHidden.__table__
_memberships = Membership.__table__

#: Kinds whose text the server cannot or should not search (encrypted bodies, SYSTEM notes
#: generated from membership changes).
UNSEARCHABLE_KINDS = (MessageKind.ENCRYPTED, MessageKind.SYSTEM)


def hidden_from(
    viewer_id: Any, message_id: ColumnElement[Any] = _messages.c.id
) -> ColumnElement[bool]:
    """The viewer deleted this message for themselves (`viewer_id`: a value or SQL)."""
    return exists().where(_hidden.c.message_id == message_id, _hidden.c.user_id == viewer_id)


def in_history_of(viewer_id: Any) -> ColumnElement[bool]:
    """Shown in the viewer's history: not hidden by them (an unsent message stays, as a
    tombstone). The caller still checks membership and the member's `cleared_seq`."""
    return not_(hidden_from(viewer_id))


def searchable_by(viewer_id: Any) -> ColumnElement[bool]:
    """May match the viewer's search: has content (not unsent), is plain text the server can
    read, and is not hidden by them. The caller still checks membership and `cleared_seq`."""
    return and_(
        _messages.c.deleted_at.is_(None),
        _messages.c.body.is_not(None),
        _messages.c.kind.not_in(UNSEARCHABLE_KINDS),
        not_(hidden_from(viewer_id)),
    )


async def unread_not_counted(
    session: AsyncSession, *, user_id: int, conversation_ids: Collection[int]
) -> dict[int, int]:
    """Per conversation, how many messages after the user's read marker their unread count
    leaves out: those they deleted for themselves, and unsent ones (nothing left to read).
    One query for the whole inbox; the unread range is short, and `(conversation_id, seq)`
    is indexed."""
    rows = await session.execute(
        select(_messages.c.conversation_id, func.count())
        .join(
            _memberships,
            and_(
                _memberships.c.conversation_id == _messages.c.conversation_id,
                _memberships.c.user_id == user_id,
                _memberships.c.state == MembershipState.ACCEPTED,
            ),
        )
        .where(
            _messages.c.conversation_id.in_(list(conversation_ids)),
            _messages.c.seq > _memberships.c.last_read_seq,
            _messages.c.seq > _memberships.c.cleared_seq,
            or_(_messages.c.deleted_at.is_not(None), hidden_from(user_id)),
        )
        .group_by(_messages.c.conversation_id)
    )
    return {conversation_id: count for conversation_id, count in rows}
