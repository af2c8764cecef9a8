"""Subscription event types: what `conversationEvents` and `myEvents` deliver."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry import Parent

from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import StreamItem, Typing
from chatr.models import EventType
from chatr.resolvers import profiles as profile_resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.messages import MessageType
from chatr.schema.profiles import UserType
from chatr.services.privacy import Detail


@strawberry.interface(description="Something that happened in a conversation.")
class ConversationEvent:
    @strawberry.field
    def conversation_id(self, root: Parent[LoggedEvent | Typing]) -> strawberry.ID:
        return strawberry.ID(str(root.conversation_id))

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

    @strawberry.field(description="Treat as stopped after this unless refreshed.")
    def expires_at(self, root: Parent[Typing]) -> datetime:
        return datetime.fromtimestamp(root.expires_at, UTC)


EVENT_TYPES = [MessagePostedEvent, ReceiptUpdatedEvent, TypingEvent]
_EXPOSED = {EventType.MESSAGE_POSTED, EventType.RECEIPT_UPDATED}


def is_exposed(item: StreamItem) -> bool:
    """Event types later issues add to the log are skipped until they get a GraphQL type."""
    return isinstance(item, Typing) or item.type in _EXPOSED
