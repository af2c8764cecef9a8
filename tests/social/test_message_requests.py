"""Message requests: DMs between people who are not friends wait for the recipient's answer."""

from __future__ import annotations

import pytest

from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    MARK_READ,
    SEND_FRIEND_REQUEST,
    SET_TYPING,
    Account,
    GraphQLError,
    register,
)
from tests.support.servers import RunningApp
from tests.support.ws import CONVERSATION_EVENTS, subscribe

STATUS = "query S($id: ID!) { conversation(id: $id) { status } }"
REQUESTS = "query { messageRequests { edges { node { id status peer { id } } } } }"
ACCEPT = "mutation A($c: ID!) { acceptMessageRequest(conversationId: $c) { id status } }"
DECLINE = "mutation D($c: ID!) { declineMessageRequest(conversationId: $c) { conversationId } }"
PRESENCE = "query P($id: ID!) { user(id: $id) { presence lastSeenAt } }"
MEMBERS = """
query M($id: ID!) {
  conversation(id: $id) { members { user { id } lastReadSeq lastDeliveredSeq } }
}
"""


async def _status(account: Account, conversation_id: str) -> str:
    return (await account.call(STATUS, id=conversation_id))["conversation"]["status"]


async def _codes(account: Account, query: str, **variables: object) -> list[str]:
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return failure.value.codes


async def _requests(account: Account) -> list[tuple[str, str]]:
    edges = (await account.call(REQUESTS))["messageRequests"]["edges"]
    return [(edge["node"]["id"], edge["node"]["peer"]["id"]) for edge in edges]


async def _markers_of(viewer: Account, member: Account, conversation_id: str) -> tuple:
    members = (await viewer.call(MEMBERS, id=conversation_id))["conversation"]["members"]
    (found,) = [m for m in members if m["user"]["id"] == member.id]
    return found["lastReadSeq"], found["lastDeliveredSeq"]


@pytest.mark.smoke
async def test_a_dm_from_a_stranger_waits_in_the_recipients_requests(app: RunningApp) -> None:
    alice, carol = await register(app.http), await register(app.http)
    conversation_id = (await carol.send("hello, we have not met", to=alice))["conversationId"]
    assert await _status(carol, conversation_id) == "PENDING"
    assert await _requests(alice) == [(conversation_id, carol.id)]
    assert await _requests(carol) == []  # her own request is not one she answers


