"""With rate limits on, a Redis outage costs no message and no sign-in.

Limits are counted per instance while Redis is gone (see `chatr.infra.rate_limits`); the
database keeps sends working and subscribers resync from it once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from chatr.settings import Settings
from tests.realtime.delivery_report import receive_messages
from tests.support.api import LOGIN, LOGOUT, PASSWORD, SEND, Account, data, graphql, register
from tests.support.redis_server import RedisServer
from tests.support.servers import RunningApp, served_app
from tests.support.ws import CONVERSATION_EVENTS, subscribe

OUTAGE_SECONDS = 5.0
#: Sends during the outage however slow the machine (the outage lasts until both are done).
DURING = 11
BEFORE = 40
AFTER = 40
#: Codes a client is expected to retry (after `retryAfter` seconds, when given).
RETRYABLE = {"SERVICE_UNAVAILABLE", "RATE_LIMITED"}
PRESENCE = "query U($id: ID!) { user(id: $id) { id presence } }"


async def _send(account: Account, conversation_id: str, body: str) -> int:
    """Send once, retrying (same clientMessageId) only on a coded, retryable error."""
    message_input = {"conversationId": conversation_id, "body": body, "clientMessageId": body}
    for _attempt in range(20):
        reply = await graphql(account.http, SEND, {"input": message_input}, token=account.token)
        if not reply.get("errors"):
            return int(reply["data"]["sendMessage"]["seq"])
        codes = {e["extensions"]["code"] for e in reply["errors"]}
        assert codes <= RETRYABLE, reply["errors"]
        retry_after = max(e["extensions"].get("retryAfter", 1) for e in reply["errors"])
        await asyncio.sleep(min(retry_after, 2))
    raise AssertionError(f"{body} was never accepted")


async def _readiness(instance: RunningApp) -> dict[str, Any]:
    return (await instance.http.get("/readyz")).json()


async def _until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def test_sends_logins_and_sign_ups_go_on_with_limits_on_while_redis_is_down(
    settings: Settings, database: str
) -> None:
    # given two instances with rate limits on (the send guard on, set high enough not to
    # trip), sharing a private Redis; a subscriber on A, a sender on B
    with RedisServer() as redis:
        shared = settings.with_overrides(
            broker_url=redis.url, rate_limits=True, send_message_limit="10000 per minute"
        )
        async with served_app(shared) as a, served_app(shared) as b:
            assert a.ws_url and b.ws_url
            alice = await register(a.http)
            bob = (await register(a.http)).via(b.http)
            conversation_id = (await bob.send("m0", to=alice.via(b.http)))["conversationId"]
            async with contextlib.AsyncExitStack() as stack:
                feed = await stack.enter_async_context(
                    subscribe(
                        a.ws_url,
                        alice.token,
                        CONVERSATION_EVENTS,
                        {"id": conversation_id, "afterSeq": 0},
                    )
                )
                assert (await feed.next_of("MessagePostedEvent"))["message"]["seq"] == 1
                sent = [1]
                for i in range(BEFORE):
                    sent.append(await _send(bob, conversation_id, f"before-{i}"))
                # when Redis is SIGKILLed mid-stream and stays down for a while
                redis.kill()
                outage_ends = time.monotonic() + OUTAGE_SECONDS
                i = 0
                while time.monotonic() < outage_ends or i < DURING:
                    sent.append(await _send(bob, conversation_id, f"during-{i}"))
                    i += 1
                    if i == 5:
                        # then signing in and signing up keep working (limits counted here)
                        login = await data(
                            a.http,
                            LOGIN,
                            {"input": {"login": alice.username, "password": PASSWORD}},
                        )
                        assert login["login"]["user"]["id"] == alice.id
                        carol = await register(b.http)
                        # and signing out (a revocation broadcast) still answers
                        assert (await graphql(b.http, LOGOUT, token=carol.token))["data"] == {
                            "logout": True
                        }
                        carol = await register(b.http)
                        # and a socket opened now (presence on connect) is accepted
                        late = await stack.enter_async_context(
                            subscribe(
                                b.ws_url,
                                alice.token,
                                CONVERSATION_EVENTS,
                                {"id": conversation_id, "afterSeq": 0},
                            )
                        )
                        # presence lives in Redis too: it answers, or says to retry
                        seen = await graphql(b.http, PRESENCE, {"id": alice.id}, token=carol.token)
                        for error in seen.get("errors", []):
                            assert error["extensions"]["code"] in RETRYABLE, error
                        # and the fallback shows, in the metric and on /readyz
                        for instance in (a, b):
                            assert instance.runtime.limits.metrics()["counting_locally"] == 1
                        degraded = (await _readiness(b))["taskStatus"]["rate-limits"]["degraded"]
                        assert "Redis" in degraded
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(redis.restart)
                for i in range(AFTER):
                    sent.append(await _send(bob, conversation_id, f"after-{i}"))
                # then every send was accepted once, in order
                assert sent == list(range(1, len(sent) + 1))
                # and the subscriber ends with every message exactly once, in order
                seqs = await receive_messages(
                    feed, [1], len(sent), runtime=a.runtime, conversation_id=conversation_id
                )
                assert seqs == sent
                # as does the one that subscribed during the outage (from the start)
                late_seqs = await receive_messages(
                    late, [], len(sent), runtime=b.runtime, conversation_id=conversation_id
                )
                assert late_seqs == sent
                await asyncio.sleep(0.3)
                assert feed.empty() and late.empty()
            # and the fallback clears once Redis is back, on both instances
            for instance in (a, b):

                async def shared_again(instance: RunningApp = instance) -> bool:
                    ready = await _readiness(instance)
                    return (
                        instance.runtime.limits.metrics()["counting_locally"] == 0
                        and ready["taskStatus"]["rate-limits"]["degraded"] is None
                        and ready["broker"] is True
                    )

                await _until(shared_again)
                assert instance.runtime.limits.metrics()["outages"] == 1
            # and shared counting works again: a login through each instance counts in Redis
            for instance in (a, b):
                await data(
                    instance.http,
                    LOGIN,
                    {"input": {"login": alice.username, "password": PASSWORD}},
                )
            assert all(i.runtime.limits.metrics()["counting_locally"] == 0 for i in (a, b))
