"""Root query type."""

from __future__ import annotations

import strawberry

from chatr.resolvers import auth, conversations
from chatr.schema.pagination import Connection
from chatr.schema.types import (
    ChatrInfo,
    ConversationType,
    SessionType,
    UsernameAvailability,
    UserType,
)
from chatr.services.pagination import PageRequest


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user, or null when not signed in.")
    async def me(self, info: ChatrInfo) -> UserType | None:
        return await auth.me(info.context)  # type: ignore[return-value]

    @strawberry.field(description="The inbox: my conversations, most recent activity first.")
    async def conversations(
        self,
        info: ChatrInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ConversationType]:
        page = await conversations.inbox(
            info.context, page=PageRequest(first=first, after=after, last=last, before=before)
        )
        return Connection.from_page(page)  # type: ignore[return-value]

    @strawberry.field(description="One of my conversations.")
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
