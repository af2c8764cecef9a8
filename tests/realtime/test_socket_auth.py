"""WebSocket authentication: connect (4401 when refused), expiry (4401), revocation (4403),
forbidden streams."""

from __future__ import annotations

import asyncio
import json

import pytest
from gql.transport.exceptions import TransportQueryError

from chatr.settings import Settings
from tests.support.api import LOGOUT, REFRESH, GraphQLError, data, register
from tests.support.servers import RunningApp, served_app
from tests.support.sessions import outlive_refresh_grace
from tests.support.ws import (
    CONVERSATION_EVENTS,
    LEGACY_WS,
    PROTOCOLS,
    ack,
    close_code,
    connect,
    subscribe,
)


async def test_socket_closes_with_4401_when_the_access_token_expires(
    settings: Settings, database: str
) -> None:
    short_lived = settings.with_overrides(access_token_ttl_seconds=2)
    async with served_app(short_lived) as server:
        assert server.ws_url
        alice = await register(server.http)
        socket = await connect(server.ws_url, alice.token)
        await ack(socket)
        assert await close_code(socket) == 4401


@pytest.mark.smoke
async def test_socket_closes_with_4403_when_its_session_logs_out(server: RunningApp) -> None:
    alice = await register(server.http)
    assert server.ws_url
    socket = await connect(server.ws_url, alice.token)
    await ack(socket)
    await alice.call(LOGOUT)
    assert await close_code(socket) == 4403


async def test_socket_closes_when_a_reused_refresh_token_revokes_the_session(
    server: RunningApp,
) -> None:
    alice = await register(server.http)
    assert server.ws_url
    socket = await connect(server.ws_url, alice.token)
    await ack(socket)
    await data(server.http, REFRESH, {"token": alice.refresh_token})
    await outlive_refresh_grace(server.runtime)  # a replay, not a second tab racing the first
    with pytest.raises(GraphQLError):
        await data(server.http, REFRESH, {"token": alice.refresh_token})
    assert await close_code(socket) == 4403


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_connecting_with_a_forged_token_is_refused_with_4401(
    server: RunningApp, protocol: str
) -> None:
    # 4401 (the token is unusable: refresh or log in), not 4403, which means "your session
    # was revoked"; on both protocols (graphql-ws used to close with 1011).
    assert server.ws_url
    socket = await connect(server.ws_url, "not.a.jwt", protocol)
    assert await close_code(socket) == 4401


async def test_connecting_with_a_token_that_cannot_be_encoded_is_refused_alike(
    server: RunningApp,
) -> None:
    # A lone surrogate (JSON carries one as "\ud800") has no UTF-8 form: it used to escape
    # as an exception and drop the socket (1006) instead of refusing it.
    assert server.ws_url
    socket = await connect(server.ws_url, "not.a\ud800.jwt")
    assert await close_code(socket) == 4401


async def test_graphql_ws_says_why_it_refuses_a_socket(server: RunningApp) -> None:
    assert server.ws_url
    socket = await connect(server.ws_url, "not.a.jwt", LEGACY_WS)
    frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert frame["type"] == "connection_error"
    assert frame["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await close_code(socket) == 4401


async def test_subscribing_to_someone_elses_conversation_is_not_found(server: RunningApp) -> None:
    alice, bob, mallory = [await register(server.http) for _ in range(3)]
    conversation_id = (await alice.send("secret", to=bob))["conversationId"]
    assert server.ws_url
    async with subscribe(
        server.ws_url, mallory.token, CONVERSATION_EVENTS, {"id": conversation_id, "afterSeq": 0}
    ) as feed:
        with pytest.raises(TransportQueryError) as failure:
            await feed.next()
    assert failure.value.errors is not None
    assert [e["extensions"]["code"] for e in failure.value.errors] == ["NOT_FOUND"]
