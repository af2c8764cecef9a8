"""Presence: read the viewer (and their socket), call the presence service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.infra.presence_store import Status
from chatr.services import presence
from chatr.services.presence import PresenceUpdate


async def set_away(ctx: Context, *, away: bool) -> Status:
    await ctx.viewer()
    return await presence.set_away(ctx.runtime, ctx.presence, away=away)


async def watch(ctx: Context, *, user_ids: Sequence[str]) -> AsyncIterator[PresenceUpdate]:
    viewer = await ctx.viewer()
    ids = global_ids.decode_all(user_ids, Kind.USER, field="userIds")
    return presence.watch(ctx.runtime, viewer_id=viewer.id, user_ids=ids)
