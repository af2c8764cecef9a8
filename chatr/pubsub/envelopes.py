"""Small JSON envelopes announced on pub/sub.

They say what changed and at which position; they are never the only copy of anything
durable. Subscribers re-read the database through the services, so authorisation and field
selection stay on the same path as queries.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, fields
from typing import ClassVar


@dataclass(frozen=True)
class EventAnnounced:
    """A durable event was committed at `event_id` (replay from the log to get it)."""

    kind: ClassVar[str] = "event"
    event_id: int
    conversation_id: int
    type: str
    seq: int | None = None


class TypingActivity(enum.StrEnum):
    """What someone shown as busy in a conversation is doing."""

    TYPING = "TYPING"
    RECORDING_VOICE = "RECORDING_VOICE"


@dataclass(frozen=True)
class TypingChanged:
    """Ephemeral: not logged; lost signals simply expire at `expires_at` (epoch seconds)."""

    kind: ClassVar[str] = "typing"
    conversation_id: int
    user_id: int
    typing: bool
    expires_at: float
    #: A `TypingActivity` value (an older instance's envelope has none: typing).
    activity: str = "TYPING"


@dataclass(frozen=True)
class ConversationJoined:
    """Sent to `user:{id}` so a user-wide stream starts listening to a new conversation."""

    kind: ClassVar[str] = "joined"
    conversation_id: int


@dataclass(frozen=True)
class MembersRemoved:
    """Sent to `conversation:{id}`: these people left, were removed, or the group was deleted.

    Their live streams of the conversation stop delivering it (durable events already stop at
    the replay query, which joins on accepted membership; this also stops typing).
    """

    kind: ClassVar[str] = "members_removed"
    conversation_id: int
    user_ids: list[int]


@dataclass(frozen=True)
class SessionRevoked:
    """Sent to `user:{id}` (its sockets close with 4403) and to `sessions` (every instance
    drops the session from its authentication cache)."""

    kind: ClassVar[str] = "session_revoked"
    user_id: int
    session_id: int | None  # None: every session of the user (suspension, password reset)


@dataclass(frozen=True)
class FriendChanged:
    """Sent to `user:{id}` of both people: a friend request, friendship or block changed.

    Ephemeral, like typing: nothing is logged, so a client that was offline re-queries the
    lists. `change` is a `chatr.services.social.events.FriendChange` value.
    """

    kind: ClassVar[str] = "friend"
    change: str
    actor_id: int
    subject_id: int
    occurred_at: float  # epoch seconds


@dataclass(frozen=True)
class PresenceChanged:
    """Sent to `presence:{id}` when a user's combined status changes (ephemeral: watchers
    start from the current status, so a lost one is corrected by the next)."""

    kind: ClassVar[str] = "presence"
    user_id: int
    status: str  # a chatr.infra.presence_store.Status value
    occurred_at: float  # epoch seconds


Envelope = (
    EventAnnounced
    | TypingChanged
    | ConversationJoined
    | MembersRemoved
    | SessionRevoked
    | FriendChanged
    | PresenceChanged
)

_KINDS: dict[str, type[Envelope]] = {
    cls.kind: cls
    for cls in (
        EventAnnounced,
        TypingChanged,
        ConversationJoined,
        MembersRemoved,
        SessionRevoked,
        FriendChanged,
        PresenceChanged,
    )
}


#: Each kind's field names, in order. Every field is a JSON value already (numbers, strings,
#: lists of ints), so `encode` reads them directly: `dataclasses.asdict` deep-copies each
#: value and was a visible share of a send's CPU.
_FIELDS: dict[type[Envelope], tuple[str, ...]] = {
    cls: tuple(field.name for field in fields(cls)) for cls in _KINDS.values()
}


def encode(envelope: Envelope) -> str:
    data: dict[str, object] = {"k": envelope.kind}
    for name in _FIELDS[type(envelope)]:
        data[name] = getattr(envelope, name)
    return json.dumps(data, separators=(",", ":"))


def decode(data: str) -> Envelope | None:
    """Parse an envelope; unknown or malformed ones (a newer instance's) are ignored."""
    try:
        raw = json.loads(data)
        cls = _KINDS[raw.pop("k")]
        return cls(**raw)
    except (ValueError, KeyError, TypeError):
        return None
