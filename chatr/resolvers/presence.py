"""Presence: read the viewer (and their socket), call the presence service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from chatr.context import Context
from chatr.infra.presence_store import Status
from chatr.services import presence, validation
from chatr.services.presence import PresenceUpdate


async def set_away(ctx: Context, *, away: bool) -> Status:
    await ctx.viewer()
    return await presence.set_away(ctx.runtime, ctx.presence, away=away)


async def watch(ctx: Context, *, user_ids: Sequence[str]) -> AsyncIterator[PresenceUpdate]:
    viewer = await ctx.viewer()
    ids = [validation.parse_id(user_id, field="userIds") for user_id in user_ids]
    return presence.watch(ctx.runtime, viewer_id=viewer.id, user_ids=ids)
