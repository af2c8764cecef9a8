"""Delivered and read markers, and typing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.pubsub.envelopes import TypingActivity
from chatr.services import receipts
from chatr.services.receipts import ReceiptState


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
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
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


async def set_typing(
    ctx: Context,
    *,
    conversation_id: str,
    typing: bool,
    activity: TypingActivity = TypingActivity.TYPING,
) -> bool:
    viewer = await ctx.viewer()
    return await receipts.set_typing(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
        typing=typing,
        activity=activity,
    )
