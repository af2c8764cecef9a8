"""Subscriptions end to end with the real gql client over both WebSocket protocols."""

from __future__ import annotations

import asyncio

import pytest

from tests.pubsub.test_announcer import FlakyPublish
from tests.support.api import MARK_READ, SET_TYPING, register
from tests.support.servers import RunningApp, served_app
from tests.support.ws import CONVERSATION_EVENTS, MY_EVENTS, PROTOCOLS, subscribe


@pytest.mark.smoke
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_two_users_exchange_messages_typing_and_read_receipts(
    server: RunningApp, protocol: str
) -> None:
    # given alice and bob, bob listening to everything that concerns him
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    async with subscribe(
        server.ws_url, bob.token, MY_EVENTS, {"after": "0"}, protocol=protocol
    ) as bobs:
        # when alice writes first (the conversation is created by this message)
        first = await alice.send("hi bob", to=bob)
        conversation_id = first["conversationId"]
        # then bob receives it, although the conversation did not exist when he subscribed
        posted = await bobs.next_of("MessagePostedEvent")
        assert posted["message"] == {"seq": 1, "body": "hi bob", "sender": {"id": alice.id}}
        assert posted["conversationId"] == conversation_id

        async with subscribe(
            server.ws_url,
            alice.token,
            CONVERSATION_EVENTS,
            {"id": conversation_id, "afterSeq": 1},
            protocol=protocol,
        ) as alices:
            # when bob replies, then marks alice's message read and starts typing
            await bob.send("hello alice", conversation_id=conversation_id)
            reply = await alices.next_of("MessagePostedEvent")
            assert reply["message"]["body"] == "hello alice"
            await alice.send("did you read this?", conversation_id=conversation_id)
            await bob.call(MARK_READ, c=conversation_id, s=3)
            receipt = await alices.next_of("ReceiptUpdatedEvent")
            assert receipt["user"]["id"] == bob.id and receipt["lastReadSeq"] == 3
            # (alice's subscription is now provably live, so an ephemeral signal reaches it)
            await bob.call(SET_TYPING, c=conversation_id, t=True)
            typing = await alices.next_of("TypingEvent")
            assert typing["user"]["id"] == bob.id and typing["typing"] is True
            await bob.call(SET_TYPING, c=conversation_id, t=False)
            stopped = await alices.next_of("TypingEvent")
            assert stopped["typing"] is False

        # and bob's own stream carried his reply too, with resumable cursors
        own = await bobs.next_of("MessagePostedEvent")
        assert own["message"]["body"] == "hello alice"
        own = await bobs.next_of("MessagePostedEvent")
        assert own["message"]["body"] == "did you read this?"
        assert int(own["cursor"]) > int(posted["cursor"])


async def test_subscriber_on_one_instance_receives_what_was_sent_through_another(
    server: RunningApp,
) -> None:
    # given a second instance on the same PostgreSQL + Redis
    assert server.ws_url
    async with served_app(server.runtime.settings) as other:
        alice = await register(server.http)
        bob = await register(other.http)
        conversation_id = (await alice.send("hi", to=bob))["conversationId"]
        async with subscribe(
            server.ws_url, alice.token, CONVERSATION_EVENTS, {"id": conversation_id, "afterSeq": 1}
        ) as feed:
            # when bob sends through the other instance
            await bob.send("from B", conversation_id=conversation_id)
            # then the subscriber on the first instance gets it
            event = await feed.next_of("MessagePostedEvent")
            assert event["message"]["body"] == "from B"


@pytest.mark.smoke
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_resubscribing_with_cursor_gets_exactly_the_hundred_missed_messages(
    server: RunningApp, protocol: str
) -> None:
    # given alice received message 1 and disconnected
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    conversation_id = (await bob.send("m1", to=alice))["conversationId"]
    async with subscribe(
        server.ws_url,
        alice.token,
        CONVERSATION_EVENTS,
        {"id": conversation_id, "afterSeq": 0},
        protocol=protocol,
    ) as feed:
        last_seen = (await feed.next_of("MessagePostedEvent"))["message"]["seq"]
    # when 100 messages are sent while she is away
    for i in range(100):
        await bob.send(f"missed {i}", conversation_id=conversation_id)
    # then resubscribing with her cursor yields exactly those, in order, then live ones
    async with subscribe(
        server.ws_url,
        alice.token,
        CONVERSATION_EVENTS,
        {"id": conversation_id, "afterSeq": last_seen},
        protocol=protocol,
    ) as feed:
        replayed = [(await feed.next_of("MessagePostedEvent"))["message"] for _ in range(100)]
        await bob.send("live", conversation_id=conversation_id)
        live = await feed.next_of("MessagePostedEvent")
    assert [m["seq"] for m in replayed] == list(range(2, 102))
    assert [m["body"] for m in replayed] == [f"missed {i}" for i in range(100)]
    assert live["message"]["seq"] == 102


@pytest.mark.smoke
async def test_my_events_resumes_from_its_cursor_across_conversations(server: RunningApp) -> None:
    assert server.ws_url
    alice, bob, carol = [await register(server.http) for _ in range(3)]
    await bob.send("b1", to=alice)
    async with subscribe(server.ws_url, alice.token, MY_EVENTS, {"after": "0"}) as feed:
        cursor = (await feed.next_of("MessagePostedEvent"))["cursor"]
    await carol.send("c1", to=alice)
    await bob.send("b2", to=alice)
    async with subscribe(server.ws_url, alice.token, MY_EVENTS, {"after": cursor}) as feed:
        bodies = [(await feed.next_of("MessagePostedEvent"))["message"]["body"] for _ in range(2)]
        await asyncio.sleep(0.2)
        assert feed.empty()
    assert bodies == ["c1", "b2"]


async def test_message_whose_announcement_failed_on_the_sender_instance_still_arrives(
    server: RunningApp,
) -> None:
    # given a second instance whose next two publishes fail (its own Redis link flaps)
    assert server.ws_url
    async with served_app(server.runtime.settings) as other:
        alice = await register(server.http)
        bob = (await register(server.http)).via(other.http)
        conversation_id = (await bob.send("hi", to=alice.via(other.http)))["conversationId"]
        async with subscribe(
            server.ws_url, alice.token, CONVERSATION_EVENTS, {"id": conversation_id, "afterSeq": 1}
        ) as feed:
            FlakyPublish(other.runtime.broker, failures=2)
            # when bob sends through it
            await bob.send("despite the flap", conversation_id=conversation_id)
            # then alice, on a healthy instance that saw no outage, still receives it
            event = await feed.next_of("MessagePostedEvent")
            assert event["message"]["body"] == "despite the flap"
