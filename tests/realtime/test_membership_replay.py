"""Only members at the time of an event get it, live or replayed from any cursor.

A member counts from the log position of their joining (`memberships.since_xid`): someone
who joins a group late and replays from an old cursor gets what happened since they joined
(including changes to old messages), and nothing from before. Whoever leaves or is removed
gets one MembershipEndedEvent saying so and nothing of the group from then on, live or
replayed. An invitation withdrawn or declined before it was seen reaches nobody.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatr.infra import event_log
from tests.groups.helpers import ACCEPT, DECLINE, INVITE, LEAVE, REMOVE, group_with
from tests.messages.helpers import EDIT, PIN, REACT
from tests.support.api import Account, register
from tests.support.ids import pk
from tests.support.servers import RunningApp
from tests.support.ws import PROTOCOLS, TRANSPORT_WS, Feed, subscribe

FIELDS = """
  __typename conversationId cursor
  ... on MessagePostedEvent { message { id body sender { id } system { action } } }
  ... on MessageChangedEvent { message { id } user { id } }
  ... on MembershipEndedEvent { reason by { id } }
"""
MY_EVENTS = f"subscription Mine($after: String) {{ myEvents(after: $after) {{ {FIELDS} }} }}"
CONVERSATION_EVENTS = f"""
subscription Conversation($id: ID!, $afterSeq: Int) {{
  conversationEvents(conversationId: $id, afterSeq: $afterSeq) {{ {FIELDS} }}
}}
"""


def _shape(event: dict[str, Any]) -> tuple[str, str]:
    """(type, the message's body, or its system action, or its id)."""
    message = event.get("message") or {}
    if event["__typename"] == "MessagePostedEvent":
        system = message.get("system")
        return event["__typename"], system["action"] if system else message["body"]
    if event["__typename"] == "MembershipEndedEvent":
        return event["__typename"], event["reason"]
    return event["__typename"], message.get("id", "")


async def _until(feed: Feed, body: str) -> list[dict[str, Any]]:
    """Every event up to and including the message with this body (receipts left out)."""
    events = []
    while True:
        event = await feed.next()
        if event["__typename"] != "ReceiptUpdatedEvent":
            events.append(event)
        if event["__typename"] == "MessagePostedEvent" and event["message"]["body"] == body:
            return events


async def _joined_late(server: RunningApp) -> tuple[Account, Account, str, str]:
    """A group where much happened to an old message before `newcomer` joined, and one
    reaction to it after; returns (owner, newcomer, group id, the old message's id)."""
    owner, member, newcomer = [await register(server.http) for _ in range(3)]
    group_id = await group_with(owner, members=[member])
    old = await owner.send("old news", conversation_id=group_id)
    await member.send("before anyone new", conversation_id=group_id)
    await owner.call(EDIT, m=old["id"], body="old news, edited")
    await member.call(REACT, m=old["id"], e="🎉")
    await owner.call(PIN, m=old["id"])
    await owner.call(INVITE, c=group_id, u=[newcomer.id])
    await newcomer.call(ACCEPT, c=group_id)
    await member.call(REACT, m=old["id"], e="👍")
    await owner.send("now", conversation_id=group_id)
    return owner, newcomer, group_id, old["id"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_late_joiner_replaying_from_the_start_gets_nothing_from_before_they_joined(
    server: RunningApp, protocol: str
) -> None:
    assert server.ws_url
    owner, newcomer, group_id, old_id = await _joined_late(server)
    # when the newcomer replays everything, of all their conversations and of the group
    async with subscribe(
        server.ws_url, newcomer.token, MY_EVENTS, {"after": "0"}, protocol=protocol
    ) as mine:
        everything = await _until(mine, "now")
    async with subscribe(
        server.ws_url,
        newcomer.token,
        CONVERSATION_EVENTS,
        {"id": group_id, "afterSeq": 0},
        protocol=protocol,
    ) as conversation:
        of_the_group = await _until(conversation, "now")
    # then both begin with their own joining: no earlier message, edit, reaction, pin, nor
    # even the invitation; the reaction to the old message since then is theirs
    expected = [
        ("MessagePostedEvent", "JOINED"),
        ("ReactionChangedEvent", old_id),
        ("MessagePostedEvent", "now"),
    ]
    assert [_shape(event) for event in everything] == expected
    assert [_shape(event) for event in of_the_group] == expected
    assert everything[0]["message"]["sender"] == {"id": newcomer.id}
    assert everything[1]["user"]["id"] != owner.id  # the member's reaction


async def test_a_late_joiner_listening_live_gets_nothing_from_before_they_joined(
    server: RunningApp,
) -> None:
    assert server.ws_url
    owner, member, newcomer = [await register(server.http) for _ in range(3)]
    group_id = await group_with(owner, members=[member])
    old = await owner.send("old news", conversation_id=group_id)
    # given the newcomer listening before they were even invited
    async with subscribe(server.ws_url, newcomer.token, MY_EVENTS, {"after": "0"}) as mine:
        await owner.send("hello", to=newcomer)
        await _until(mine, "hello")
        await owner.call(INVITE, c=group_id, u=[newcomer.id])
        assert (await mine.next())["__typename"] == "GroupInvitedEvent"
        # when they join, and the old message changes afterwards
        await newcomer.call(ACCEPT, c=group_id)
        await owner.call(EDIT, m=old["id"], body="old news, edited")
        await owner.send("now", conversation_id=group_id)
        # then they hear their joining, the edit and the new message, nothing older
        assert [_shape(event) for event in await _until(mine, "now")] == [
            ("MessagePostedEvent", "JOINED"),
            ("MessageEditedEvent", old["id"]),
            ("MessagePostedEvent", "now"),
        ]


@pytest.mark.parametrize("how", ["removed", "left"])
async def test_a_former_members_events_stop_at_their_removal_live_and_on_replay(
    server: RunningApp, how: str
) -> None:
    assert server.ws_url
    owner, member, former = [await register(server.http) for _ in range(3)]
    group_id = await group_with(owner, members=[member, former])
    old = await owner.send("while you were here", conversation_id=group_id)
    async with subscribe(server.ws_url, former.token, MY_EVENTS, {"after": "0"}) as live:
        cursor = (await _until(live, "while you were here"))[-1]["cursor"]
        # when they are removed (or leave), and the group goes on
        if how == "removed":
            await owner.call(REMOVE, c=group_id, u=former.id)
        else:
            await former.call(LEAVE, c=group_id)
        await owner.call(EDIT, m=old["id"], body="edited after you went")
        await member.call(REACT, m=old["id"], e="🎉")
        await owner.call(PIN, m=old["id"])
        await owner.send("after you went", conversation_id=group_id)
        # then their live stream hears that their membership ended, and none of the rest (a
        # message from elsewhere comes next)
        reason = "REMOVED" if how == "removed" else "LEFT"
        await owner.send("elsewhere", to=former)
        ended = await _until(live, "elsewhere")
        assert [_shape(event) for event in ended] == [
            ("MembershipEndedEvent", reason),
            ("MessagePostedEvent", "elsewhere"),
        ]
        assert ended[0]["conversationId"] == group_id
        assert ended[0]["by"]["id"] == (owner.id if how == "removed" else former.id)
    # and so does a replay from their last cursor in the group, on either protocol
    for protocol in PROTOCOLS:
        async with subscribe(
            server.ws_url, former.token, MY_EVENTS, {"after": cursor}, protocol=protocol
        ) as replay:
            assert [_shape(event) for event in await _until(replay, "elsewhere")] == [
                ("MembershipEndedEvent", reason),
                ("MessagePostedEvent", "elsewhere"),
            ]
    # and one from the start: of the group, a former member replays only its end
    async with subscribe(server.ws_url, former.token, MY_EVENTS, {"after": "0"}) as replay:
        events = await _until(replay, "elsewhere")
    of_the_group = [_shape(event) for event in events if event["conversationId"] == group_id]
    assert of_the_group == [("MembershipEndedEvent", reason)]


async def test_only_the_former_member_hears_that_their_membership_ended(
    server: RunningApp,
) -> None:
    assert server.ws_url
    owner, member, former = [await register(server.http) for _ in range(3)]
    group_id = await group_with(owner, members=[member, former])
    # when the owner removes one member and the group goes on
    await owner.call(REMOVE, c=group_id, u=former.id)
    await owner.send("after", conversation_id=group_id)
    # then the members who stay see the removal as the group's SYSTEM message, and no
    # MembershipEndedEvent, live or replayed
    for who in (owner, member):
        async with subscribe(server.ws_url, who.token, MY_EVENTS, {"after": "0"}) as replay:
            shapes = [_shape(event) for event in await _until(replay, "after")]
        assert ("MessagePostedEvent", "REMOVED") in shapes
        assert [s for s in shapes if s[0] == "MembershipEndedEvent"] == []


@pytest.mark.parametrize("how", ["withdrawn", "declined"])
async def test_an_invitation_undone_before_it_was_seen_reaches_nobody(
    server: RunningApp, how: str
) -> None:
    assert server.ws_url
    owner, invitee = await register(server.http), await register(server.http)
    group_id = await group_with(owner)
    # given an invitation withdrawn (or declined on another device) before the invitee's
    # device ever connected
    await owner.call(INVITE, c=group_id, u=[invitee.id])
    if how == "withdrawn":
        await owner.call(REMOVE, c=group_id, u=invitee.id)
    else:
        await invitee.call(DECLINE, c=group_id)
    await owner.send("hello", to=invitee)
    # when the device replays everything, it finds nothing of the group
    async with subscribe(
        server.ws_url, invitee.token, MY_EVENTS, {"after": "0"}, protocol=TRANSPORT_WS
    ) as replay:
        events = await _until(replay, "hello")
    assert [_shape(event) for event in events] == [("MessagePostedEvent", "hello")]
    # and invited again, it replays that invitation only, once
    await owner.call(INVITE, c=group_id, u=[invitee.id])
    await owner.send("again", to=invitee)
    async with subscribe(server.ws_url, invitee.token, MY_EVENTS, {"after": "0"}) as replay:
        events = await _until(replay, "again")
    assert [event["__typename"] for event in events] == [
        "MessagePostedEvent",
        "GroupInvitedEvent",
        "MessagePostedEvent",
    ]
    assert events[1]["conversationId"] == group_id


@pytest.mark.smoke
async def test_the_live_fan_out_reads_who_was_a_member_at_each_event(app: RunningApp) -> None:
    # given a group where the newcomer joined after some of its events
    owner, newcomer = await register(app.http), await register(app.http)
    group_id = await group_with(owner)
    await owner.send("before", conversation_id=group_id)
    await owner.call(INVITE, c=group_id, u=[newcomer.id])
    await newcomer.call(ACCEPT, c=group_id)
    await owner.send("after", conversation_id=group_id)
    # when the live fan-out reads the whole log for both (as a hub that fell behind does)
    async with app.runtime.db.autocommit_engine.connect() as connection:
        batch = await event_log.read_for_listeners(
            connection,
            after=0,
            conversation_ids=[pk(group_id)],
            user_ids=[],
            member_ids=[pk(owner.id), pk(newcomer.id)],
        )
    # then the owner may see every event of the group, the newcomer those from their
    # joining on (the first is their JOINED notice)
    group_events = [event for event in batch.events if event.audience_id is None]
    seen = [batch.may_see(event) for event in group_events]
    everyone = frozenset({pk(owner.id), pk(newcomer.id)})
    owner_only = frozenset({pk(owner.id)})
    joined = seen.index(everyone)
    assert joined > 0 and seen == [owner_only] * joined + [everyone] * (len(seen) - joined)
    assert group_events[joined].actor_id == pk(newcomer.id)
    bodies = [event.message.body if event.message else None for event in group_events]
    assert "before" in bodies[:joined] and bodies[-1] == "after"
