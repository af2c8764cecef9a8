"""SQLAlchemy models: one set for PostgreSQL (production, tests) and SQLite (embedded default)."""

from chatr.models.auth import AuthSession, RefreshToken, VerificationCode
from chatr.models.base import Base
from chatr.models.conversation import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    MemberRole,
    Membership,
    MembershipState,
)
from chatr.models.event import Event, EventStream, EventType
from chatr.models.message import (
    Attachment,
    AttachmentKind,
    Message,
    MessageHidden,
    MessageKind,
    MessageMention,
    MessagePlay,
    MessageRevision,
    MessageStar,
    Reaction,
    UploadPurpose,
)
from chatr.models.social import Block, Friendship, FriendshipState
from chatr.models.user import User, UserKind, UserRole

__all__ = [
    "Attachment",
    "AttachmentKind",
    "AuthSession",
    "Base",
    "Block",
    "Conversation",
    "ConversationKind",
    "ConversationStatus",
    "Event",
    "EventStream",
    "EventType",
    "Friendship",
    "FriendshipState",
    "MemberRole",
    "Membership",
    "MembershipState",
    "Message",
    "MessageHidden",
    "MessageKind",
    "MessageMention",
    "MessagePlay",
    "MessageRevision",
    "MessageStar",
    "Reaction",
    "RefreshToken",
    "UploadPurpose",
    "User",
    "UserKind",
    "UserRole",
    "VerificationCode",
]
