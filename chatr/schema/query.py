"""Root query type."""

from __future__ import annotations

import strawberry

from chatr.resolvers import auth, conversations
from chatr.schema.pagination import Connection, connection_field
from chatr.schema.types import (
    ChatrInfo,
    ConversationType,
    SessionType,
    UsernameAvailability,
    UserType,
)


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user, or null when not signed in.")
    async def me(self, info: ChatrInfo) -> UserType | None:
        return await auth.me(info.context)  # type: ignore[return-value]

    conversations: Connection[ConversationType] = connection_field(
        ConversationType,
        conversations.inbox,
        description="The inbox: my conversations, most recent activity first.",
    )

    @strawberry.field(
        description="One of my conversations. NOT_FOUND when I am not in it, exactly as when "
        "there is none: ids reveal nothing."
    )
    async def conversation(self, info: ChatrInfo, id: strawberry.ID) -> ConversationType:
        return await conversations.conversation(info.context, conversation_id=id)  # type: ignore[return-value]

    @strawberry.field(description="My signed-in devices, most recently used first.")
    async def my_sessions(self, info: ChatrInfo) -> list[SessionType]:
        return await auth.my_sessions(info.context)  # type: ignore[return-value]

    @strawberry.field(
        description="Whether a username is free (case-insensitive); if not, 3 suggestions."
    )
    async def username_available(self, info: ChatrInfo, username: str) -> UsernameAvailability:
        return await auth.username_available(info.context, username=username)  # type: ignore[return-value]
