"""Friendships and blocks between users."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from chatr.models.base import Base, Id, UTCDateTime, utcnow


class FriendshipState(enum.StrEnum):
    REQUESTED = "REQUESTED"
    ACCEPTED = "ACCEPTED"


class Friendship(Base):
    """A request from requester to addressee; ACCEPTED makes them friends (one row per pair)."""

    __tablename__ = "friendships"
    __table_args__ = (
        Index(
            "uq_friendships_requester_id_addressee_id", "requester_id", "addressee_id", unique=True
        ),
        Index("ix_friendships_addressee_id", "addressee_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    addressee_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[FriendshipState] = mapped_column(
        Enum(FriendshipState, native_enum=False, length=16), default=FriendshipState.REQUESTED
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Block(Base):
    __tablename__ = "blocks"
    __table_args__ = (
        Index("uq_blocks_blocker_id_blocked_id", "blocker_id", "blocked_id", unique=True),
        Index("ix_blocks_blocked_id", "blocked_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    blocker_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    blocked_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
