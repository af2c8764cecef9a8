"""Subscription event types: what `conversationEvents` and `myEvents` deliver."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import StreamItem, Typing
from chatr.models import EventType
from chatr.pubsub.envelopes import TypingActivity
from chatr.resolvers import profiles as profile_resolvers
from chatr.schema.groups import SystemActionEnum
from chatr.schema.info import ChatrInfo
from chatr.schema.messages import MessageType
from chatr.schema.profiles import UserType
from chatr.schema.scalars import TypingActivityEnum
from chatr.services.privacy import Detail


@strawberry.interface(description="Something that happened in a conversation.")
class ConversationEvent:
    @strawberry.field
    def conversation_id(self, root: Parent[LoggedEvent | Typing]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.CONVERSATION, root.conversation_id))

    @strawberry.field(
        description="Resume point for `myEvents(after:)`; null for ephemeral events (typing)."
    )
    def cursor(self, root: Parent[LoggedEvent | Typing]) -> str | None:
        return event_log.cursor_of(root.id) if isinstance(root, LoggedEvent) else None


@strawberry.type(description="A new message was posted.")
class MessagePostedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return isinstance(obj, LoggedEvent) and obj.type == EventType.MESSAGE_POSTED

    @strawberry.field
    def message(self, root: Parent[LoggedEvent]) -> MessageType | None:
        return root.message  # type: ignore[return-value]

    @strawberry.field(description="Whether the message @mentions me.")
    async def mentioned(self, root: Parent[LoggedEvent], info: ChatrInfo) -> bool:
        return await _mentions_viewer(root, info)


async def _mentions_viewer(event: LoggedEvent, info: ChatrInfo) -> bool:
    """Asked as "is the viewer this user?" once per person mentioned, never as the viewer's
    identity: one render of the event then serves everyone not mentioned, and each person
    mentioned gets their own (chatr.schema.broadcast)."""
    if event.message is None:
        return False
    for user_id in await info.context.loaders.mentions_by_message.load(event.message.id):
        if await info.context.viewer_is(user_id):
            return True
    return False


@strawberry.interface(description="Something happened to an earlier message.")
class MessageChangedEvent(ConversationEvent):
    @strawberry.field(description="The message as it is now (a tombstone once unsent).")
    def message(self, root: Parent[LoggedEvent]) -> MessageType | None:
        return root.message  # type: ignore[return-value]

    @strawberry.field(description="Who made the change.")
    async def user(self, root: Parent[LoggedEvent], info: ChatrInfo) -> UserType | None:
        if root.actor_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.actor_id)  # type: ignore[return-value]


def _of_type(kind: EventType) -> classmethod:
    def is_type_of(cls: type, obj: object, _info: object) -> bool:
        return isinstance(obj, LoggedEvent) and obj.type == kind

    return classmethod(is_type_of)


@strawberry.type(description="A message's text was edited (see its `editHistory`).")
class MessageEditedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_EDITED)


@strawberry.type(description="A message was unsent: its content is gone for everyone.")
class MessageDeletedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_DELETED)


@strawberry.type(description="Someone set, changed or took back their reaction.")
class ReactionChangedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.REACTION_CHANGED)

    @strawberry.field(description="Their reaction now; null when they took it back.")
    def emoji(self, root: Parent[LoggedEvent]) -> str | None:
        value = (root.data or {}).get("emoji")
        return None if value is None else str(value)

    @strawberry.field(description="Their reaction before; null if they had none.")
    def previous_emoji(self, root: Parent[LoggedEvent]) -> str | None:
        value = (root.data or {}).get("previous")
        return None if value is None else str(value)


@strawberry.type(description="A message was pinned in the conversation.")
class MessagePinnedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_PINNED)


@strawberry.type(description="A message was unpinned.")
class MessageUnpinnedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_UNPINNED)


@strawberry.type(description="Someone played a voice note (see its `playedBy`).")
class MessagePlayedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_PLAYED)


@strawberry.type(
    description="The server added to a message after it was sent: its link preview arrived "
    "(`message.linkPreview`). `user` is null: nobody made this change."
)
class MessageUpdatedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_UPDATED)


@strawberry.type(
    description="I starred or unstarred a message (on any of my devices): only I get it."
)
class MessageStarChangedEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_STAR_CHANGED)

    @strawberry.field(description="Whether the message is starred now.")
    def starred(self, root: Parent[LoggedEvent]) -> bool:
        return bool((root.data or {}).get("starred"))


@strawberry.type(
    description="I deleted a message for myself (on any of my devices): drop it from my "
    "history. Only I get it; for everyone else the message stays."
)
class MessageHiddenEvent(MessageChangedEvent):
    is_type_of = _of_type(EventType.MESSAGE_HIDDEN)


@strawberry.type(description="A member's delivered/read markers moved forward.")
class ReceiptUpdatedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return isinstance(obj, LoggedEvent) and obj.type == EventType.RECEIPT_UPDATED

    @strawberry.field
    async def user(self, root: Parent[LoggedEvent], info: ChatrInfo) -> UserType | None:
        if root.actor_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.actor_id)  # type: ignore[return-value]

    @strawberry.field(
        description="Null when the member's read-receipt privacy setting hides it from me."
    )
    async def last_read_seq(self, root: Parent[LoggedEvent], info: ChatrInfo) -> int | None:
        seq = int((root.data or {}).get("lastReadSeq", 0))
        member = (
            None
            if root.actor_id is None
            else await info.context.loaders.user_by_id.load(root.actor_id)
        )
        if member is None:
            return None
        return (
            seq
            if await profile_resolvers.may_see(info.context, member, Detail.READ_RECEIPTS)
            else None
        )

    @strawberry.field
    def last_delivered_seq(self, root: Parent[LoggedEvent]) -> int:
        return int((root.data or {}).get("lastDeliveredSeq", 0))


@strawberry.type(description="Someone started or stopped typing. Not stored; expires by itself.")
class TypingEvent(ConversationEvent):
    typing: bool

    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return isinstance(obj, Typing)

    @strawberry.field
    async def user(self, root: Parent[Typing], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]

    @strawberry.field(description="Typing, or recording a voice note.")
    def activity(self, root: Parent[Typing]) -> TypingActivityEnum:
        return TypingActivity(root.activity)

    @strawberry.field(description="Treat as stopped after this unless refreshed.")
    def expires_at(self, root: Parent[Typing]) -> datetime:
        return datetime.fromtimestamp(root.expires_at, UTC)


def _is_logged(obj: object, type: EventType) -> bool:
    return isinstance(obj, LoggedEvent) and obj.type == type


async def _actor(root: LoggedEvent, info: ChatrInfo) -> UserType | None:
    if root.actor_id is None:
        return None
    return await info.context.loaders.user_by_id.load(root.actor_id)  # type: ignore[return-value]


@strawberry.type(
    description="My own settings for a conversation changed (on any of my devices): only I get it."
)
class ConversationSettingsChangedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return _is_logged(obj, EventType.MEMBER_SETTINGS_CHANGED)

    @strawberry.field(description="Muted until then; null: not muted.")
    def muted_until(self, root: Parent[LoggedEvent]) -> datetime | None:
        value = (root.data or {}).get("mutedUntil")
        return None if value is None else datetime.fromisoformat(str(value))

    @strawberry.field
    def archived(self, root: Parent[LoggedEvent]) -> bool:
        return bool((root.data or {}).get("archived"))

    @strawberry.field
    def pinned(self, root: Parent[LoggedEvent]) -> bool:
        return bool((root.data or {}).get("pinned"))


@strawberry.type(
    description="I was invited to a group (only I get it): answer with acceptGroupInvite or "
    "declineGroupInvite; `myGroupInvites` lists it."
)
class GroupInvitedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return _is_logged(obj, EventType.GROUP_INVITED)

    @strawberry.field
    async def invited_by(self, root: Parent[LoggedEvent], info: ChatrInfo) -> UserType | None:
        return await _actor(root, info)


@strawberry.type(
    description="A conversation I was in was deleted for everyone, with its history: drop it. "
    "Each former member gets one."
)
class ConversationDeletedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return _is_logged(obj, EventType.CONVERSATION_DELETED)

    @strawberry.field
    async def deleted_by(self, root: Parent[LoggedEvent], info: ChatrInfo) -> UserType | None:
        return await _actor(root, info)


@strawberry.type(
    description="I am no longer a member of a group: I left it (perhaps on another device) or "
    "was removed. Drop it: nothing more of it reaches me unless I am invited back and accept. "
    "Only I get it."
)
class MembershipEndedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return _is_logged(obj, EventType.MEMBERSHIP_ENDED)

    @strawberry.field(description="LEFT or REMOVED.")
    def reason(self, root: Parent[LoggedEvent]) -> SystemActionEnum:
        return SystemActionEnum((root.data or {})["reason"])

    @strawberry.field(description="Who removed me (me, when I left).")
    async def by(self, root: Parent[LoggedEvent], info: ChatrInfo) -> UserType | None:
        return await _actor(root, info)


@strawberry.type(
    description="Someone I share a conversation with changed their profile or who may see "
    "it, in a way I can see: read `user` again (it shows what privacy lets me see). Sent "
    "once per person to me, in one of our shared conversations."
)
class ProfileUpdatedEvent(ConversationEvent):
    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return _is_logged(obj, EventType.PROFILE_UPDATED)

    @strawberry.field
    async def user(self, root: Parent[LoggedEvent], info: ChatrInfo) -> UserType | None:
        return await _actor(root, info)


EVENT_TYPES = [
    MessagePostedEvent,
    ReceiptUpdatedEvent,
    TypingEvent,
    ConversationSettingsChangedEvent,
    GroupInvitedEvent,
    ConversationDeletedEvent,
    MembershipEndedEvent,
    ProfileUpdatedEvent,
    MessageEditedEvent,
    MessageDeletedEvent,
    ReactionChangedEvent,
    MessagePinnedEvent,
    MessageUnpinnedEvent,
    MessagePlayedEvent,
    MessageUpdatedEvent,
    MessageStarChangedEvent,
    MessageHiddenEvent,
]
_EXPOSED = {
    EventType.MESSAGE_POSTED,
    EventType.RECEIPT_UPDATED,
    EventType.MEMBER_SETTINGS_CHANGED,
    EventType.GROUP_INVITED,
    EventType.CONVERSATION_DELETED,
    EventType.MEMBERSHIP_ENDED,
    EventType.PROFILE_UPDATED,
    EventType.MESSAGE_EDITED,
    EventType.MESSAGE_DELETED,
    EventType.REACTION_CHANGED,
    EventType.MESSAGE_PINNED,
    EventType.MESSAGE_UNPINNED,
    EventType.MESSAGE_PLAYED,
    EventType.MESSAGE_UPDATED,
    EventType.MESSAGE_STAR_CHANGED,
    EventType.MESSAGE_HIDDEN,
}


def is_exposed(item: StreamItem) -> bool:
    """Event types later issues add to the log are skipped until they get a GraphQL type."""
    return isinstance(item, Typing) or item.type in _EXPOSED
