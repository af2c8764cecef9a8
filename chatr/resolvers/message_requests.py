"""Message requests: DMs from people who are not my friends, waiting for my answer."""

from __future__ import annotations

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Conversation
from chatr.services import message_requests
from chatr.services.pagination import Page, PageRequest


async def message_requests_to_me(ctx: Context, *, page: PageRequest) -> Page[Conversation]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await message_requests.list_for(session, viewer_id=viewer.id, page=page)


async def accept_message_request(ctx: Context, *, conversation_id: str) -> Conversation:
    viewer = await ctx.viewer()
    return await message_requests.accept(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
    )


async def decline_message_request(ctx: Context, *, conversation_id: str) -> bool:
    viewer = await ctx.viewer()
    return await message_requests.decline(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
    )
