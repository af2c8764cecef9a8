"""Subscriptions: authenticate, then hand over to the stream service."""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatr import global_ids
from chatr.context import Context
from chatr.errors import BadUserInput
from chatr.global_ids import Kind
from chatr.infra import event_log
from chatr.infra.live import Outlet, Renderer, StreamItem
from chatr.services import streams


async def conversation_events(
    ctx: Context,
    *,
    conversation_id: str,
    after_seq: int | None,
    renderer: Renderer | None = None,
    outlet: Outlet | None = None,
) -> AsyncIterator[StreamItem]:
    viewer = await ctx.viewer()
    if after_seq is not None and after_seq < 0:
        raise BadUserInput("afterSeq must not be negative.", field="afterSeq")
    return streams.conversation_events(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
        after_seq=after_seq,
        renderer=renderer,
        outlet=outlet,
    )


def parse_event_cursor(after: str | None) -> int | None:
    return None if after is None else event_log.position_from_cursor(after, field="after")


async def my_events(
    ctx: Context,
    *,
    after: str | None,
    renderer: Renderer | None = None,
    outlet: Outlet | None = None,
) -> AsyncIterator[StreamItem]:
    viewer = await ctx.viewer()
    return streams.user_events(
        ctx.runtime,
        viewer_id=viewer.id,
        after=parse_event_cursor(after),
        renderer=renderer,
        outlet=outlet,
    )
