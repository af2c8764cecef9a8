"""Conversations (direct or group) and who is in them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chatr.models.base import Base, Id, UTCDateTime, utcnow


class ConversationKind(enum.StrEnum):
    DIRECT = "DIRECT"
    GROUP = "GROUP"


class ConversationStatus(enum.StrEnum):
    """Message requests: a DM between non-friends is PENDING until the recipient accepts."""

    ACTIVE = "ACTIVE"
    PENDING = "PENDING"


class MemberRole(enum.StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


class MembershipState(enum.StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # One DM per pair: "<smaller id>:<larger id>", NULL for groups.
        Index("uq_conversations_direct_key", "direct_key", unique=True),
        # No index on last_activity_at: each send updates it, and unindexed the update is
        # HOT; inbox pages start from the viewer's memberships (migration 0009).
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[ConversationKind] = mapped_column(
        Enum(ConversationKind, native_enum=False, length=16)
    )
    status: Mapped[ConversationStatus] = mapped_column(
        Enum(ConversationStatus, native_enum=False, length=16), default=ConversationStatus.ACTIVE
    )
    direct_key: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    avatar_url: Mapped[str | None] = mapped_column(String(1024))
    cover_url: Mapped[str | None] = mapped_column(String(1024))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: The highest message seq handed out; incremented under this row's lock on every send,
    #: which is what makes seq gap-free and commit-ordered.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    summary: Mapped[str | None] = mapped_column(String(200))
    summary_seq: Mapped[int | None] = mapped_column(BigInteger)
    summary_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Deleted for everyone: members, messages and history are gone; the row stays only so
    #: that the `CONVERSATION_DELETED` events addressed to its former members can name it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Membership(Base):
    """A user's place in a conversation, including their receipts (delivered/read up to seq)."""

    __tablename__ = "memberships"
    __table_args__ = (
        Index("uq_memberships_conversation_id_user_id", "conversation_id", "user_id", unique=True),
        Index("ix_memberships_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[MemberRole] = mapped_column(
        Enum(MemberRole, native_enum=False, length=16), default=MemberRole.MEMBER
    )
    state: Mapped[MembershipState] = mapped_column(
        Enum(MembershipState, native_enum=False, length=16), default=MembershipState.ACCEPTED
    )
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_delivered_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Messages with seq at or below this are hidden for this member ("delete conversation for me").
    cleared_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Where in the event log this membership starts counting: the log position
    #: `(since_xid, since_event_id)` (see chatr.infra.event_log) of the transaction that
    #: invited, added or let them in (`event_log.since_now`). Only events after it are this
    #: member's (or, while invited, this invitee's), so a late joiner replaying from an old
    #: cursor gets nothing from before they joined. (0, 0): every event of the conversation
    #: (DMs, which nobody joins later; members from before migration 0007).
    since_xid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    since_event_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: This member's own inbox settings (nobody else sees them): notifications muted until
    #: then (far future: for good), archived (out of the main inbox), pinned (on top).
    muted_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
