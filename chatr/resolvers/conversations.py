"""Inbox, one conversation, and what the viewer may see of its members."""

from __future__ import annotations

import asyncio

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Conversation, Membership
from chatr.services import conversations, message_requests
from chatr.services.pagination import Page, PageRequest


async def inbox(ctx: Context, *, archived: bool, page: PageRequest) -> Page[Conversation]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await conversations.list_for(
            session, viewer_id=viewer.id, page=page, archived=archived
        )


async def conversation(ctx: Context, *, conversation_id: str) -> Conversation:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await conversations.get_for_viewer(
            session,
            viewer_id=viewer.id,
            conversation_id=global_ids.decode(conversation_id, Kind.CONVERSATION, field="id"),
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


async def markers_hidden(ctx: Context, membership: Membership) -> bool:
    """Whether the viewer may not see this member's delivered/read markers (an unanswered
    message request hides the recipient's from the requester)."""
    viewer = await ctx.viewer()
    conversation = await ctx.loaders.conversation_by_id.load(membership.conversation_id)
    return conversation is None or message_requests.hides_from(
        conversation, viewer_id=viewer.id, member_id=membership.user_id
    )
