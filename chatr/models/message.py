"""Messages and everything that hangs off one: revisions, reactions, attachments."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from chatr.models.base import Base, Id, UTCDateTime, utcnow

#: Search's storage, made by migration 0004 in SQL and read only by
#: chatr.services.message_search: PostgreSQL's generated `messages.search_vector` and its GIN
#: index, SQLite's FTS5 table `message_search` (and the shadow tables FTS5 keeps, named
#: `message_search_*`). Not models: `alembic check` leaves them out (migrations/env.py).
SEARCH_COLUMN = "search_vector"
SEARCH_INDEX = "ix_messages_search_vector"
SEARCH_TABLE = "message_search"


def is_search_storage(name: str | None, kind: str) -> bool:
    """Whether a reflected schema object is search's own (see `SEARCH_COLUMN`)."""
    if name is None:
        return False
    if kind == "table":
        return name == SEARCH_TABLE or name.startswith(f"{SEARCH_TABLE}_")
    return (kind, name) in {("column", SEARCH_COLUMN), ("index", SEARCH_INDEX)}


class MessageKind(enum.StrEnum):
    TEXT = "TEXT"
    IMAGE = "IMAGE"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    FILE = "FILE"
    SYSTEM = "SYSTEM"
    ENCRYPTED = "ENCRYPTED"


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("uq_messages_conversation_id_seq", "conversation_id", "seq", unique=True),
        # Idempotent sends: a retry with the same client id returns the stored message.
        Index("uq_messages_sender_id_client_id", "sender_id", "client_id", unique=True),
        # `pinnedMessages`: a conversation's pins, newest first. Partial, like the next one:
        # most messages are neither pinned nor replies, and a send then adds nothing to them
        # (migration 0008).
        Index(
            "ix_messages_conversation_id_pinned_at",
            "conversation_id",
            "pinned_at",
            postgresql_where=text("pinned_at IS NOT NULL"),
            sqlite_where=text("pinned_at IS NOT NULL"),
        ),
        # Unsend rewrites the snapshots quoting the message it removes.
        Index(
            "ix_messages_reply_to_id",
            "reply_to_id",
            postgresql_where=text("reply_to_id IS NOT NULL"),
            sqlite_where=text("reply_to_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[MessageKind] = mapped_column(
        Enum(MessageKind, native_enum=False, length=16), default=MessageKind.TEXT
    )
    body: Mapped[str | None] = mapped_column(Text)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    #: Quoted snapshot of the replied-to message, kept even if the original is deleted. None
    #: is SQL NULL (not JSON `null`): most messages quote nothing, and the send statement
    #: then binds no serialised value.
    reply_snapshot: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))
    link_preview: Mapped[dict[str, object] | None] = mapped_column(JSON)
    #: Kind-specific metadata: voice-note waveform and duration, system-message details.
    extra: Mapped[dict[str, object] | None] = mapped_column(JSON)
    #: A copy another message was forwarded from. The original (and its sender) is not
    #: recorded, so nothing about it can leak to where it was forwarded.
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Unsent ("deleted for everyone"): the content is gone, this tombstone says when and by whom.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    pinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pinned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class MessageRevision(Base):
    """Every earlier text of an edited message, with who edited it and when."""

    __tablename__ = "message_revisions"
    __table_args__ = (Index("ix_message_revisions_message_id", "message_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Reaction(Base):
    """One emoji per user per message."""

    __tablename__ = "reactions"
    __table_args__ = (
        Index("uq_reactions_message_id_user_id", "message_id", "user_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    emoji: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MessageHidden(Base):
    """ "Delete for me": the message stays for everyone else."""

    __tablename__ = "message_hidden"
    __table_args__ = (
        Index("uq_message_hidden_message_id_user_id", "message_id", "user_id", unique=True),
        # What I hid, per conversation: my unread count leaves it out.
        Index("ix_message_hidden_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


class MessageMention(Base):
    """A member `@username` named in a group message, resolved when it was sent (or edited).

    `conversation_id` and `seq` are copied from the message so that a member's unread mentions
    (`mentionCount`) are one index range: mentions of me in this conversation after my read
    marker.
    """

    __tablename__ = "message_mentions"
    __table_args__ = (
        Index("uq_message_mentions_message_id_user_id", "message_id", "user_id", unique=True),
        Index(
            "ix_message_mentions_user_id_conversation_id_seq", "user_id", "conversation_id", "seq"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)


class MessageStar(Base):
    """A private bookmark: only its owner ever sees it."""

    __tablename__ = "message_stars"
    __table_args__ = (
        Index("uq_message_stars_user_id_message_id", "user_id", "message_id", unique=True),
        Index("ix_message_stars_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AttachmentKind(enum.StrEnum):
    IMAGE = "IMAGE"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    FILE = "FILE"


class UploadPurpose(enum.StrEnum):
    """What an upload is for: a message's attachment, or a picture of a profile or group."""

    MESSAGE = "MESSAGE"
    AVATAR = "AVATAR"
    COVER = "COVER"


class Attachment(Base):
    """An uploaded object (S3 or local media dir), attached to at most one message.

    Made by `createUpload` (the client's declared type and size, `uploaded_at` null); the
    bytes arrive later, are checked (their real type, by magic bytes) and measured, and
    `uploaded_at` is set. One that is still attached to nothing at `expires_at` is deleted
    with its stored object (chatr.services.uploads).
    """

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_message_id", "message_id"),
        Index("uq_attachments_storage_key", "storage_key", unique=True),
        Index("ix_attachments_expires_at", "expires_at"),
        Index("ix_attachments_owner_id", "owner_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    storage_key: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kind: Mapped[AttachmentKind] = mapped_column(
        Enum(AttachmentKind, native_enum=False, length=16),
        default=AttachmentKind.FILE,
        server_default=AttachmentKind.FILE.value,
    )
    purpose: Mapped[UploadPurpose] = mapped_column(
        Enum(UploadPurpose, native_enum=False, length=16),
        default=UploadPurpose.MESSAGE,
        server_default=UploadPurpose.MESSAGE.value,
    )
    #: Unused by then (no message, no profile), it is deleted; null once used.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MessagePlay(Base):
    """A member played a voice note (`markPlayed`): its sender sees it was listened to."""

    __tablename__ = "message_plays"
    __table_args__ = (
        Index("uq_message_plays_message_id_user_id", "message_id", "user_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    played_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
