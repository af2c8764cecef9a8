"""Events addressed to one person: invitations, my own settings, my stars and hidden
messages, profile changes.

Each is durable (replayed from a cursor) and reaches exactly who it is for: the invitee, the
member whose settings, stars or hidden messages changed (all their devices, nobody else),
the people who may see a profile change under the privacy rules.
"""

from __future__ import annotations

from typing import Any

from tests.groups.helpers import INVITE, create_group
from tests.messages.helpers import DELETE_FOR_ME, STAR, UNSTAR
from tests.support.api import BLOCK_USER, Account, register
from tests.support.servers import RunningApp
from tests.support.ws import Feed, subscribe

EVENTS = """
subscription Mine($after: String) {
  myEvents(after: $after) {
    __typename conversationId cursor
    ... on MessagePostedEvent { message { body } }
    ... on GroupInvitedEvent { invitedBy { id } }
    ... on ConversationSettingsChangedEvent { archived pinned mutedUntil }
    ... on ProfileUpdatedEvent { user { id displayName firstName } }
    ... on MessageStarChangedEvent { starred message { id } user { id } }
    ... on MessageHiddenEvent { message { id } user { id } }
  }
}
"""
ARCHIVE = "mutation A($c: ID!) { archiveConversation(conversationId: $c) { id } }"
PIN = "mutation P($c: ID!) { pinConversation(conversationId: $c) { id } }"
UPDATE_PROFILE = """
mutation U($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }
"""
PRIVACY = """
mutation P($input: PrivacySettingsInput!) { updatePrivacySettings(input: $input) { fullName } }
"""


async def _until(feed: Feed, typename: str, **fields: Any) -> dict[str, Any]:
    """The next event of this type whose fields include these values."""
    while True:
        event = await feed.next_of(typename)
        if all(event.get(key) == value for key, value in fields.items()):
            return event


async def _probe(sender: Account, conversation_id: str, *feeds: Feed) -> list[list[str]]:
    """A message everyone in the conversation hears; per feed, the types of the events that
    came before it (once it is here, everything sent before it has been delivered)."""
    await sender.send("probe", conversation_id=conversation_id)
    skipped: list[list[str]] = []
    for feed in feeds:
        types = []
        while True:
            event = await feed.next()
            if event["__typename"] == "MessagePostedEvent" and event["message"]["body"] == "probe":
                break
            types.append(event["__typename"])
        skipped.append(types)
    return skipped


async def test_an_invitee_hears_of_the_invitation_at_once(server: RunningApp) -> None:
    assert server.ws_url
    owner, invitee = await register(server.http), await register(server.http)
    group_id = (await create_group(owner))["id"]
    async with subscribe(server.ws_url, invitee.token, EVENTS, {"after": "0"}) as feed:
        await owner.call(INVITE, c=group_id, u=[invitee.id])
        event = await feed.next()
    assert event["__typename"] == "GroupInvitedEvent"
    assert (event["conversationId"], event["invitedBy"]) == (group_id, {"id": owner.id})


async def test_my_settings_reach_my_other_devices_and_nobody_else(server: RunningApp) -> None:
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    conversation_id = (await alice.send("hello", to=bob))["conversationId"]
    async with (
        subscribe(server.ws_url, alice.token, EVENTS, {"after": "0"}) as alices,
        subscribe(server.ws_url, bob.token, EVENTS, {"after": "0"}) as bobs,
    ):
        await _probe(alice, conversation_id, alices, bobs)
        cursor = None
        await alice.call(ARCHIVE, c=conversation_id)
        archived = await alices.next()
        assert archived["__typename"] == "ConversationSettingsChangedEvent"
        assert (archived["archived"], archived["pinned"], archived["mutedUntil"]) == (
            True,
            False,
            None,
        )
        cursor = archived["cursor"]
        await alice.call(PIN, c=conversation_id)
        # bob heard the probe, and nothing of alice's settings before it
        assert await _probe(alice, conversation_id, bobs) == [[]]
    # and a device of alice's that was offline replays the pin after the archive
    async with subscribe(server.ws_url, alice.token, EVENTS, {"after": cursor}) as later:
        pinned = await later.next()
    assert pinned["__typename"] == "ConversationSettingsChangedEvent"
    assert (pinned["archived"], pinned["pinned"]) == (True, True)


