"""Groups: read the viewer, parse the ids, call the group service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Conversation, Membership
from chatr.services import groups
from chatr.services.groups import GroupDetails

T = TypeVar("T")


def _ids(values: Sequence[str], *, field: str) -> list[int]:
    return global_ids.decode_all(values, Kind.USER, field=field)


async def create(
    ctx: Context,
    *,
    name: str,
    description: str | None,
    avatar_url: str | None,
    cover_url: str | None,
    invitee_ids: Sequence[str],
) -> Conversation:
    viewer = await ctx.viewer()
    return await groups.create(
        ctx.runtime,
        creator_id=viewer.id,
        name=name,
        description=description,
        avatar_url=avatar_url,
        cover_url=cover_url,
        invitee_ids=_ids(invitee_ids, field="inviteeIds"),
    )


async def update(ctx: Context, *, conversation_id: str, details: GroupDetails) -> Conversation:
    viewer = await ctx.viewer()
    return await groups.update(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
        details=details,
    )


async def in_group(
    ctx: Context, service: Callable[..., Awaitable[T]], *, conversation_id: str
) -> T:
    """An action on the group as a whole (accept, decline, leave, delete)."""
    viewer = await ctx.viewer()
    return await service(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
    )


async def on_member(
    ctx: Context, service: Callable[..., Awaitable[T]], *, conversation_id: str, user_id: str
) -> T:
    """An action on one member (remove, promote, demote, hand ownership to)."""
    viewer = await ctx.viewer()
    return await service(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
        user_id=global_ids.decode(user_id, Kind.USER, field="userId"),
    )


async def invite(ctx: Context, *, conversation_id: str, user_ids: Sequence[str]) -> Conversation:
    viewer = await ctx.viewer()
    return await groups.invite(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
        user_ids=_ids(user_ids, field="userIds"),
    )


async def my_invites(ctx: Context) -> list[Membership]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await groups.list_invites_for(session, viewer_id=viewer.id)
