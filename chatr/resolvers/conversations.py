"""Inbox, one conversation, its history, receipts and typing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chatr.context import Context
from chatr.models import Conversation, Membership, Message
from chatr.services import conversations, message_requests, messages, receipts, validation
from chatr.services.pagination import Page, PageRequest
from chatr.services.receipts import ReceiptState


async def inbox(ctx: Context, *, page: PageRequest) -> Page[Conversation]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await conversations.list_for(session, viewer_id=viewer.id, page=page)


async def conversation(ctx: Context, *, conversation_id: str) -> Conversation:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await conversations.get_for_viewer(
            session,
            viewer_id=viewer.id,
            conversation_id=validation.parse_id(conversation_id, field="id"),
        )


async def reached(ctx: Context, *, conversation_id: int) -> Conversation:
    """A conversation reached through something else (a message, an event's message): the
    viewer's only while they are in it, by the same rule as `conversation(id)`.

    Both rows come from the request's loaders, so a page of messages costs one batch.
    """
    viewer = await ctx.viewer()
    membership, found = await asyncio.gather(
        ctx.loaders.membership.load((conversation_id, viewer.id)),
        ctx.loaders.conversation_by_id.load(conversation_id),
    )
    conversations.require_accepted(membership, viewer_id=viewer.id, conversation_id=conversation_id)
    if found is None:  # deleted since the membership was read
        raise conversations.not_yours()
    return found


async def history(ctx: Context, *, conversation_id: int, page: PageRequest) -> Page[Message]:
    viewer = await ctx.viewer()
    membership = await ctx.loaders.membership.load((conversation_id, viewer.id))
    async with ctx.runtime.db.reader() as session:
        return await messages.list_for(
            session,
            viewer_id=viewer.id,
            conversation_id=conversation_id,
            page=page,
            membership=membership,
        )


async def _move_receipt(
    ctx: Context,
    service: Callable[..., Awaitable[ReceiptState]],
    *,
    conversation_id: str,
    up_to_seq: int,
) -> ReceiptState:
    viewer = await ctx.viewer()
    return await service(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=validation.parse_id(conversation_id, field="conversationId"),
        up_to_seq=up_to_seq,
    )


async def mark_read(ctx: Context, *, conversation_id: str, up_to_seq: int) -> ReceiptState:
    return await _move_receipt(
        ctx, receipts.mark_read, conversation_id=conversation_id, up_to_seq=up_to_seq
    )


async def mark_delivered(ctx: Context, *, conversation_id: str, up_to_seq: int) -> ReceiptState:
    return await _move_receipt(
        ctx, receipts.mark_delivered, conversation_id=conversation_id, up_to_seq=up_to_seq
    )


async def set_typing(ctx: Context, *, conversation_id: str, typing: bool) -> bool:
    viewer = await ctx.viewer()
    return await receipts.set_typing(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=validation.parse_id(conversation_id, field="conversationId"),
        typing=typing,
    )


async def markers_hidden(ctx: Context, membership: Membership) -> bool:
    """Whether the viewer may not see this member's delivered/read markers (an unanswered
    message request hides the recipient's from the requester)."""
    viewer = await ctx.viewer()
    conversation = await ctx.loaders.conversation_by_id.load(membership.conversation_id)
    return conversation is None or message_requests.hides_from(
        conversation, viewer_id=viewer.id, member_id=membership.user_id
    )


async def message_requests_to_me(ctx: Context, *, page: PageRequest) -> Page[Conversation]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await message_requests.list_for(session, viewer_id=viewer.id, page=page)


async def accept_message_request(ctx: Context, *, conversation_id: str) -> Conversation:
    viewer = await ctx.viewer()
    return await message_requests.accept(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=validation.parse_id(conversation_id, field="conversationId"),
    )


async def decline_message_request(ctx: Context, *, conversation_id: str) -> bool:
    viewer = await ctx.viewer()
    return await message_requests.decline(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=validation.parse_id(conversation_id, field="conversationId"),
    )
