"""Accounts: people, guests and bots share one table so every message has a sender row."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Enum, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from chatr.models.base import Base, Id, UTCDateTime, utcnow


class UserKind(enum.StrEnum):
    PERSON = "PERSON"
    GUEST = "GUEST"
    BOT = "BOT"


class UserRole(enum.StrEnum):
    USER = "USER"
    SUPPORT = "SUPPORT"
    ADMIN = "ADMIN"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Usernames and emails are unique case-insensitively; the lower-cased copy is the key.
        Index("uq_users_username_key", "username_key", unique=True),
        Index("uq_users_email_key", "email_key", unique=True),
        Index("uq_users_phone", "phone", unique=True),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[UserKind] = mapped_column(
        Enum(UserKind, native_enum=False, length=16), default=UserKind.PERSON
    )
    role: Mapped[UserRole] = mapped_column(
        Enum(UserRole, native_enum=False, length=16), default=UserRole.USER
    )
    username: Mapped[str] = mapped_column(String(40))
    username_key: Mapped[str] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    email_key: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(80))
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    gender: Mapped[str | None] = mapped_column(String(32))
    avatar_url: Mapped[str | None] = mapped_column(String(1024))
    cover_url: Mapped[str | None] = mapped_column(String(1024))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    phone_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Base32 TOTP secret once 2FA is confirmed (enrolment keeps it in `pending_totp_secret`).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    pending_totp_secret: Mapped[str | None] = mapped_column(String(64))
    #: Last accepted TOTP time step: the replay guard.
    totp_last_step: Mapped[int | None] = mapped_column()
    two_factor_method: Mapped[str | None] = mapped_column(String(16))
    #: Privacy settings: field name -> EVERYONE | FRIENDS | NOBODY.
    privacy: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: Guest visitor details (page context, optional email) for the support widget.
    guest_info: Mapped[dict[str, str] | None] = mapped_column(JSON)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
