"""Pins (for everyone), stars (private bookmarks) and @mentions in groups."""

from __future__ import annotations

import pytest

from chatr.settings import Settings
from tests.groups.helpers import group_with
from tests.messages.helpers import (
    DELETE_FOR_ME,
    EDIT,
    PIN,
    STAR,
    STARRED,
    UNPIN,
    UNSTAR,
    history,
)
from tests.support.api import MARK_READ, GraphQLError, register
from tests.support.servers import RunningApp, in_process_app

INBOX = "query { conversations(first: 20) { edges { node { id unreadCount mentionCount } } } }"


@pytest.mark.smoke
async def test_either_person_pins_in_a_dm_and_everyone_sees_the_pins(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    first = await alice.send("address: 1 Main St", to=bob)
    second = await bob.send("code: 1234", to=alice)
    pinned = (await bob.call(PIN, m=first["id"]))["pinMessage"]
    await alice.call(PIN, m=second["id"])
    assert pinned["pinnedBy"] == {"id": bob.id} and pinned["pinnedAt"] is not None
    seen = await history(alice, first["conversationId"])
    assert seen["pinnedMessages"] == [{"id": second["id"]}, {"id": first["id"]}]
    await alice.call(UNPIN, m=second["id"])
    assert (await history(bob, first["conversationId"]))["pinnedMessages"] == [{"id": first["id"]}]


async def test_in_a_group_only_owner_and_admins_pin(app: RunningApp) -> None:
    owner, admin, member = [await register(app.http) for _ in range(3)]
    group_id = await group_with(owner, admins=[admin], members=[member])
    sent = await member.send("pin me", conversation_id=group_id)
    with pytest.raises(GraphQLError) as refused:
        await member.call(PIN, m=sent["id"])
    assert refused.value.codes == ["FORBIDDEN"]
    await admin.call(PIN, m=sent["id"])
    assert (await history(member, group_id))["pinnedMessages"] == [{"id": sent["id"]}]


async def test_a_conversation_holds_at_most_the_configured_number_of_pins(
    settings: Settings,
    database: str,
) -> None:
    async with in_process_app(settings.with_overrides(max_pinned_messages=2)) as app:
        alice, bob = await register(app.http), await register(app.http)
        sent = [await alice.send(f"pin {n}", to=bob) for n in range(3)]
        await alice.call(PIN, m=sent[0]["id"])
        await bob.call(PIN, m=sent[1]["id"])
        with pytest.raises(GraphQLError) as refused:
            await alice.call(PIN, m=sent[2]["id"])
        assert refused.value.codes == ["BAD_USER_INPUT"]
        # unpinning one makes room
        await alice.call(UNPIN, m=sent[0]["id"])
        await alice.call(PIN, m=sent[2]["id"])
        seen = await history(bob, sent[0]["conversationId"])
        assert seen["pinnedMessages"] == [{"id": sent[2]["id"]}, {"id": sent[1]["id"]}]


@pytest.mark.smoke
async def test_stars_are_private_bookmarks(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    first = await alice.send("recipe link", to=bob)
    second = await alice.send("another", to=bob)
    await bob.call(STAR, m=first["id"])
    await bob.call(STAR, m=second["id"])
    await bob.call(STAR, m=second["id"])  # twice: still one bookmark
    # bob sees his stars, newest first; alice sees none of them, not even as `starred`
    starred = (await bob.call(STARRED))["starredMessages"]["edges"]
    assert [e["node"]["id"] for e in starred] == [second["id"], first["id"]]
    assert (await alice.call(STARRED))["starredMessages"]["edges"] == []
    assert [m["starred"] for m in (await history(alice, first["conversationId"]))["messages"]] == [
        False,
        False,
    ]
    # unstarring and hiding both drop a bookmark
    await bob.call(UNSTAR, m=first["id"])
    await bob.call(DELETE_FOR_ME, m=second["id"])
    assert (await bob.call(STARRED))["starredMessages"]["edges"] == []


async def test_mentions_resolve_members_and_count_unread_per_member(app: RunningApp) -> None:
    # given a group of alice, bob and carol, and dave who is not in it
    alice, bob, carol, dave = [await register(app.http) for _ in range(4)]
    group_id = await group_with(alice, members=[bob, carol])
    # when alice mentions bob twice, dave, herself, and an email address
    text = (
        f"@{bob.username} and @{bob.username.upper()} see this; @{dave.username} is not here, "
        f"@{alice.username} neither counts; mail x@{carol.username}.com"
    )
    sent = await alice.send(text, conversation_id=group_id)
    second = await alice.send(f"@{carol.username} you too", conversation_id=group_id)
    # then the messages mention exactly the members named
    messages = {m["id"]: m for m in (await history(bob, group_id))["messages"]}
    assert messages[sent["id"]]["mentions"] == [{"id": bob.id}]
    assert messages[second["id"]]["mentions"] == [{"id": carol.id}]
    # and each member's inbox counts the unread ones that mention them
    counts = {
        account.id: {
            e["node"]["id"]: e["node"]["mentionCount"]
            for e in (await account.call(INBOX))["conversations"]["edges"]
        }[group_id]
        for account in (alice, bob, carol)
    }
    assert counts == {alice.id: 0, bob.id: 1, carol.id: 1}
    # reading clears it; an edit that drops the mention does too
    await bob.call(MARK_READ, c=group_id, s=100)
    await alice.call(EDIT, m=second["id"], body="never mind")
    for account in (bob, carol):
        found = (await account.call(INBOX))["conversations"]["edges"]
        assert {e["node"]["id"]: e["node"]["mentionCount"] for e in found}[group_id] == 0


async def test_direct_messages_have_no_mentions(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send(f"hey @{bob.username}", to=bob)
    assert (await history(bob, sent["conversationId"]))["messages"][0]["mentions"] == []
