"""The conversation streams: `conversationEvents` and `myEvents` (their event types are in
chatr.schema.events)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from chatr.resolvers import streams
from chatr.schema import broadcast
from chatr.schema.events import ConversationEvent, is_exposed
from chatr.schema.info import ChatrInfo


@strawberry.type
class StreamSubscription:
    @strawberry.subscription(
        description="Events of one conversation. With `afterSeq`, first every message after "
        "that seq (and what happened since) from storage, then live — nothing missed, no "
        "duplicates."
    )
    async def conversation_events(
        self, info: ChatrInfo, conversation_id: strawberry.ID, after_seq: int | None = None
    ) -> AsyncGenerator[ConversationEvent, None]:
        renderer, outlet = broadcast.delivery_for(info)
        stream = await streams.conversation_events(
            info.context,
            conversation_id=conversation_id,
            after_seq=after_seq,
            renderer=renderer,
            outlet=outlet,
        )
        async for item in stream:
            if is_exposed(item):
                yield item  # type: ignore[misc]

    @strawberry.subscription(
        description="Every event of every conversation I am in. Pass the last `cursor` you got "
        "as `after` to resume without gaps."
    )
    async def my_events(
        self, info: ChatrInfo, after: str | None = None
    ) -> AsyncGenerator[ConversationEvent, None]:
        renderer, outlet = broadcast.delivery_for(info)
        stream = await streams.my_events(
            info.context, after=after, renderer=renderer, outlet=outlet
        )
        async for item in stream:
            if is_exposed(item):
                yield item  # type: ignore[misc]
