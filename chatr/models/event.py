"""The durable event log: the replay source for subscriptions and what pub/sub announces.

The log's one order is `(xid, id)`: `xid` is the 64-bit id of the transaction that wrote the
event, `id` comes from a plain sequence (no lock). A reader only reads events whose `xid` is
below the oldest transaction still running on the server (`pg_snapshot_xmin`): every writer
below it has finished, so that part of the log can no longer change, and every reader sees
it in the same order. Writers never wait for each other, except per conversation (see
`chatr.infra.event_log.serialise`). See docs/architecture.md, "The write path and the
event order", for why this design and not another.

On SQLite (one writer at a time) `xid` is always 0 and `id` comes from the `event_stream`
counter, taken in the writing transaction, so ids become visible in commit order.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Enum, FetchedValue, ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from chatr.models.base import Base, UTCDateTime, utcnow


class EventType(enum.StrEnum):
    MESSAGE_POSTED = "MESSAGE_POSTED"
    MESSAGE_EDITED = "MESSAGE_EDITED"
    MESSAGE_DELETED = "MESSAGE_DELETED"
    REACTION_CHANGED = "REACTION_CHANGED"
    MESSAGE_PINNED = "MESSAGE_PINNED"
    MESSAGE_UNPINNED = "MESSAGE_UNPINNED"
    #: A member played a voice note (`markPlayed`).
    MESSAGE_PLAYED = "MESSAGE_PLAYED"
    #: The server added to a message after it was sent (its link preview arrived).
    MESSAGE_UPDATED = "MESSAGE_UPDATED"
    #: Addressed to the member who did it (`Event.audience_id`): they starred or unstarred
    #: a message (`data.starred`), or deleted it for themselves. Nobody else gets these.
    MESSAGE_STAR_CHANGED = "MESSAGE_STAR_CHANGED"
    MESSAGE_HIDDEN = "MESSAGE_HIDDEN"
    RECEIPT_UPDATED = "RECEIPT_UPDATED"
    MEMBERSHIP_CHANGED = "MEMBERSHIP_CHANGED"
    CONVERSATION_UPDATED = "CONVERSATION_UPDATED"
    #: Addressed to one member (`Event.audience_id`): their mute/archive/pin changed.
    MEMBER_SETTINGS_CHANGED = "MEMBER_SETTINGS_CHANGED"
    #: Addressed to the invitee: they were invited to a group.
    GROUP_INVITED = "GROUP_INVITED"
    #: Addressed to each former member: the conversation was deleted for everyone.
    CONVERSATION_DELETED = "CONVERSATION_DELETED"
    #: Addressed to a member who left a group or was removed from it (`data.reason`): the
    #: last of the group they get, so their devices can drop it.
    MEMBERSHIP_ENDED = "MEMBERSHIP_ENDED"
    #: A member changed their profile (names, pictures, privacy): for the conversation.
    PROFILE_UPDATED = "PROFILE_UPDATED"


class EventStream(Base):
    """One row: the last event id handed out on SQLite (PostgreSQL uses `EVENT_ID_SEQUENCE`)."""

    __tablename__ = "event_stream"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


#: PostgreSQL: where event ids come from (the column's default; created by migration 0002).
EVENT_ID_SEQUENCE = "events_id_seq"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_xid_id", "xid", "id"),
        Index("ix_events_conversation_id_xid_id", "conversation_id", "xid", "id"),
        # Partial: most events are for every member and have no audience, so a send adds
        # nothing to this index (migration 0008).
        Index(
            "ix_events_audience_id_xid_id",
            "audience_id",
            "xid",
            "id",
            postgresql_where=text("audience_id IS NOT NULL"),
            sqlite_where=text("audience_id IS NOT NULL"),
        ),
    )

    #: PostgreSQL: from `EVENT_ID_SEQUENCE` (the server default); SQLite: the counter.
    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, server_default=FetchedValue()
    )
    #: The writing transaction's `pg_current_xact_id()` (64 bits: never wraps); 0 on SQLite
    #: and for events logged before migration 0002 (their old ids keep their order).
    xid: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[EventType] = mapped_column(Enum(EventType, native_enum=False, length=32))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    #: The conversation's message seq this event concerns (the posted message, or the receipt's
    #: upper bound), for `conversationEvents(afterSeq:)`.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, object] | None] = mapped_column(JSON)
    #: Set: only this user sees the event (their own inbox settings, an invitation, the
    #: deletion of a conversation they were in), whether or not they are an accepted member.
    #: Null: every accepted member of the conversation sees it.
    audience_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
