"""No message is lost when Redis dies mid-stream: subscribers resync from the database."""

from __future__ import annotations

import asyncio

from chatr.settings import Settings
from tests.realtime.delivery_report import receive_messages
from tests.support.api import register
from tests.support.redis_server import RedisServer
from tests.support.servers import served_app
from tests.support.ws import CONVERSATION_EVENTS, subscribe

TOTAL = 500
KILL_AT = 150
RESTART_AT = 300


async def test_subscriber_gets_all_500_messages_when_redis_is_killed_and_restarted(
    settings: Settings, database: str
) -> None:
    # given two instances on a private Redis, a subscriber on A, a sender on B
    with RedisServer() as redis:
        shared = settings.with_overrides(broker_url=redis.url)
        async with served_app(shared) as a, served_app(shared) as b:
            assert a.ws_url
            alice = await register(a.http)
            bob = (await register(a.http)).via(b.http)
            conversation_id = (await bob.send("m1", to=alice.via(b.http)))["conversationId"]
            async with subscribe(
                a.ws_url, alice.token, CONVERSATION_EVENTS, {"id": conversation_id, "afterSeq": 0}
            ) as feed:
                assert (await feed.next_of("MessagePostedEvent"))["message"]["seq"] == 1
                # when Redis is SIGKILLed mid-stream and comes back later
                for i in range(2, TOTAL + 1):
                    if i == KILL_AT:
                        redis.kill()
                    if i == RESTART_AT:
                        await asyncio.to_thread(redis.restart)
                    await bob.send(f"m{i}", conversation_id=conversation_id)
                # then the subscriber ends with every seq, in order, none twice
                seqs = await receive_messages(
                    feed, [1], TOTAL, runtime=a.runtime, conversation_id=conversation_id
                )
                assert seqs == list(range(1, TOTAL + 1))
                await asyncio.sleep(0.3)
                assert feed.empty()
            # and both instances report ready again
            for instance in (a, b):
                assert (await instance.http.get("/readyz")).json()["broker"] is True
