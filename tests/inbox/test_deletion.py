"""Deleting a conversation for everyone: who may, what goes, and how devices learn of it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from chatr.models import Event, Membership, Message
from tests.groups.helpers import ACCEPT, create_group
from tests.support.api import Account, graphql, register
from tests.support.ids import pk
from tests.support.servers import RunningApp
from tests.support.ws import Feed, subscribe

DELETE = "mutation D($c: ID!) { deleteConversation(conversationId: $c) { conversationId } }"
DECLINE_REQUEST = (
    "mutation D($c: ID!) { declineMessageRequest(conversationId: $c) { conversationId } }"
)
CONVERSATION = "query C($id: ID!) { conversation(id: $id) { id lastSeq } }"
INBOX = "query { conversations { edges { node { id } } } }"
CURSOR = "query { conversations(first: 1) { edges { node { id } } } }"
EVENTS = """
subscription Mine($after: String) {
  myEvents(after: $after) {
    __typename conversationId cursor
    ... on MessagePostedEvent { message { body } }
    ... on ConversationDeletedEvent { deletedBy { id } }
  }
}
"""


async def _codes(account: Account, document: str, **variables: Any) -> list[str]:
    body = await graphql(account.http, document, variables, token=account.token)
    assert not any((body.get("data") or {}).values()), body
    return [error["extensions"]["code"] for error in body["errors"]]


async def _until_message(feed: Feed, body: str) -> dict[str, Any]:
    """Skip the stream's events up to the message with this body (a probe: once it is here,
    what follows is live)."""
    while True:
        event = await feed.next_of("MessagePostedEvent")
        if event["message"]["body"] == body:
            return event


async def _rows(app: RunningApp, conversation_id: str) -> dict[str, int]:
    """What the database still holds of a conversation."""
    counts: dict[str, int] = {}
    async with app.runtime.db.reader() as session:
        for name, model in (("messages", Message), ("members", Membership), ("events", Event)):
            counts[name] = (
                await session.scalar(
                    select(func.count())
                    .select_from(model)
                    .where(model.conversation_id == pk(conversation_id))
                )
            ) or 0
    return counts


@pytest.mark.smoke
async def test_either_person_deletes_a_dm_for_both_and_both_devices_catch_up(
    server: RunningApp,
) -> None:
    # given alice and bob's conversation, and where alice's event stream stood before
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    conversation_id = (await alice.send("hello bob", to=bob))["conversationId"]
    await bob.send("hello alice", conversation_id=conversation_id)
    async with subscribe(server.ws_url, alice.token, EVENTS, {"after": "0"}) as feed:
        await alice.send("one more", conversation_id=conversation_id)
        cursor = (await _until_message(feed, "one more"))["cursor"]
    # when bob deletes it (while alice is offline)
    deleted = (await bob.call(DELETE, c=conversation_id))["deleteConversation"]
    assert deleted == {"conversationId": conversation_id}
    # then it is gone for both: NOT_FOUND, out of both inboxes, nothing left in the database
    # but the event each of them is told by
    for person in (alice, bob):
        assert await _codes(person, CONVERSATION, id=conversation_id) == ["NOT_FOUND"]
        assert (await person.call(INBOX))["conversations"]["edges"] == []
    assert await _rows(server, conversation_id) == {"messages": 0, "members": 0, "events": 2}
    # and alice's device, resuming from its cursor, learns it (and only that)
    async with subscribe(server.ws_url, alice.token, EVENTS, {"after": cursor}) as feed:
        event = await feed.next()
    assert event["__typename"] == "ConversationDeletedEvent"
    assert (event["conversationId"], event["deletedBy"]) == (conversation_id, {"id": bob.id})
    # and they may start again: a new conversation (not the deleted one)
    again = await alice.send("sorry, start over?", to=bob)
    assert again["conversationId"] != conversation_id and again["seq"] == 1


async def test_a_dm_deletion_reaches_the_other_person_live(server: RunningApp) -> None:
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    conversation_id = (await alice.send("hello", to=bob))["conversationId"]
    async with subscribe(server.ws_url, bob.token, EVENTS, {"after": "0"}) as feed:
        await alice.send("probe", conversation_id=conversation_id)
        await _until_message(feed, "probe")
        await alice.call(DELETE, c=conversation_id)
        event = await feed.next()
    assert event["__typename"] == "ConversationDeletedEvent"
    assert event["deletedBy"] == {"id": alice.id}


async def test_only_the_owner_deletes_a_group_and_every_member_and_invitee_hears_it(
    server: RunningApp,
) -> None:
    assert server.ws_url
    owner, member, invitee, stranger = [await register(server.http) for _ in range(4)]
    group_id = (await create_group(owner, invitees=[member, invitee]))["id"]
    await member.call(ACCEPT, c=group_id)
    await member.send("our plans", conversation_id=group_id)
    # a member may not, nor may a stranger (who is told nothing exists)
    assert await _codes(member, DELETE, c=group_id) == ["FORBIDDEN"]
    assert await _codes(stranger, DELETE, c=group_id) == ["NOT_FOUND"]
    async with (
        subscribe(server.ws_url, member.token, EVENTS, {"after": "0"}) as member_feed,
        subscribe(server.ws_url, invitee.token, EVENTS, {"after": "0"}) as invitee_feed,
    ):
        await owner.send("probe", conversation_id=group_id)
        await _until_message(member_feed, "probe")
        # when the owner deletes the group
        deleted = (await owner.call(DELETE, c=group_id))["deleteConversation"]
        assert deleted == {"conversationId": group_id}
        # then the member and the invitee both hear it
        for feed in (member_feed, invitee_feed):
            event = await feed.next_of("ConversationDeletedEvent")
            assert (event["conversationId"], event["deletedBy"]) == (group_id, {"id": owner.id})
    assert await _rows(server, group_id) == {"messages": 0, "members": 0, "events": 3}
    assert await _codes(member, CONVERSATION, id=group_id) == ["NOT_FOUND"]


async def test_declining_a_message_request_tells_the_requester(server: RunningApp) -> None:
    assert server.ws_url
    requester, recipient = await register(server.http), await register(server.http)
    conversation_id = (await requester.send("hi, we have not met", to=recipient))["conversationId"]
    async with subscribe(server.ws_url, requester.token, EVENTS, {"after": "0"}) as feed:
        await requester.send("probe", conversation_id=conversation_id)
        await _until_message(feed, "probe")
        await recipient.call(DECLINE_REQUEST, c=conversation_id)
        event = await feed.next_of("ConversationDeletedEvent")
    assert event["deletedBy"] == {"id": recipient.id}
    assert await _rows(server, conversation_id) == {"messages": 0, "members": 0, "events": 2}
