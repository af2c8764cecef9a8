"""A PostgreSQL outage looks like an outage: retryable errors, fast probes, nothing lost.

The app reaches the test's database through a TCP proxy the test breaks (the shared server
on 5432 is never touched): "paused" is an unreachable server (connections cut and refused),
"frozen" a hung one (connections open, no byte answered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from gql.transport.exceptions import TransportQueryError

from chatr.settings import Settings
from tests.support.api import SEND, Account, graphql, register
from tests.support.ids import pk
from tests.support.servers import in_process_app, served_app
from tests.support.tcp_proxy import TcpProxy
from tests.support.ws import CONVERSATION_EVENTS, Feed, subscribe

OUTAGE_SECONDS = 5.0
#: What the issue asks of every request during an outage.
ANSWER_WITHIN = 5.0
#: And of /readyz ("answers within ~1 s").
READYZ_WITHIN = 1.5


@asynccontextmanager
async def through_proxy(settings: Settings) -> AsyncIterator[tuple[TcpProxy, Settings]]:
    """A proxy to the test's database, and settings whose database URL goes through it."""
    async with TcpProxy(upstream_port=5432) as proxy:
        yield proxy, settings.with_overrides(database_url=proxy.rewrite(settings.database_url))


async def _try_send(account: Account, to: Account, body: str) -> dict[str, Any]:
    """One send, answered within ANSWER_WITHIN seconds (else the test fails)."""
    variables = {"input": {"body": body, "clientMessageId": body, "recipientId": to.id}}
    async with asyncio.timeout(ANSWER_WITHIN):
        return await graphql(account.http, SEND, variables, token=account.token)


async def _readyz(http: httpx.AsyncClient) -> httpx.Response:
    async with asyncio.timeout(READYZ_WITHIN):
        return await http.get("/readyz")


async def _until_ready(http: httpx.AsyncClient, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while (await http.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.2)


def _assert_unavailable(body: dict[str, Any]) -> None:
    assert body["data"] is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", body
    assert isinstance(error["extensions"]["retryAfter"], int), body
    assert error["extensions"]["retryAfter"] > 0
    assert "Internal" not in error["message"]


async def _stored_messages(database_url: str, conversation_id: str) -> list[tuple[int, str]]:
    """(seq, body) of every stored message, read past the proxy."""
    url = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT seq, body FROM messages WHERE conversation_id = $1 ORDER BY seq",
            pk(conversation_id),
        )
    finally:
        await connection.close()
    return [(row["seq"], row["body"]) for row in rows]


async def _drain(feed: Feed, received: list[tuple[int, str]], *, until: int) -> str | None:
    """Read messages into `received` until seq `until`; the stream's error code if it ends."""
    while not received or received[-1][0] < until:
        try:
            event = await feed.next_of("MessagePostedEvent", timeout=20)
        except TransportQueryError as ended:
            assert ended.errors is not None
            return str(ended.errors[0]["extensions"]["code"])
        received.append((event["message"]["seq"], event["message"]["body"]))
    return None


async def test_an_unreachable_database_answers_service_unavailable_and_loses_nothing(
    settings: Settings, database: str
) -> None:
    async with through_proxy(settings) as (proxy, proxied), served_app(proxied) as server:
        assert server.ws_url
        alice, bob = await register(server.http), await register(server.http)
        first = await alice.send("before-1", to=bob)
        conversation_id = first["conversationId"]
        sent = [(1, "before-1")]
        received: list[tuple[int, str]] = []
        async with subscribe(
            server.ws_url, bob.token, CONVERSATION_EVENTS, {"id": conversation_id, "afterSeq": 0}
        ) as feed:
            for body in ("before-2", "before-3"):
                sent.append(
                    ((await _try_send(alice, bob, body))["data"]["sendMessage"]["seq"], body)
                )
            assert await _drain(feed, received, until=3) is None

            # when PostgreSQL is unreachable for 5 s
            proxy.pause()
            outage_ends = time.monotonic() + OUTAGE_SECONDS
            attempts = 0
            while time.monotonic() < outage_ends:
                attempts += 1
                # then every send answers a retryable code within 5 s
                _assert_unavailable(await _try_send(alice, bob, f"during-{attempts}"))
                # and /readyz says so within a second
                assert (await _readyz(server.http)).status_code == 503
                await asyncio.sleep(0.25)
            await proxy.resume()

            # then the instance recovers: ready again, and sends work again
            await _until_ready(server.http)
            for body in ("after-1", "after-2"):
                answer = await _try_send(alice, bob, body)
                sent.append((answer["data"]["sendMessage"]["seq"], body))
            # and the subscriber, resuming by cursor if its stream ended, gets each sent
            # message exactly once
            ended = await _drain(feed, received, until=sent[-1][0])
        if ended is not None:
            assert ended == "SERVICE_UNAVAILABLE", ended
            async with subscribe(
                server.ws_url,
                bob.token,
                CONVERSATION_EVENTS,
                {"id": conversation_id, "afterSeq": received[-1][0] if received else 0},
            ) as resumed:
                assert await _drain(resumed, received, until=sent[-1][0]) is None
                await asyncio.sleep(0.3)
                assert resumed.empty()
        assert attempts >= 2
        assert received == sent
    # and nothing was half-written: exactly the acknowledged messages, seq 1..N without gaps
    assert await _stored_messages(settings.database_url, conversation_id) == sent
    assert [seq for seq, _ in sent] == list(range(1, len(sent) + 1))


async def test_a_hung_database_makes_readyz_say_503_at_once_and_sends_answer_in_time(
    settings: Settings, database: str
) -> None:
    async with through_proxy(settings) as (proxy, proxied), in_process_app(proxied) as app:
        alice, bob = await register(app.http), await register(app.http)
        await alice.send("before", to=bob)
        await _until_ready(app.http)
        # when PostgreSQL hangs (connections open, nothing answered)
        proxy.freeze()
        # then /readyz answers 503 within a second, again and again
        for _ in range(3):
            response = await _readyz(app.http)
            assert response.status_code == 503
            assert response.json()["database"] is False
        # and a send answers a retryable code within 5 s
        _assert_unavailable(await _try_send(alice, bob, "during"))
        # and once it answers again, so does the instance
        await proxy.resume()
        await _until_ready(app.http)
        answer = await _try_send(alice, bob, "after")
        assert answer["data"]["sendMessage"]["body"] == "after", answer


async def test_readyz_answers_in_time_while_the_database_is_unreachable(
    settings: Settings, database: str
) -> None:
    async with through_proxy(settings) as (proxy, proxied), in_process_app(proxied) as app:
        await _until_ready(app.http)
        proxy.pause()
        response = await _readyz(app.http)
        assert response.status_code == 503 and response.json()["database"] is False
        await proxy.resume()
        await _until_ready(app.http)
