"""Blocking: DMs and typing refused both ways (FORBIDDEN, reason BLOCKED), unblocking, lists."""

from __future__ import annotations

import re

import pytest

from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    BLOCKED_USERS,
    FRIENDS,
    INCOMING_FRIEND_REQUESTS,
    OUTGOING_FRIEND_REQUESTS,
    SEND,
    SEND_FRIEND_REQUEST,
    SET_TYPING,
    UNBLOCK_USER,
    Account,
    GraphQLError,
    register,
    user_ids,
)
from tests.support.ids import Kind, missing
from tests.support.servers import RunningApp
from tests.support.statements import recorded_statements

INBOX = "query { conversations { edges { node { id lastSeq } } } }"
HISTORY = """
query History($id: ID!) {
  conversation(id: $id) { lastSeq messages(first: 100) { edges { node { body } } } }
}
"""


async def _refusal(account: Account, query: str, **variables: object) -> list[dict[str, object]]:
    """The extensions of the errors a call must fail with."""
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return [error["extensions"] for error in failure.value.errors]


def _blocked(field: str) -> list[dict[str, object]]:
    return [{"code": "FORBIDDEN", "reason": "BLOCKED", "field": field}]


async def _bodies(account: Account, conversation_id: str) -> list[str]:
    result = await account.call(HISTORY, id=conversation_id)
    return [edge["node"]["body"] for edge in result["conversation"]["messages"]["edges"]]


@pytest.mark.smoke
@pytest.mark.parametrize("sender", ["blocker", "blocked"])
async def test_blocked_user_cannot_send_a_direct_message_by_recipient_id(
    app: RunningApp, sender: str
) -> None:
    # given alice blocked bob before either wrote
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(BLOCK_USER, u=bob.id)
    writer, reader = (alice, bob) if sender == "blocker" else (bob, alice)
    # when one writes to the other
    refused = await _refusal(
        writer, SEND, input={"body": "hi", "clientMessageId": "k1", "recipientId": reader.id}
    )
    # then it is refused and no conversation was even created
    assert refused == _blocked("recipientId")
    assert (await writer.call(INBOX))["conversations"]["edges"] == []
    assert (await reader.call(INBOX))["conversations"]["edges"] == []


@pytest.mark.smoke
@pytest.mark.parametrize("sender", ["blocker", "blocked"])
async def test_blocked_user_cannot_send_into_the_existing_direct_conversation(
    app: RunningApp, sender: str
) -> None:
    # given alice and bob talked, then alice blocked bob
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("before", to=bob))["conversationId"]
    await alice.call(BLOCK_USER, u=bob.id)
    writer = alice if sender == "blocker" else bob
    # when one writes into the conversation
    refused = await _refusal(
        writer,
        SEND,
        input={"body": "after", "clientMessageId": "k2", "conversationId": conversation_id},
    )
    # then it is refused and nothing was stored
    assert refused == _blocked("conversationId")
    assert await _bodies(alice, conversation_id) == await _bodies(bob, conversation_id)
    assert await _bodies(bob, conversation_id) == ["before"]


@pytest.mark.parametrize("typist", ["blocker", "blocked"])
async def test_typing_in_a_blocked_direct_conversation_is_refused(
    app: RunningApp, typist: str
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await bob.send("hello", to=alice))["conversationId"]
    await alice.call(BLOCK_USER, u=bob.id)
    account = alice if typist == "blocker" else bob
    refused = await _refusal(account, SET_TYPING, c=conversation_id, t=True)
    assert refused == _blocked("conversationId")


async def test_unblocking_restores_messaging_and_typing(app: RunningApp) -> None:
    # given bob was blocked and unblocked again
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("before", to=bob))["conversationId"]
    await alice.call(BLOCK_USER, u=bob.id)
    assert (await alice.call(UNBLOCK_USER, u=bob.id))["unblockUser"] == {
        "id": bob.id,
        "blocked": False,
    }
    # when they write, by recipient and into the conversation, and type
    await bob.send("by recipient", to=alice)
    await alice.send("into the conversation", conversation_id=conversation_id)
    typing = await bob.call(SET_TYPING, c=conversation_id, t=True)
    # then all of it went through
    assert typing == {"setTyping": True}
    assert await _bodies(alice, conversation_id) == [
        "into the conversation",
        "by recipient",
        "before",
    ]
    assert await user_ids(alice, BLOCKED_USERS) == []


