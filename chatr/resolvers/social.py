"""Friends and blocks: read the viewer, parse the id, call the social service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from chatr.context import Context
from chatr.models import Block, Friendship
from chatr.services import social, validation
from chatr.services.pagination import Page, PageRequest

T = TypeVar("T")


async def _change(ctx: Context, service: Callable[..., Awaitable[T]], *, user_id: str) -> T:
    viewer = await ctx.viewer()
    return await service(
        ctx.runtime, viewer_id=viewer.id, user_id=validation.parse_id(user_id, field="userId")
    )


async def send_request(ctx: Context, *, user_id: str) -> Friendship:
    return await _change(ctx, social.send_request, user_id=user_id)


async def accept_request(ctx: Context, *, user_id: str) -> Friendship:
    return await _change(ctx, social.accept_request, user_id=user_id)


async def decline_request(ctx: Context, *, user_id: str) -> bool:
    await _change(ctx, social.decline_request, user_id=user_id)
    return True


async def cancel_request(ctx: Context, *, user_id: str) -> bool:
    await _change(ctx, social.cancel_request, user_id=user_id)
    return True


async def remove_friend(ctx: Context, *, user_id: str) -> bool:
    await _change(ctx, social.remove_friend, user_id=user_id)
    return True


async def block(ctx: Context, *, user_id: str) -> Block:
    return await _change(ctx, social.block, user_id=user_id)


async def unblock(ctx: Context, *, user_id: str) -> bool:
    await _change(ctx, social.unblock, user_id=user_id)
    return True


async def _list(
    ctx: Context, service: Callable[..., Awaitable[Page[T]]], *, page: PageRequest
) -> Page[T]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await service(session, viewer_id=viewer.id, page=page)


async def friends(ctx: Context, *, page: PageRequest) -> Page[Friendship]:
    return await _list(ctx, social.list_friends_for, page=page)


async def incoming_requests(ctx: Context, *, page: PageRequest) -> Page[Friendship]:
    return await _list(ctx, social.list_incoming_requests_for, page=page)


async def outgoing_requests(ctx: Context, *, page: PageRequest) -> Page[Friendship]:
    return await _list(ctx, social.list_outgoing_requests_for, page=page)


async def blocked_users(ctx: Context, *, page: PageRequest) -> Page[Block]:
    return await _list(ctx, social.list_blocked_for, page=page)


async def friend_events(ctx: Context) -> AsyncIterator[social.FriendEvent]:
    viewer = await ctx.viewer()
    return social.events_for(ctx.runtime, viewer_id=viewer.id)


async def search_people(ctx: Context, *, query: str, first: int) -> list[social.PersonMatch]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await social.search_people(session, viewer_id=viewer.id, query=query, limit=first)
