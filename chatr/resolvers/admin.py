"""Administration resolvers."""

from __future__ import annotations

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import User
from chatr.services import admin
from chatr.services.pagination import Page, PageRequest


async def users(ctx: Context, *, page: PageRequest, search: str | None) -> Page[User]:
    viewer = await ctx.viewer()
    return await admin.list_users(ctx.runtime, viewer_id=viewer.id, page=page, search=search)


def _user_id(user_id: str) -> int:
    return global_ids.decode(user_id, (Kind.USER_ACCOUNT, Kind.USER), field="userId")


async def suspend(ctx: Context, *, user_id: str) -> User:
    viewer = await ctx.viewer()
    return await admin.suspend(ctx.runtime, viewer_id=viewer.id, user_id=_user_id(user_id))


async def unsuspend(ctx: Context, *, user_id: str) -> User:
    viewer = await ctx.viewer()
    return await admin.unsuspend(ctx.runtime, viewer_id=viewer.id, user_id=_user_id(user_id))


async def delete(ctx: Context, *, user_id: str) -> int:
    """The deleted user's key."""
    viewer = await ctx.viewer()
    pk = _user_id(user_id)
    await admin.delete_user(ctx.runtime, viewer_id=viewer.id, user_id=pk)
    return pk
