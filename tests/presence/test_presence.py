"""Presence is right with several connections on several instances, and privacy-filtered."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from chatr.infra.presence_store import MemoryPresenceStore, RedisPresenceStore, Status
from chatr.settings import Settings
from tests.support.api import BLOCK_USER, UNBLOCK_USER, Account, register
from tests.support.servers import RunningApp, served_app
from tests.support.ws import Feed, subscribe

PRESENCE = "query P($id: ID!) { user(id: $id) { presence lastSeenAt } }"
WATCH = """
subscription Watch($ids: [ID!]!) { presenceChanged(userIds: $ids) { user { id } status } }
"""
SET_AWAY = "mutation Away($away: Boolean!) { setAway(away: $away) }"


async def set_away(tab: object, away: bool) -> str:
    request = gql(SET_AWAY)
    request.variable_values = {"away": away}
    return (await tab.execute(request))["setAway"]  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def connection(ws_url: str, account: Account) -> AsyncIterator[object]:
    """One open, authenticated WebSocket of `account` (a tab or a device)."""
    transport = WebsocketsTransport(
        url=ws_url,
        init_payload={"authorization": f"Bearer {account.token}"},
        subprotocols=["graphql-transport-ws"],
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session


async def presence_of(viewer: Account, user: Account) -> str | None:
    return (await viewer.call(PRESENCE, id=user.id))["user"]["presence"]


async def until_presence(viewer: Account, user: Account, expected: str) -> None:
    async with asyncio.timeout(10):
        while await presence_of(viewer, user) != expected:
            await asyncio.sleep(0.02)


async def statuses(feed: Feed, count: int) -> list[tuple[str, str | None]]:
    return [(e["user"]["id"], e["status"]) for e in await feed.take(count)]


async def test_user_with_connections_on_two_instances_stays_online_until_both_close(
    server: RunningApp,
) -> None:
    assert server.ws_url
    async with served_app(server.runtime.settings) as other:
        assert other.ws_url
        alice, bob = await register(server.http), await register(other.http)
        async with subscribe(other.ws_url, bob.token, WATCH, {"ids": [alice.id]}) as watching:
            # bob first hears where alice is now
            assert await statuses(watching, 1) == [(alice.id, "OFFLINE")]
            # when alice connects on both instances
            async with connection(server.ws_url, alice):
                await until_presence(bob, alice, "ONLINE")
                async with connection(other.ws_url, alice):
                    assert await presence_of(bob, alice) == "ONLINE"
                # then closing one leaves her online (asked through both instances)
                await asyncio.sleep(0.2)
                assert await presence_of(bob, alice) == "ONLINE"
                assert await presence_of(bob.via(server.http), alice) == "ONLINE"
                assert (await bob.call(PRESENCE, id=alice.id))["user"]["lastSeenAt"] is None
            # and closing the last one takes her offline, with a last-seen time
            await until_presence(bob, alice, "OFFLINE")
            # (the status lives in Redis and the last-seen time in the database, written just
            # after it: allow that moment)
            async with asyncio.timeout(5):
                while (await bob.call(PRESENCE, id=alice.id))["user"]["lastSeenAt"] is None:
                    await asyncio.sleep(0.05)
            # and bob heard exactly one change each way, whatever the instances did
            assert await statuses(watching, 2) == [(alice.id, "ONLINE"), (alice.id, "OFFLINE")]
            await asyncio.sleep(0.2)
            assert watching.empty()


async def test_user_is_away_only_when_every_connection_is_away(server: RunningApp) -> None:
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    async with connection(server.ws_url, alice) as tab1, connection(server.ws_url, alice) as tab2:
        await until_presence(bob, alice, "ONLINE")
        # one tab hidden: still online
        assert await set_away(tab1, True) == "ONLINE"
        # both hidden: away
        assert await set_away(tab2, True) == "AWAY"
        assert await presence_of(bob, alice) == "AWAY"
        # one back: online again
        assert await set_away(tab1, False) == "ONLINE"
    await until_presence(bob, alice, "OFFLINE")


async def test_away_over_http_is_refused_because_it_belongs_to_a_connection(
    app: RunningApp,
) -> None:
    alice = await register(app.http)
    with pytest.raises(Exception) as failure:
        await alice.call(SET_AWAY, away=True)
    assert failure.value.codes == ["BAD_USER_INPUT"]  # type: ignore[attr-defined]


async def test_blocked_user_cannot_see_or_watch_presence_until_unblocked(
    server: RunningApp,
) -> None:
    assert server.ws_url
    alice, bob, dave = [await register(server.http) for _ in range(3)]
    await alice.call(BLOCK_USER, u=dave.id)
    async with connection(server.ws_url, alice):
        await until_presence(bob, alice, "ONLINE")
        assert await presence_of(dave, alice) is None
        # watching alice and bob, dave hears only of bob
        async with subscribe(
            server.ws_url, dave.token, WATCH, {"ids": [alice.id, bob.id]}
        ) as watching:
            assert await statuses(watching, 1) == [(bob.id, "OFFLINE")]
            await asyncio.sleep(0.2)
            assert watching.empty()
        await alice.call(UNBLOCK_USER, u=dave.id)
        assert await presence_of(dave, alice) == "ONLINE"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[object]:
    if request.param == "memory":
        yield MemoryPresenceStore()
        return
    redis_store = RedisPresenceStore("redis://127.0.0.1:6379/0", prefix=settings.channel_prefix)
    try:
        yield redis_store
    finally:
        await redis_store.close()


async def test_a_lapsed_connection_is_swept_offline_exactly_once(store) -> None:
    # given alice's only connection, on an instance that died without closing it
    transition = await store.set_connection(7, "dead-instance", Status.ONLINE, time.time() + 0.2)
    assert (transition.before, transition.after) == (Status.OFFLINE, Status.ONLINE)
    assert await store.statuses([7]) == {7: Status.ONLINE}
    assert await store.lapsed_users(time.time()) == []
    # when its expiry passes
    await asyncio.sleep(0.3)
    assert await store.statuses([7]) == {7: Status.OFFLINE}
    assert await store.lapsed_users(time.time()) == [7]
    # then two instances sweeping at once: exactly one sees her go offline
    first, second = await asyncio.gather(store.sweep(7), store.sweep(7))
    assert sorted([first.changed, second.changed]) == [False, True]
    assert await store.lapsed_users(time.time()) == []
