"""Friends and blocks: read the viewer, parse the id, call the social service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Block, Friendship, User
from chatr.services import users
from chatr.services.pagination import Page, PageRequest
from chatr.services.social import blocks, events, search
from chatr.services.social import friends as friendships

T = TypeVar("T")


async def _change(ctx: Context, service: Callable[..., Awaitable[T]], *, user_id: str) -> T:
    viewer = await ctx.viewer()
    return await service(
        ctx.runtime,
        viewer_id=viewer.id,
        user_id=global_ids.decode(user_id, Kind.USER, field="userId"),
    )


async def _ended(ctx: Context, service: Callable[..., Awaitable[None]], *, user_id: str) -> User:
    """A change that leaves nothing between us to show (a request declined or cancelled, a
    friend removed, a block lifted): it answers the other person, as `user(id:)` shows them
    to me now."""
    viewer = await ctx.viewer()
    other_id = global_ids.decode(user_id, Kind.USER, field="userId")
    await service(ctx.runtime, viewer_id=viewer.id, user_id=other_id)
    # Where I stand with them has just changed: forget what this request may have read.
    ctx.loaders.forget_standing(viewer.id, other_id)
    return await users.profile(ctx.runtime, user_id=other_id)


async def send_request(ctx: Context, *, user_id: str) -> Friendship:
    return await _change(ctx, friendships.send_request, user_id=user_id)


async def accept_request(ctx: Context, *, user_id: str) -> Friendship:
    return await _change(ctx, friendships.accept_request, user_id=user_id)


async def decline_request(ctx: Context, *, user_id: str) -> User:
    return await _ended(ctx, friendships.decline_request, user_id=user_id)


async def cancel_request(ctx: Context, *, user_id: str) -> User:
    return await _ended(ctx, friendships.cancel_request, user_id=user_id)


async def remove_friend(ctx: Context, *, user_id: str) -> User:
    return await _ended(ctx, friendships.remove_friend, user_id=user_id)


async def block(ctx: Context, *, user_id: str) -> Block:
    return await _change(ctx, blocks.block, user_id=user_id)


async def unblock(ctx: Context, *, user_id: str) -> User:
    return await _ended(ctx, blocks.unblock, user_id=user_id)


async def _list(
    ctx: Context, service: Callable[..., Awaitable[Page[T]]], *, page: PageRequest
) -> Page[T]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await service(session, viewer_id=viewer.id, page=page)


async def friends(ctx: Context, *, page: PageRequest) -> Page[Friendship]:
    return await _list(ctx, friendships.list_friends_for, page=page)


async def incoming_requests(ctx: Context, *, page: PageRequest) -> Page[Friendship]:
    return await _list(ctx, friendships.list_incoming_requests_for, page=page)


async def outgoing_requests(ctx: Context, *, page: PageRequest) -> Page[Friendship]:
    return await _list(ctx, friendships.list_outgoing_requests_for, page=page)


async def blocked_users(ctx: Context, *, page: PageRequest) -> Page[Block]:
    return await _list(ctx, blocks.list_blocked_for, page=page)


async def friend_events(ctx: Context) -> AsyncIterator[events.FriendEvent]:
    viewer = await ctx.viewer()
    return events.events_for(ctx.runtime, viewer_id=viewer.id)


async def search_people(ctx: Context, *, query: str, first: int) -> list[search.PersonMatch]:
    viewer = await ctx.viewer()
    async with ctx.runtime.db.reader() as session:
        return await search.search_people(session, viewer_id=viewer.id, query=query, limit=first)
