"""Presence: online / away / offline across every tab, device and instance, privacy-filtered.

Each authenticated WebSocket is one connection in the shared presence store (see
`chatr.infra.presence_store`), kept alive by a heartbeat. A user is ONLINE while any connection
says so, AWAY when all of them are away, OFFLINE when the last one anywhere closes or lapses.
Only a change of that combined status is announced, by whichever instance caused it; going
offline also records `last_seen_at`, so "last seen" survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update

from chatr.errors import BadUserInput
from chatr.infra.presence_store import Status, Transition
from chatr.models import User
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Resync
from chatr.runtime import Runtime
from chatr.services import privacy
from chatr.services.privacy import Detail

log = logging.getLogger("chatr.presence")

HEARTBEAT_SECONDS = 20.0
#: A connection not refreshed for this long is gone (its instance died without saying so).
CONNECTION_TTL_SECONDS = 60.0
SWEEP_SECONDS = 10.0
MAX_WATCHED = 100


@dataclass
class ConnectionPresence:
    """One socket's part in its user's presence."""

    user_id: int
    connection_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: Status = Status.ONLINE


@dataclass(frozen=True)
class PresenceUpdate:
    """What a watcher is told about one user; `status` or `last_seen_at` is None when hidden."""

    user: User
    status: Status | None
    last_seen_at: datetime | None


async def _record(rt: Runtime, transition: Transition) -> None:
    if not transition.changed:
        return
    if transition.after is Status.OFFLINE:
        async with rt.db.session() as session, session.begin():
            await session.execute(
                update(User).where(User.id == transition.user_id).values(last_seen_at=utcnow())
            )
    await rt.announce(
        channels.presence(transition.user_id),
        envelopes.PresenceChanged(transition.user_id, transition.after.value, time.time()),
    )


async def _refresh(rt: Runtime, connection: ConnectionPresence) -> None:
    transition = await rt.presence.set_connection(
        connection.user_id,
        connection.connection_id,
        connection.state,
        time.time() + CONNECTION_TTL_SECONDS,
    )
    await _record(rt, transition)


async def track_connection(rt: Runtime, connection: ConnectionPresence) -> None:
    """Runs for as long as the socket is open: online at once, heartbeats, offline at the end."""
    try:
        while True:
            try:
                await _refresh(rt, connection)
            except Exception:  # a store outage must not close the socket; the next beat retries
                log.warning("presence heartbeat failed", exc_info=True)
            await asyncio.sleep(HEARTBEAT_SECONDS)
    finally:
        with contextlib.suppress(Exception):
            transition = await rt.presence.drop_connection(
                connection.user_id, connection.connection_id
            )
            await _record(rt, transition)


async def set_away(rt: Runtime, connection: ConnectionPresence | None, *, away: bool) -> Status:
    """Mark this socket away (tab hidden, idle) or back; returns the user's combined status."""
    if connection is None:
        raise BadUserInput(
            "Presence belongs to a live connection: send setAway over your WebSocket.",
            field="away",
        )
    connection.state = Status.AWAY if away else Status.ONLINE
    await _refresh(rt, connection)
    return (await rt.presence.statuses([connection.user_id]))[connection.user_id]


async def sweep_forever(rt: Runtime) -> None:
    """Announce users whose last connection lapsed (their instance died): exactly one instance
    sees each transition, because the store records it atomically."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            for user_id in await rt.presence.lapsed_users(time.time()):
                await _record(rt, await rt.presence.sweep(user_id))
        except Exception:
            log.warning("presence sweep failed", exc_info=True)


async def statuses(rt: Runtime, user_ids: Sequence[int]) -> dict[int, Status]:
    return await rt.presence.statuses(list(user_ids))


async def _visible_updates(
    rt: Runtime, *, viewer_id: int, user_ids: Sequence[int]
) -> list[PresenceUpdate]:
    """The current presence of each user the viewer may see it of (others are left out)."""
    async with rt.db.reader() as session:
        users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(user_ids)))}
        standings = await privacy.standings(session, viewer_id=viewer_id, user_ids=list(users))
    current = await rt.presence.statuses(list(users))
    updates = []
    for user_id in user_ids:
        user = users.get(user_id)
        if user is None:
            continue
        standing = standings[user_id]
        sees_status = privacy.may_see(user, Detail.ONLINE_STATUS, standing)
        sees_last_seen = privacy.may_see(user, Detail.LAST_SEEN, standing)
        if not (sees_status or sees_last_seen):
            continue
        updates.append(
            PresenceUpdate(
                user,
                current[user_id] if sees_status else None,
                user.last_seen_at if sees_last_seen else None,
            )
        )
    return updates


async def watch(
    rt: Runtime, *, viewer_id: int, user_ids: Sequence[int]
) -> AsyncIterator[PresenceUpdate]:
    """Each watched user's presence now, then every change, as far as the viewer may see it.

    Visibility is re-checked on every change, so a block or a narrowed setting takes effect
    at once; nothing is said about people the viewer may not see.
    """
    wanted = list(dict.fromkeys(user_ids))
    if not wanted or len(wanted) > MAX_WATCHED:
        raise BadUserInput(f"Watch 1-{MAX_WATCHED} users at a time.", field="userIds")
    async with rt.broker.subscriber() as sub:
        for user_id in wanted:
            await sub.add(channels.presence(user_id))
        for snapshot in await _visible_updates(rt, viewer_id=viewer_id, user_ids=wanted):
            yield snapshot
        async for item in sub:
            if isinstance(item, Resync):
                changed = wanted  # changes may have been missed: say where everyone is now
            else:
                envelope = envelopes.decode(item.data)
                if not isinstance(envelope, envelopes.PresenceChanged):
                    continue
                changed = [envelope.user_id]
            for update_ in await _visible_updates(rt, viewer_id=viewer_id, user_ids=changed):
                yield update_
