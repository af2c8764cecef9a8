"""The durable event log: the replay source for subscriptions and what pub/sub announces.

Event ids come from the single-row `event_stream` counter, incremented as the last write of
the transaction that records the event. Its row lock is held until commit, so ids become
visible in commit order: a reader that has seen id N can never later find a committed id < N.
That property is what lets `myEvents(after: N)` resume without gaps (a plain sequence would
let a slow transaction commit a smaller id after a larger one was delivered).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from chatr.models.base import Base, UTCDateTime, utcnow


class EventType(enum.StrEnum):
    MESSAGE_POSTED = "MESSAGE_POSTED"
    MESSAGE_EDITED = "MESSAGE_EDITED"
    MESSAGE_DELETED = "MESSAGE_DELETED"
    REACTION_CHANGED = "REACTION_CHANGED"
    RECEIPT_UPDATED = "RECEIPT_UPDATED"
    MEMBERSHIP_CHANGED = "MEMBERSHIP_CHANGED"
    CONVERSATION_UPDATED = "CONVERSATION_UPDATED"


class EventStream(Base):
    """One row: the last event id handed out."""

    __tablename__ = "event_stream"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[EventType] = mapped_column(Enum(EventType, native_enum=False, length=32))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    #: The conversation's message seq this event concerns (the posted message, or the receipt's
    #: upper bound), for `conversationEvents(afterSeq:)`.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
