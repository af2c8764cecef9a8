"""Message search and the inbox's operations: thin, the rules live in the services."""

from __future__ import annotations

from datetime import datetime

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Conversation
from chatr.services import conversation_deletion, inbox, message_search
from chatr.services.message_search import Filters, Hit
from chatr.services.pagination import Page, PageRequest


def _conversation_id(value: str, field: str = "conversationId") -> int:
    return global_ids.decode(value, Kind.CONVERSATION, field=field)


async def search_messages(
    ctx: Context,
    *,
    query: str,
    conversation_id: str | None,
    sender_id: str | None,
    since: datetime | None,
    until: datetime | None,
    page: PageRequest,
) -> Page[Hit]:
    viewer = await ctx.viewer()
    filters = Filters(
        conversation_id=None if conversation_id is None else _conversation_id(conversation_id),
        sender_id=None
        if sender_id is None
        else global_ids.decode(sender_id, Kind.USER, field="senderId"),
        since=since,
        until=until,
    )
    async with ctx.runtime.db.reader() as session:
        return await message_search.search(
            session, viewer_id=viewer.id, query=query, filters=filters, page=page
        )


async def direct_conversation_with(ctx: Context, *, user_id: str) -> Conversation | None:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await inbox.direct_with(
            session,
            viewer_id=viewer.id,
            user_id=global_ids.decode(user_id, Kind.USER, field="userId"),
        )


async def mute(ctx: Context, *, conversation_id: str, until: datetime | None) -> Conversation:
    viewer = await ctx.viewer()
    return await inbox.mute(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=_conversation_id(conversation_id),
        until=until,
    )


async def archive(ctx: Context, *, conversation_id: str, archived: bool) -> Conversation:
    viewer = await ctx.viewer()
    return await inbox.archive(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=_conversation_id(conversation_id),
        archived=archived,
    )


async def pin(ctx: Context, *, conversation_id: str, pinned: bool) -> Conversation:
    viewer = await ctx.viewer()
    return await inbox.pin(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=_conversation_id(conversation_id),
        pinned=pinned,
    )


async def delete_conversation(ctx: Context, *, conversation_id: str) -> bool:
    viewer = await ctx.viewer()
    return await conversation_deletion.delete_for_everyone(
        ctx.runtime, viewer_id=viewer.id, conversation_id=_conversation_id(conversation_id)
    )
