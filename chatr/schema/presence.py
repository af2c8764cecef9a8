"""Presence: marking a connection away, and watching people come and go."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from chatr.resolvers import presence as resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.profiles import UserType
from chatr.schema.scalars import PresenceStatusEnum


@strawberry.type(
    name="PresenceEvent",
    description="Where someone is now. Fields they do not share with me are null.",
)
class PresenceEventType:
    user: UserType
    status: PresenceStatusEnum | None
    last_seen_at: datetime | None


@strawberry.type
class PresenceMutation:
    @strawberry.mutation(
        description="Mark this connection away (tab hidden, idle) or back. Send it over the "
        "WebSocket whose presence it is; returns my combined status."
    )
    async def set_away(self, info: ChatrInfo, away: bool) -> PresenceStatusEnum:
        return await resolvers.set_away(info.context, away=away)


@strawberry.type
class PresenceSubscription:
    @strawberry.subscription(
        description="Presence of up to 100 people: first where each is now, then every change. "
        "People who do not share their online status or last seen with me are left out."
    )
    async def presence_changed(
        self, info: ChatrInfo, user_ids: list[strawberry.ID]
    ) -> AsyncGenerator[PresenceEventType, None]:
        stream = await resolvers.watch(info.context, user_ids=user_ids)
        async for update in stream:
            yield update  # type: ignore[misc]