async def test_only_the_blocker_can_unblock(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(BLOCK_USER, u=bob.id)
    assert [e["code"] for e in await _refusal(bob, UNBLOCK_USER, u=alice.id)] == ["FORBIDDEN"]
    refused = await _refusal(
        bob, SEND, input={"body": "hi", "clientMessageId": "k", "recipientId": alice.id}
    )
    assert refused == _blocked("recipientId")
    assert await user_ids(alice, BLOCKED_USERS) == [bob.id]


async def test_when_both_blocked_each_other_messaging_needs_both_blocks_lifted(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(BLOCK_USER, u=bob.id)
    await bob.call(BLOCK_USER, u=alice.id)
    # alice's block is lifted, but bob's still stands: the answer shows bob as blocked
    assert (await alice.call(UNBLOCK_USER, u=bob.id))["unblockUser"] == {
        "id": bob.id,
        "blocked": True,
    }
    refused = await _refusal(
        alice, SEND, input={"body": "hi", "clientMessageId": "k", "recipientId": bob.id}
    )
    assert refused == _blocked("recipientId")
    await bob.call(UNBLOCK_USER, u=alice.id)
    assert (await alice.send("hi", to=bob))["body"] == "hi"


async def test_blocking_removes_the_friendship(app: RunningApp) -> None:
    # given alice and bob are friends
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    await bob.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    # when bob blocks alice
    blocked = (await bob.call(BLOCK_USER, u=alice.id))["blockUser"]
    # then they are friends no more, and only bob's block list shows it
    assert blocked["user"] == {"id": alice.id}
    assert await user_ids(alice, FRIENDS) == await user_ids(bob, FRIENDS) == []
    assert await user_ids(bob, BLOCKED_USERS) == [alice.id]
    assert await user_ids(alice, BLOCKED_USERS) == []
    # and unblocking does not bring the friendship back
    await bob.call(UNBLOCK_USER, u=alice.id)
    assert await user_ids(alice, FRIENDS) == []


async def test_blocking_removes_a_pending_request(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    await alice.call(BLOCK_USER, u=bob.id)
    assert await user_ids(alice, OUTGOING_FRIEND_REQUESTS) == []
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == []


@pytest.mark.parametrize("asker", ["blocker", "blocked"])
async def test_friend_requests_between_blocked_users_are_refused(
    app: RunningApp, asker: str
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(BLOCK_USER, u=bob.id)
    account, other = (alice, bob) if asker == "blocker" else (bob, alice)
    assert await _refusal(account, SEND_FRIEND_REQUEST, u=other.id) == _blocked("userId")
    assert await user_ids(other, INCOMING_FRIEND_REQUESTS) == []


async def test_blocks_leave_everyone_elses_conversations_alone(app: RunningApp) -> None:
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    await alice.call(BLOCK_USER, u=bob.id)
    assert (await alice.send("to carol", to=carol))["body"] == "to carol"
    conversation_id = (await carol.send("to bob", to=bob))["conversationId"]
    assert (await bob.send("to carol", conversation_id=conversation_id))["seq"] == 2


async def test_sending_into_a_conversation_checks_blocks_inside_the_send_statement(
    app: RunningApp,
) -> None:
    # given a conversation (and a first send that warmed up everything per-user)
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("first", to=bob))["conversationId"]
    await alice.send("warm", conversation_id=conversation_id)
    # when alice sends into it
    async with recorded_statements(app) as statements:
        await alice.send("counted", conversation_id=conversation_id)
    # then the block rule rides on the one statement that sends: no extra round trip
    sends = [s for s in statements if "INSERT INTO messages" in s]
    assert len(sends) == 1 and re.search(r"\bblocks\b", sends[0])
    assert not [s for s in statements if "blocks" in s and "INSERT INTO messages" not in s]


async def test_blocking_twice_is_a_conflict(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(BLOCK_USER, u=bob.id)
    assert [e["code"] for e in await _refusal(alice, BLOCK_USER, u=bob.id)] == ["CONFLICT"]
    assert await user_ids(alice, BLOCKED_USERS) == [bob.id]


async def test_unblocking_someone_nobody_blocked_is_not_found(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    assert [e["code"] for e in await _refusal(alice, UNBLOCK_USER, u=bob.id)] == ["NOT_FOUND"]


@pytest.mark.parametrize("mutation", [BLOCK_USER, UNBLOCK_USER])
async def test_blocking_a_user_that_does_not_exist_is_not_found(
    app: RunningApp, mutation: str
) -> None:
    alice = await register(app.http)
    refusal = await _refusal(alice, mutation, u=missing(Kind.USER))
    assert [e["code"] for e in refusal] == ["NOT_FOUND"]


@pytest.mark.parametrize("mutation", [BLOCK_USER, UNBLOCK_USER])
async def test_blocking_yourself_is_bad_user_input(app: RunningApp, mutation: str) -> None:
    alice = await register(app.http)
    codes = [e["code"] for e in await _refusal(alice, mutation, u=alice.id)]
    assert codes == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("document", [BLOCK_USER, UNBLOCK_USER, BLOCKED_USERS])
async def test_blocking_without_a_token_is_unauthenticated(app: RunningApp, document: str) -> None:
    alice = await register(app.http)
    anonymous = Account(app.http, "0", "nobody", token="", refresh_token="")
    variables = {} if document == BLOCKED_USERS else {"u": alice.id}
    codes = [e["code"] for e in await _refusal(anonymous, document, **variables)]
    assert codes == ["UNAUTHENTICATED"]
