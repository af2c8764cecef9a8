"""Profiles and privacy: read the viewer, call the profile, privacy and user services."""

from __future__ import annotations

from collections.abc import Mapping

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import User
from chatr.services import privacy, privacy_settings, profiles, users
from chatr.services.privacy import Audience, Detail


async def user(ctx: Context, *, user_id: str) -> User:
    await ctx.viewer()
    return await users.profile(
        ctx.runtime, user_id=global_ids.decode(user_id, Kind.USER, field="id")
    )


async def user_by_username(ctx: Context, *, username: str) -> User:
    await ctx.viewer()
    return await users.profile(ctx.runtime, username=username)


async def update_profile(ctx: Context, *, changes: profiles.ProfileChanges) -> User:
    viewer = await ctx.viewer()
    return await profiles.update(ctx.runtime, viewer_id=viewer.id, changes=changes)


async def update_privacy(ctx: Context, *, changes: Mapping[Detail, Audience]) -> User:
    viewer = await ctx.viewer()
    return await privacy_settings.update_settings(ctx.runtime, viewer_id=viewer.id, changes=changes)


async def may_see(ctx: Context, subject: User, detail: Detail) -> bool:
    """Whether the viewer may see `detail` of `subject` (batched per request)."""
    return privacy.may_see(subject, detail, await ctx.standing_with(subject.id))


async def is_blocked_either_way(ctx: Context, subject: User) -> bool:
    return await ctx.standing_with(subject.id) is privacy.Standing.BLOCKED
