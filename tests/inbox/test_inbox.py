"""The inbox's operations: the DM with someone, mute, archive, pin; each private to me."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatr.services.inbox import MAX_PINNED
from chatr.settings import Settings
from tests.messages.helpers import DELETE_FOR_ME, STAR, UNSTAR
from tests.support.api import Account, GraphQLError, graphql, register
from tests.support.ids import Kind, missing
from tests.support.servers import RunningApp, in_process_app

INBOX = """
query Inbox($archived: Boolean, $first: Int, $after: String) {
  conversations(archived: $archived, first: $first, after: $after) {
    edges { node { id pinned archived mutedUntil } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
DIRECT_WITH = """
query Direct($u: ID!) { directConversationWith(userId: $u) { id kind lastSeq } }
"""
SETTINGS = "id mutedUntil archived pinned"
MUTE = f"""
mutation Mute($c: ID!, $until: DateTime!) {{
  muteConversation(conversationId: $c, until: $until) {{ {SETTINGS} }}
}}
"""
UNMUTE = f"mutation U($c: ID!) {{ unmuteConversation(conversationId: $c) {{ {SETTINGS} }} }}"
ARCHIVE = f"mutation A($c: ID!) {{ archiveConversation(conversationId: $c) {{ {SETTINGS} }} }}"
UNARCHIVE = f"mutation A($c: ID!) {{ unarchiveConversation(conversationId: $c) {{ {SETTINGS} }} }}"
PIN = f"mutation P($c: ID!) {{ pinConversation(conversationId: $c) {{ {SETTINGS} }} }}"
UNPIN = f"mutation P($c: ID!) {{ unpinConversation(conversationId: $c) {{ {SETTINGS} }} }}"
CONVERSATION = f"query C($id: ID!) {{ conversation(id: $id) {{ {SETTINGS} }} }}"


async def _inbox(account: Account, *, archived: bool = False) -> list[str]:
    found = (await account.call(INBOX, archived=archived))["conversations"]
    return [edge["node"]["id"] for edge in found["edges"]]


async def _codes(account: Account, document: str, **variables: Any) -> list[str]:
    body = await graphql(account.http, document, variables, token=account.token)
    assert not any((body.get("data") or {}).values()), body
    return [error["extensions"]["code"] for error in body["errors"]]


@pytest.mark.smoke
async def test_direct_conversation_with_finds_our_dm_and_never_creates_one(
    app: RunningApp,
) -> None:
    # given alice and bob who have talked, and carol who has never written to alice
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    ours = (await alice.send("hi", to=bob))["conversationId"]
    # then each of them finds their DM with the other
    assert (await alice.call(DIRECT_WITH, u=bob.id))["directConversationWith"] == {
        "id": ours,
        "kind": "DIRECT",
        "lastSeq": 1,
    }
    assert (await bob.call(DIRECT_WITH, u=alice.id))["directConversationWith"]["id"] == ours
    # and between alice and carol there is none, nor does asking make one (no request either)
    assert (await alice.call(DIRECT_WITH, u=carol.id))["directConversationWith"] is None
    assert (await carol.call(DIRECT_WITH, u=alice.id))["directConversationWith"] is None
    assert await _inbox(alice) == [ours]
    assert await _inbox(carol) == []
    # and a user id that is nobody's answers the same as "no DM yet"
    assert (await alice.call(DIRECT_WITH, u=missing(Kind.USER)))["directConversationWith"] is None
    assert await _codes(alice, DIRECT_WITH, u=alice.id) == ["BAD_USER_INPUT"]


@pytest.mark.smoke
async def test_mute_until_a_time_is_mine_alone(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("hi", to=bob))["conversationId"]
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=8)
    # when alice mutes the conversation for eight hours
    muted = await alice.call(MUTE, c=conversation_id, until=until.isoformat())
    # then she sees it muted until then, and bob sees nothing of it
    assert datetime.fromisoformat(muted["muteConversation"]["mutedUntil"]) == until
    assert (await bob.call(CONVERSATION, id=conversation_id))["conversation"]["mutedUntil"] is None
    # and unmuting clears it; a time in the past is refused
    unmuted = await alice.call(UNMUTE, c=conversation_id)
    assert unmuted["unmuteConversation"]["mutedUntil"] is None
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert await _codes(alice, MUTE, c=conversation_id, until=past) == ["BAD_USER_INPUT"]


@pytest.mark.smoke
async def test_archived_conversations_leave_the_inbox_until_unarchived(app: RunningApp) -> None:
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    with_bob = (await alice.send("hi bob", to=bob))["conversationId"]
    with_carol = (await alice.send("hi carol", to=carol))["conversationId"]
    # when alice archives her conversation with bob
    archived = await alice.call(ARCHIVE, c=with_bob)
    assert archived["archiveConversation"]["archived"] is True
    # then it is only in her archive, and a new message from bob leaves it there
    await bob.send("still there?", conversation_id=with_bob)
    assert await _inbox(alice) == [with_carol]
    assert await _inbox(alice, archived=True) == [with_bob]
    # while bob's inbox is untouched
    assert await _inbox(bob) == [with_bob]
    # and unarchiving brings it back, newest activity first
    await alice.call(UNARCHIVE, c=with_bob)
    assert await _inbox(alice) == [with_bob, with_carol]
    assert await _inbox(alice, archived=True) == []


async def test_pinned_conversations_come_first_and_are_limited(app: RunningApp) -> None:
    alice = await register(app.http)
    others = [await register(app.http) for _ in range(MAX_PINNED + 1)]
    ids = [(await alice.send("hi", to=other))["conversationId"] for other in others]
    # newest activity first, until alice pins the two oldest
    assert await _inbox(alice) == ids[::-1]
    await alice.call(PIN, c=ids[0])
    await alice.call(PIN, c=ids[1])
    # then those two come first (by activity among themselves), then the rest
    assert await _inbox(alice) == [ids[1], ids[0], *ids[:1:-1]]
    # and paging through two at a time gives the same order
    paged: list[str] = []
    after = None
    while True:
        page = (await alice.call(INBOX, first=2, after=after))["conversations"]
        paged += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert paged == await _inbox(alice)
    # and pins are limited; unpinning one makes room
    for conversation_id in ids[2:MAX_PINNED]:
        await alice.call(PIN, c=conversation_id)
    assert await _codes(alice, PIN, c=ids[MAX_PINNED]) == ["BAD_USER_INPUT"]
    await alice.call(UNPIN, c=ids[0])
    pinned = await alice.call(PIN, c=ids[MAX_PINNED])
    assert pinned["pinConversation"]["pinned"] is True
    # and the other person sees nothing pinned
    peer = (await others[1].call(CONVERSATION, id=ids[1]))["conversation"]
    assert peer["pinned"] is False


async def test_settings_of_a_conversation_i_am_not_in_are_not_found(app: RunningApp) -> None:
    alice, bob, mallory = [await register(app.http) for _ in range(3)]
    conversation_id = (await alice.send("hi", to=bob))["conversationId"]
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for document, variables in (
        (MUTE, {"c": conversation_id, "until": until}),
        (UNMUTE, {"c": conversation_id}),
        (ARCHIVE, {"c": conversation_id}),
        (UNARCHIVE, {"c": conversation_id}),
        (PIN, {"c": conversation_id}),
        (UNPIN, {"c": conversation_id}),
    ):
        assert await _codes(mallory, document, **variables) == ["NOT_FOUND"]
    assert (await alice.call(CONVERSATION, id=conversation_id))["conversation"] == {
        "id": conversation_id,
        "mutedUntil": None,
        "archived": False,
        "pinned": False,
    }


async def test_inbox_changes_are_rate_limited_per_user(settings: Settings, database: str) -> None:
    limited = settings.with_overrides(rate_limits=True, inbox_change_limit="5 per minute")
    async with in_process_app(limited) as app:
        alice, bob = await register(app.http), await register(app.http)
        sent = await bob.send("hello", to=alice)
        conversation_id = sent["conversationId"]
        # mute, archive, pin, star and delete for me all count towards one allowance
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        await alice.call(MUTE, c=conversation_id, until=until)
        await alice.call(ARCHIVE, c=conversation_id)
        await alice.call(PIN, c=conversation_id)
        await alice.call(STAR, m=sent["id"])
        await alice.call(UNSTAR, m=sent["id"])
        for document, variables in (
            (UNPIN, {"c": conversation_id}),
            (STAR, {"m": sent["id"]}),
            (DELETE_FOR_ME, {"m": sent["id"]}),
        ):
            with pytest.raises(GraphQLError) as refused:
                await alice.call(document, **variables)
            assert refused.value.codes == ["RATE_LIMITED"]
        # and nothing of the refused changes happened
        assert (await alice.call(CONVERSATION, id=conversation_id))["conversation"]["pinned"]
        # while bob's own allowance is untouched
        await bob.call(ARCHIVE, c=conversation_id)
        await bob.call(DELETE_FOR_ME, m=sent["id"])
