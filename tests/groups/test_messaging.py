"""Group messaging on the same path as DMs: seq, idempotency, receipts per member, typing,
replay after reconnect, `myEvents` following a group on joining, live fan-out to every member,
and a removed member's streams going quiet."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.groups.helpers import ACCEPT, LEAVE, REMOVE, create_group, group, group_with
from tests.support.api import MARK_DELIVERED, MARK_READ, SET_TYPING, Account, GraphQLError, register
from tests.support.servers import RunningApp
from tests.support.ws import MY_EVENTS, Feed, subscribe

GROUP_EVENTS = """
subscription Group($id: ID!, $afterSeq: Int) {
  conversationEvents(conversationId: $id, afterSeq: $afterSeq) {
    __typename conversationId cursor
    ... on MessagePostedEvent { message { seq kind body sender { id } system { action } } }
    ... on ReceiptUpdatedEvent { user { id } lastReadSeq lastDeliveredSeq }
    ... on TypingEvent { user { id } typing }
  }
}
"""


async def _people(app: RunningApp, count: int) -> list[Account]:
    return list(await asyncio.gather(*(register(app.http) for _ in range(count))))


async def _message(feed: Feed) -> dict[str, object]:
    return (await feed.next_of("MessagePostedEvent"))["message"]


async def _typing_seen(
    feed: Feed, keep_typing: Callable[[], Awaitable[object]], attempts: int = 20
) -> dict[str, Any]:
    """The first TypingEvent on `feed`, re-announcing typing every half second meanwhile."""
    for _ in range(attempts):
        await keep_typing()
        try:
            return await feed.next_of("TypingEvent", timeout=0.5)
        except TimeoutError:
            continue
    raise AssertionError("typing never reached the stream")


async def test_group_messages_take_seqs_and_receipts_are_per_member(app: RunningApp) -> None:
    # given an owner, two members and an invitee who has not answered
    alice, bob, carol, dave = await _people(app, 4)
    group_id = await group_with(alice, members=[bob, carol], pending=[dave])
    start = (await group(alice, group_id))["lastSeq"]
    # when three messages are sent, one of them retried with its client id
    first = await alice.send("one", conversation_id=group_id, client_id="a-1")
    again = await alice.send("one", conversation_id=group_id, client_id="a-1")
    await bob.send("two", conversation_id=group_id)
    await carol.send("three", conversation_id=group_id)
    # and each member moves their own markers
    await bob.call(MARK_READ, c=group_id, s=start + 3)
    await carol.call(MARK_DELIVERED, c=group_id, s=start + 2)
    # then the retry is the original and seqs follow on without gaps
    assert again == first and first["seq"] == start + 1
    view = await group(alice, group_id)
    assert view["lastSeq"] == start + 3
    markers = {m["user"]["id"]: (m["lastReadSeq"], m["lastDeliveredSeq"]) for m in view["members"]}
    assert markers == {
        alice.id: (start + 1, start + 1),  # sending reads up to one's own message
        bob.id: (start + 3, start + 3),
        carol.id: (start + 3, start + 3),  # her own message at start + 3
    }
    # and the invitee has no markers to move
    with pytest.raises(GraphQLError) as refused:
        await dave.call(MARK_READ, c=group_id, s=start + 3)
    assert refused.value.codes == ["FORBIDDEN"]


async def test_a_member_who_reconnects_gets_what_happened_while_away(
    server: RunningApp,
) -> None:
    # given a group with a message bob has seen
    assert server.ws_url
    alice, bob, carol = await _people(server, 3)
    group_id = await group_with(alice, members=[bob, carol])
    seen = (await alice.send("seen", conversation_id=group_id))["seq"]
    async with subscribe(
        server.ws_url, bob.token, GROUP_EVENTS, {"id": group_id, "afterSeq": seen - 1}
    ) as feed:
        assert (await _message(feed))["body"] == "seen"
    # when, while he is away, alice writes and carol leaves
    await alice.send("while away", conversation_id=group_id)
    await carol.call(LEAVE, c=group_id)
    # then reconnecting after the last seq he saw replays both, in order, then goes live
    async with subscribe(
        server.ws_url, bob.token, GROUP_EVENTS, {"id": group_id, "afterSeq": seen}
    ) as feed:
        missed = [await _message(feed), await _message(feed)]
        assert [(m["seq"], m["kind"], m["body"]) for m in missed[:1]] == [
            (seen + 1, "TEXT", "while away")
        ]
        assert (missed[1]["seq"], missed[1]["system"]) == (seen + 2, {"action": "LEFT"})
        await alice.send("live", conversation_id=group_id)
        assert (await _message(feed))["body"] == "live"


async def test_typing_in_a_group_reaches_the_other_members(server: RunningApp) -> None:
    assert server.ws_url
    alice, bob, carol = await _people(server, 3)
    group_id = await group_with(alice, members=[bob, carol])
    last = (await group(alice, group_id))["lastSeq"]
    async with AsyncExitStack() as stack:
        feeds = [
            await stack.enter_async_context(
                subscribe(
                    server.ws_url, a.token, GROUP_EVENTS, {"id": group_id, "afterSeq": last - 1}
                )
            )
            for a in (bob, carol)
        ]
        for feed in feeds:
            await _message(feed)
        # Typing is never logged: it reaches streams that are live, and a stream whose replay
        # has arrived may still be being handed over to live delivery for a few ms. So alice
        # keeps typing, as a client repeats it, until each member has seen it.
        for feed in feeds:
            typing = await _typing_seen(feed, lambda: alice.call(SET_TYPING, c=group_id, t=True))
            assert (typing["user"]["id"], typing["typing"]) == (alice.id, True)


async def test_accepting_an_invite_makes_my_events_follow_the_group(server: RunningApp) -> None:
    # given bob, invited to alice's group, listening to all his conversations
    assert server.ws_url
    alice, bob = await _people(server, 2)
    group_id = (await create_group(alice, invitees=[bob]))["id"]
    await alice.send("before bob joined", conversation_id=group_id)
    async with subscribe(server.ws_url, bob.token, MY_EVENTS, {"after": "0"}) as feed:
        # (a direct message proves his stream is live; the group's events are not his yet)
        probe = await alice.send("probe", to=bob)
        first = await feed.next_of("MessagePostedEvent")
        assert (first["conversationId"], first["message"]["body"]) == (
            probe["conversationId"],
            "probe",
        )
        # when he accepts and alice writes
        await bob.call(ACCEPT, c=group_id)
        await alice.send("welcome bob", conversation_id=group_id)
        # then his stream carries the group from his joining on
        joined = await feed.next_of("MessagePostedEvent")
        welcome = await feed.next_of("MessagePostedEvent")
        assert joined["conversationId"] == welcome["conversationId"] == group_id
        assert joined["message"]["sender"] == {"id": bob.id}
        assert welcome["message"]["body"] == "welcome bob"


async def test_a_removed_member_stops_receiving_the_group(server: RunningApp) -> None:
    # given bob in alice's group, with a direct conversation with her too, listening to the
    # group and to all his conversations
    assert server.ws_url
    alice, bob = await _people(server, 2)
    group_id = await group_with(alice, members=[bob])
    direct_id = (await alice.send("direct", to=bob))["conversationId"]
    async with (
        subscribe(server.ws_url, bob.token, GROUP_EVENTS, {"id": group_id}) as group_feed,
        subscribe(server.ws_url, bob.token, MY_EVENTS, {}) as my_feed,
    ):
        await server.until_live(2)
        await alice.send("before", conversation_id=group_id)
        assert (await _message(group_feed))["body"] == "before"
        assert (await my_feed.next())["message"]["body"] == "before"
        # when alice removes him, then types and writes in the group
        await alice.call(REMOVE, c=group_id, u=bob.id)
        await alice.call(SET_TYPING, c=group_id, t=True)
        await alice.send("after", conversation_id=group_id)
        # then his group subscription ends with FORBIDDEN, before any further event (it may
        # still hand him the notice that his membership ended, if that was read first)
        with pytest.raises(TransportQueryError) as ended:
            assert (await group_feed.next())["__typename"] == "MembershipEndedEvent"
            await group_feed.next()
        assert [e["extensions"]["code"] for e in ended.value.errors or []] == ["FORBIDDEN"]
        # and his own stream tells him once, then skips the group: the next thing in it is a
        # direct message
        notice = await my_feed.next()
        assert (notice["__typename"], notice["conversationId"]) == (
            "MembershipEndedEvent",
            group_id,
        )
        await alice.send("still direct", conversation_id=direct_id)
        following = await my_feed.next()
        assert (following["conversationId"], following["message"]["body"]) == (
            direct_id,
            "still direct",
        )
    # and he can no longer post there: the group is NOT_FOUND to him, as to any outsider
    with pytest.raises(GraphQLError) as refused:
        await bob.send("let me back", conversation_id=group_id)
    assert refused.value.codes == ["NOT_FOUND"]


async def test_one_message_reaches_every_live_subscription_of_a_fifty_member_group(
    server: RunningApp,
) -> None:
    # given a group of fifty, every member subscribed to it (the 1,000-member group,
    # with fewer clients)
    assert server.ws_url
    owner, *others = await _people(server, 50)
    group_id = (await create_group(owner, invitees=others))["id"]
    for member in others:  # (one by one: joining is not what is under test)
        await member.call(ACCEPT, c=group_id)
    view = await group(owner, group_id)
    assert len(view["members"]) == 50
    last = view["lastSeq"]
    async with AsyncExitStack() as stack:
        feeds = await asyncio.gather(
            *(
                stack.enter_async_context(
                    subscribe(
                        server.ws_url,
                        member.token,
                        GROUP_EVENTS,
                        {"id": group_id, "afterSeq": last - 1},
                    )
                )
                for member in (owner, *others)
            )
        )
        # (each is live once the last JOINED message has been replayed to it)
        replayed = await asyncio.gather(*(_message(feed) for feed in feeds))
        assert {message["seq"] for message in replayed} == {last}
        await server.until_live(50)
        await server.until_dispatched()
        before = server.runtime.live.metrics()
        # when the owner writes once
        sent = await owner.send("hello, all fifty", conversation_id=group_id)
        # then every member's subscription delivers that message
        received = await asyncio.gather(*(_message(feed) for feed in feeds))
        assert [(m["seq"], m["body"]) for m in received] == [(sent["seq"], "hello, all fifty")] * 50
    # and it was read from the database once and resolved once for all fifty (the selection
    # shows nothing that differs between viewers), not once per member
    after = server.runtime.live.metrics()
    assert after["events"] - before["events"] == 1
    assert after["executions"] - before["executions"] == 1
    assert after["deliveries"] - before["deliveries"] == 50