async def test_a_profile_change_reaches_whoever_may_see_it(server: RunningApp) -> None:
    # given alice with a friend (bob) and a stranger (carol) in a group, and dave blocked
    assert server.ws_url
    alice, bob, carol, dave = [await register(server.http) for _ in range(4)]
    await alice.call("mutation F($u: ID!) { sendFriendRequest(userId: $u) { state } }", u=bob.id)
    await bob.call("mutation A($u: ID!) { acceptFriendRequest(userId: $u) { state } }", u=alice.id)
    group_id = (await create_group(alice, invitees=[bob, carol, dave]))["id"]
    for person in (bob, carol, dave):
        await person.call(
            "mutation A($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }", c=group_id
        )
    await alice.call(BLOCK_USER, u=dave.id)
    # and alice's full name shared with friends only
    await alice.call(PRIVACY, input={"fullName": "FRIENDS"})
    async with (
        subscribe(server.ws_url, bob.token, EVENTS, {"after": "0"}) as bobs,
        subscribe(server.ws_url, carol.token, EVENTS, {"after": "0"}) as carols,
        subscribe(server.ws_url, dave.token, EVENTS, {"after": "0"}) as daves,
    ):
        await _probe(carol, group_id, bobs, carols, daves)
        # when she changes her first name (friends only)
        await alice.call(UPDATE_PROFILE, input={"firstName": "Alicia"})
        # then her friend hears of it and sees it
        event = await bobs.next()
        assert event["__typename"] == "ProfileUpdatedEvent"
        assert event["user"]["id"] == alice.id and event["user"]["firstName"] == "Alicia"
        # when she changes her display name (everyone's to see)
        await alice.call(UPDATE_PROFILE, input={"displayName": "Alicia A."})
        # then the stranger hears of that one (only: the first name was not hers to see)
        event = await carols.next()
        assert event["__typename"] == "ProfileUpdatedEvent"
        assert event["user"] == {"id": alice.id, "displayName": "Alicia A.", "firstName": None}
        assert (await bobs.next())["user"]["displayName"] == "Alicia A."
        # and dave, blocked, heard nothing of either (nor anyone anything more)
        assert await _probe(carol, group_id, bobs, carols, daves) == [[], [], []]


async def test_my_stars_and_hidden_messages_reach_my_other_devices_and_nobody_else(
    server: RunningApp,
) -> None:
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    first = await alice.send("keep this", to=bob)
    second = await bob.send("not this", to=alice)
    conversation_id = first["conversationId"]
    async with (
        subscribe(server.ws_url, alice.token, EVENTS, {"after": "0"}) as alices,
        subscribe(server.ws_url, bob.token, EVENTS, {"after": "0"}) as bobs,
    ):
        await _probe(alice, conversation_id, alices, bobs)
        # when alice stars the first message (twice: the second changes nothing), unstars
        # it, stars it again and deletes the second for herself
        await alice.call(STAR, m=first["id"])
        await alice.call(STAR, m=first["id"])
        starred = await alices.next()
        await alice.call(UNSTAR, m=first["id"])
        await alice.call(STAR, m=first["id"])
        await alice.call(DELETE_FOR_ME, m=second["id"])
        # then her device hears each change once, and bob nothing of any
        assert [(e["__typename"], e.get("starred")) for e in await alices.take(3)] == [
            ("MessageStarChangedEvent", False),
            ("MessageStarChangedEvent", True),
            ("MessageHiddenEvent", None),
        ]
        assert await _probe(alice, conversation_id, alices, bobs) == [[], []]
    assert starred["__typename"] == "MessageStarChangedEvent" and starred["starred"] is True
    assert starred["message"] == {"id": first["id"]} and starred["user"] == {"id": alice.id}
    # and a device of alice's that was offline replays them, in order, after its cursor
    async with subscribe(server.ws_url, alice.token, EVENTS, {"after": starred["cursor"]}) as later:
        replayed = [(e["__typename"], e["message"]["id"]) for e in await later.take(3)]
    assert replayed == [
        ("MessageStarChangedEvent", first["id"]),
        ("MessageStarChangedEvent", first["id"]),
        ("MessageHiddenEvent", second["id"]),
    ]
    # while bob, replaying everything, finds none of them
    async with subscribe(server.ws_url, bob.token, EVENTS, {"after": "0"}) as bobs_replay:
        types = {e["__typename"] for e in await bobs_replay.take(4)}
    assert types == {"MessagePostedEvent"}