async def test_a_dm_between_friends_needs_no_acceptance(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await bob.call(SEND_FRIEND_REQUEST, u=alice.id)
    await alice.call(ACCEPT_FRIEND_REQUEST, u=bob.id)
    conversation_id = (await bob.send("hi friend", to=alice))["conversationId"]
    assert await _status(alice, conversation_id) == "ACTIVE"
    assert await _requests(alice) == []


async def test_replying_accepts_and_the_requester_writing_again_does_not(app: RunningApp) -> None:
    alice, carol = await register(app.http), await register(app.http)
    conversation_id = (await carol.send("hello", to=alice))["conversationId"]
    await carol.send("are you there?", conversation_id=conversation_id)
    assert await _status(alice, conversation_id) == "PENDING"
    await alice.send("hi carol", conversation_id=conversation_id)
    assert await _status(carol, conversation_id) == "ACTIVE"
    assert await _requests(alice) == []


async def test_becoming_friends_accepts_a_pending_request(app: RunningApp) -> None:
    alice, carol = await register(app.http), await register(app.http)
    conversation_id = (await carol.send("hello", to=alice))["conversationId"]
    await carol.call(SEND_FRIEND_REQUEST, u=alice.id)
    await alice.call(ACCEPT_FRIEND_REQUEST, u=carol.id)
    assert await _status(alice, conversation_id) == "ACTIVE"


async def test_only_the_person_asked_answers_a_request(app: RunningApp) -> None:
    alice, carol = await register(app.http), await register(app.http)
    conversation_id = (await carol.send("hello", to=alice))["conversationId"]
    assert await _codes(carol, ACCEPT, c=conversation_id) == ["FORBIDDEN"]
    assert await _codes(carol, DECLINE, c=conversation_id) == ["FORBIDDEN"]
    assert await _status(alice, conversation_id) == "PENDING"
    accepted = await alice.call(ACCEPT, c=conversation_id)
    assert accepted["acceptMessageRequest"] == {"id": conversation_id, "status": "ACTIVE"}
    # an accepted conversation is no request any more
    assert await _codes(alice, DECLINE, c=conversation_id) == ["FORBIDDEN"]


async def test_declining_deletes_the_conversation_for_both(app: RunningApp) -> None:
    alice, carol = await register(app.http), await register(app.http)
    conversation_id = (await carol.send("buy my stuff", to=alice))["conversationId"]
    declined = (await alice.call(DECLINE, c=conversation_id))["declineMessageRequest"]
    assert declined == {"conversationId": conversation_id}
    for account in (alice, carol):
        assert await _codes(account, STATUS, id=conversation_id) == ["NOT_FOUND"]
    assert await _requests(alice) == []
    # writing again starts a new request
    again = await carol.send("please?", to=alice)
    assert again["conversationId"] != conversation_id
    assert again["seq"] == 1
    assert await _requests(alice) == [(again["conversationId"], carol.id)]


async def test_while_pending_the_requester_sees_no_receipts_or_typing(server: RunningApp) -> None:
    assert server.ws_url
    alice, carol = await register(server.http), await register(server.http)
    conversation_id = (await carol.send("hello", to=alice))["conversationId"]
    async with subscribe(
        server.ws_url, carol.token, CONVERSATION_EVENTS, {"id": conversation_id, "afterSeq": 1}
    ) as carols:
        # when alice reads and types without answering
        await alice.call(MARK_READ, c=conversation_id, s=1)
        await alice.call(SET_TYPING, c=conversation_id, t=True)
        # then carol hears nothing of it: the next thing she hears is her own next message
        await carol.send("hello?", conversation_id=conversation_id)
        event = await carols.next()
        assert (event["__typename"], event["message"]["seq"]) == ("MessagePostedEvent", 2)
        # and alice's markers are hidden from her, though alice sees her own
        assert await _markers_of(carol, alice, conversation_id) == (None, None)
        assert await _markers_of(alice, alice, conversation_id) == (1, 1)
        # once alice accepts, her receipts reach carol
        await alice.call(ACCEPT, c=conversation_id)
        await alice.call(MARK_READ, c=conversation_id, s=2)
        receipt = await carols.next()
        assert (receipt["__typename"], receipt["user"]["id"], receipt["lastReadSeq"]) == (
            "ReceiptUpdatedEvent",
            alice.id,
            2,
        )
        assert await _markers_of(carol, alice, conversation_id) == (2, 2)


async def test_while_pending_the_requester_does_not_see_the_recipients_presence(
    app: RunningApp,
) -> None:
    alice, carol, dan = [await register(app.http) for _ in range(3)]
    conversation_id = (await carol.send("hello", to=alice))["conversationId"]
    # alice shares her presence with everyone, but not with someone whose request she has
    # not answered (dan, a stranger without a request, still sees it)
    assert await _presence_of(carol, alice) == (None, None)
    assert (await _presence_of(dan, alice))[0] == "OFFLINE"
    # the recipient still sees the requester's
    assert (await _presence_of(alice, carol))[0] == "OFFLINE"
    await alice.call(ACCEPT, c=conversation_id)
    assert (await _presence_of(carol, alice))[0] == "OFFLINE"


async def _presence_of(viewer: Account, user: Account) -> tuple[str | None, str | None]:
    profile = (await viewer.call(PRESENCE, id=user.id))["user"]
    return profile["presence"], profile["lastSeenAt"]
