"""Message search and the inbox's operations: root fields and the search result type."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Parent

from chatr.resolvers import inbox as resolvers
from chatr.schema import removals
from chatr.schema.conversations import ConversationType
from chatr.schema.info import ChatrInfo
from chatr.schema.messages import MessageType
from chatr.schema.pagination import Connection
from chatr.schema.removals import DeleteConversationPayload
from chatr.services.inbox import MAX_PINNED
from chatr.services.message_search import Hit
from chatr.services.pagination import PageRequest


@strawberry.type(
    description="Where a searched word sits in a snippet: [start, end) in code points."
)
class TextRange:
    start: int
    end: int


@strawberry.type(name="MessageSearchHit", description="A message that matched a search.")
class MessageSearchHitType:
    @strawberry.field
    def message(self, root: Parent[Hit]) -> MessageType:
        return root.message  # type: ignore[return-value]

    @strawberry.field(description="Relevance: higher is better; results come best first.")
    def rank(self, root: Parent[Hit]) -> float:
        return root.rank

    @strawberry.field(
        description="Plain text around the matches (not HTML): mark `highlights` yourself."
    )
    def snippet(self, root: Parent[Hit]) -> str:
        return root.snippet

    @strawberry.field(description="The matched words in `snippet`.")
    def highlights(self, root: Parent[Hit]) -> list[TextRange]:
        return [TextRange(start=start, end=end) for start, end in root.highlights]


@strawberry.type
class InboxQuery:
    @strawberry.field(
        description="Messages containing every word of `query` in conversations I am in now, "
        "best match first (then newest). Unsent, encrypted and system messages never match, "
        "nor what I deleted for myself. `conversationId` (NOT_FOUND unless I am in it), "
        "`senderId` and [`since`, `until`) narrow it. `first`/`last` at most 100."
    )
    async def search_messages(
        self,
        info: ChatrInfo,
        query: str,
        conversation_id: strawberry.ID | None = None,
        sender_id: strawberry.ID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[MessageSearchHitType]:
        page = await resolvers.search_messages(
            info.context,
            query=query,
            conversation_id=conversation_id,
            sender_id=sender_id,
            since=since,
            until=until,
            page=PageRequest(first=first, after=after, last=last, before=before),
        )
        return Connection.from_page(page)

    @strawberry.field(
        description="My direct conversation with this person, or null when we have none yet "
        "(then the first `sendMessage(recipientId)` starts it; this never creates one)."
    )
    async def direct_conversation_with(
        self, info: ChatrInfo, user_id: strawberry.ID
    ) -> ConversationType | None:
        return await resolvers.direct_conversation_with(info.context, user_id=user_id)  # type: ignore[return-value]


@strawberry.type
class InboxMutation:
    @strawberry.mutation(
        description="Silence this conversation's notifications until `until` (a future time; "
        "far ahead for good). Only I see it."
    )
    async def mute_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID, until: datetime
    ) -> ConversationType:
        return await resolvers.mute(info.context, conversation_id=conversation_id, until=until)  # type: ignore[return-value]

    @strawberry.mutation(description="Notifications for this conversation again.")
    async def unmute_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.mute(info.context, conversation_id=conversation_id, until=None)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Move it out of my inbox into `conversations(archived: true)`; new "
        "messages leave it there. Only I see it."
    )
    async def archive_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.archive(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, archived=True
        )

    @strawberry.mutation(description="Back into my inbox.")
    async def unarchive_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.archive(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, archived=False
        )

    @strawberry.mutation(
        description=f"Keep it at the top of my inbox (at most {MAX_PINNED}). Only I see it."
    )
    async def pin_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.pin(info.context, conversation_id=conversation_id, pinned=True)  # type: ignore[return-value]

    @strawberry.mutation(description="No longer at the top of my inbox.")
    async def unpin_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.pin(info.context, conversation_id=conversation_id, pinned=False)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Delete the conversation with its history for everyone: either person in "
        "a direct conversation, the owner of a group (FORBIDDEN for anyone else in it). Every "
        "former member gets a ConversationDeletedEvent."
    )
    async def delete_conversation(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> DeleteConversationPayload:
        await resolvers.delete_conversation(info.context, conversation_id=conversation_id)
        return DeleteConversationPayload(conversation_id=removals.conversation_id(conversation_id))
