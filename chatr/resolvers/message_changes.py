"""Edit, unsend, delete for me, react, forward, pin and star: parse ids, call the service."""

from __future__ import annotations

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Message
from chatr.services import (
    forwarding,
    message_changes,
    pins,
    reactions,
    stars,
)
from chatr.services.pagination import Page, PageRequest


def _message_id(value: str, field: str = "messageId") -> int:
    return global_ids.decode(value, Kind.MESSAGE, field=field)


async def edit_message(ctx: Context, *, message_id: str, body: str) -> Message:
    viewer = await ctx.viewer()
    return await message_changes.edit(
        ctx.runtime, viewer_id=viewer.id, message_id=_message_id(message_id), body=body
    )


async def unsend_message(ctx: Context, *, message_id: str) -> Message:
    viewer = await ctx.viewer()
    return await message_changes.unsend(
        ctx.runtime, viewer_id=viewer.id, message_id=_message_id(message_id)
    )


async def delete_message_for_me(ctx: Context, *, message_id: str) -> bool:
    viewer = await ctx.viewer()
    return await message_changes.hide(
        ctx.runtime, viewer_id=viewer.id, message_id=_message_id(message_id)
    )


async def react_to_message(ctx: Context, *, message_id: str, emoji: str) -> Message:
    viewer = await ctx.viewer()
    return await reactions.react(
        ctx.runtime, viewer_id=viewer.id, message_id=_message_id(message_id), emoji=emoji
    )


async def forward_message(
    ctx: Context, *, message_id: str, conversation_ids: list[str], client_message_id: str
) -> list[Message]:
    viewer = await ctx.viewer()
    return await forwarding.forward(
        ctx.runtime,
        viewer_id=viewer.id,
        message_id=_message_id(message_id, "input.messageId"),
        conversation_ids=global_ids.decode_all(
            conversation_ids, Kind.CONVERSATION, field="input.conversationIds"
        ),
        client_id=client_message_id,
    )


async def set_pinned(ctx: Context, *, message_id: str, pinned: bool) -> Message:
    viewer = await ctx.viewer()
    return await pins.set_pinned(
        ctx.runtime, viewer_id=viewer.id, message_id=_message_id(message_id), pinned=pinned
    )


async def set_starred(ctx: Context, *, message_id: str, starred: bool) -> Message:
    viewer = await ctx.viewer()
    return await stars.set_starred(
        ctx.runtime, viewer_id=viewer.id, message_id=_message_id(message_id), starred=starred
    )


async def starred_messages(ctx: Context, *, page: PageRequest) -> Page[Message]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await stars.list_for(session, viewer_id=viewer.id, page=page)


async def pinned_messages(ctx: Context, *, conversation_id: int) -> list[Message]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await pins.list_for(session, viewer_id=viewer.id, conversation_id=conversation_id)
