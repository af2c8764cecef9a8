"""Retrying `sendMessage` with its `clientMessageId`: the rules of an idempotency key.

Same key, same request: the original message, stored once. Same key, different request
(another body or another conversation): CONFLICT, and nothing new is stored (Stripe's and
Matrix's rule). A replay is a send like any other: whoever may no longer post there (removed
from the group, blocked in the DM) gets the error a new send would get, not the message.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.groups.helpers import REMOVE, group_with
from tests.support.api import BLOCK_USER, SEND, Account, GraphQLError, register
from tests.support.servers import RunningApp

HISTORY = """
query History($id: ID!) {
  conversation(id: $id) { lastSeq messages(first: 100) { edges { node { body seq } } } }
}
"""
REPLAY_WITH_CONVERSATION = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id body conversation { id name lastSeq } }
}
"""


async def _refusal(account: Account, query: str, **variables: object) -> list[dict[str, object]]:
    """The extensions of the errors a call must fail with."""
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return [error["extensions"] for error in failure.value.errors]


async def _bodies(account: Account, conversation_id: str) -> list[str]:
    """Oldest first."""
    result = await account.call(HISTORY, id=conversation_id)
    return [e["node"]["body"] for e in reversed(result["conversation"]["messages"]["edges"])]


def _send(body: str, key: str, **target: str) -> dict[str, object]:
    return {"input": {"body": body, "clientMessageId": key, **target}}


# -- same key, same request ------------------------------------------------------------------


@pytest.mark.smoke
async def test_retry_of_the_same_request_returns_the_original_and_stores_nothing_new(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    first = await alice.send("once", to=bob, client_id="k1")
    by_recipient = await alice.send("once", to=bob, client_id="k1")
    by_conversation = await alice.send(
        "once", conversation_id=first["conversationId"], client_id="k1"
    )
    assert by_recipient == by_conversation == first
    assert await _bodies(bob, first["conversationId"]) == ["once"]


# -- same key, different request ---------------------------------------------------------------


@pytest.mark.smoke
async def test_same_client_message_id_with_another_body_is_a_conflict(app: RunningApp) -> None:
    # given alice sent a message with key k1
    alice, bob = await register(app.http), await register(app.http)
    first = await alice.send("original", to=bob, client_id="k1")
    conversation_id = first["conversationId"]
    # when she reuses k1 for another text, by conversation and by recipient
    into = await _refusal(alice, SEND, **_send("edited", "k1", conversationId=conversation_id))
    to = await _refusal(alice, SEND, **_send("edited", "k1", recipientId=bob.id))
    # then both are refused and the new text is stored nowhere
    assert [e["code"] for e in into + to] == ["CONFLICT", "CONFLICT"]
    assert into[0]["field"] == "clientMessageId"
    assert await _bodies(bob, conversation_id) == ["original"]
    # and the original request is still answered with the original message
    assert await alice.send("original", to=bob, client_id="k1") == first


async def test_same_client_message_id_into_another_conversation_is_a_conflict(
    app: RunningApp,
) -> None:
    # given alice talks with bob and with carol, and sent "hi" to bob with key k1
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    with_bob = (await alice.send("hi", to=bob, client_id="k1"))["conversationId"]
    with_carol = (await alice.send("hello", to=carol))["conversationId"]
    # when she sends the same text with the same key to carol
    into = await _refusal(alice, SEND, **_send("hi", "k1", conversationId=with_carol))
    to = await _refusal(alice, SEND, **_send("hi", "k1", recipientId=carol.id))
    # then it is a conflict, not bob's message, and carol's conversation is unchanged
    assert [e["code"] for e in into + to] == ["CONFLICT", "CONFLICT"]
    assert await _bodies(carol, with_carol) == ["hello"]
    assert await _bodies(bob, with_bob) == ["hi"]


async def test_keys_are_per_sender_so_two_people_may_use_the_same_one(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    mine = await alice.send("from alice", to=bob, client_id="shared")
    theirs = await bob.send("from bob", to=alice, client_id="shared")
    assert mine["id"] != theirs["id"]
    assert await _bodies(alice, mine["conversationId"]) == ["from alice", "from bob"]


@pytest.mark.smoke
async def test_concurrent_sends_of_one_key_with_different_bodies_store_exactly_one(
    app: RunningApp,
) -> None:
    # given a conversation
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("start", to=bob))["conversationId"]
    # when ten different bodies race under one key
    outcomes = await asyncio.gather(
        *(
            alice.call(SEND, **_send(f"body {i}", "race", conversationId=conversation_id))
            for i in range(10)
        ),
        return_exceptions=True,
    )
    # then one is stored and every other one is a conflict (never a second message)
    sent = [o["sendMessage"] for o in outcomes if isinstance(o, dict)]
    refused = [o.codes for o in outcomes if isinstance(o, GraphQLError)]
    assert len(sent) == 1 and refused == [["CONFLICT"]] * 9
    assert await _bodies(bob, conversation_id) == ["start", sent[0]["body"]]


# -- a replay is checked like a new send -------------------------------------------------------


@pytest.mark.smoke
async def test_removed_group_member_cannot_replay_an_old_message_to_read_the_group(
    app: RunningApp,
) -> None:
    # given bob posted in a group with a client id, then was removed from it
    alice, bob = await register(app.http), await register(app.http)
    group_id = await group_with(alice, members=[bob])
    await bob.send("while a member", conversation_id=group_id, client_id="b-1")
    await alice.call(REMOVE, c=group_id, u=bob.id)
    replay = _send("while a member", "b-1", conversationId=group_id)
    new_send = _send("after removal", "b-2", conversationId=group_id)
    # when he replays that send (asking for the conversation with it)
    replayed = await _refusal(bob, REPLAY_WITH_CONVERSATION, **replay)
    # then he gets what a new send gets: NOT_FOUND (the group is not his), and nothing of it
    assert replayed == await _refusal(bob, REPLAY_WITH_CONVERSATION, **new_send)
    assert [e["code"] for e in replayed] == ["NOT_FOUND"]


@pytest.mark.parametrize("target", ["conversationId", "recipientId"])
async def test_replaying_a_direct_message_after_a_block_gets_the_blocked_error(
    app: RunningApp, target: str
) -> None:
    # given alice wrote to bob with a client id, and bob then blocked her
    alice, bob = await register(app.http), await register(app.http)
    original = await alice.send("sent just before", to=bob, client_id="retry-me")
    await bob.call(BLOCK_USER, u=alice.id)
    where = original["conversationId"] if target == "conversationId" else bob.id
    # when she replays it
    replayed = await _refusal(
        alice, SEND, **_send("sent just before", "retry-me", **{target: where})
    )
    # then it is refused as a new message would be, and the original stays as it was
    assert replayed == [{"code": "FORBIDDEN", "reason": "BLOCKED", "field": target}]
    assert await _bodies(bob, original["conversationId"]) == ["sent just before"]
