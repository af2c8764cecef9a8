"""Direct messages over HTTP: sending, idempotency, ordering, history, inbox, receipts."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.support.api import (
    MARK_DELIVERED,
    MARK_READ,
    SEND,
    Account,
    GraphQLError,
    register,
)
from tests.support.ids import Kind, missing
from tests.support.servers import RunningApp

INBOX = """
query Inbox($first: Int, $after: String) {
  conversations(first: $first, after: $after) {
    edges { cursor node { id kind unreadCount lastSeq peer { username }
                          lastMessage { body seq } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
HISTORY = """
query History($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  conversation(id: $id) {
    messages(first: $first, after: $after, last: $last, before: $before) {
      edges { cursor node { seq body } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


async def _message_count(alice: Account, conversation_id: str) -> int:
    result = await alice.call(HISTORY, id=conversation_id, first=100)
    return len(result["conversation"]["messages"]["edges"])


@pytest.mark.smoke
async def test_first_message_creates_one_conversation_both_sides_see(app: RunningApp) -> None:
    # given
    alice, bob = await register(app.http), await register(app.http)
    # when
    sent = await alice.send("hello bob", to=bob)
    reply = await bob.send("hi alice", to=alice)
    # then
    assert sent["seq"] == 1 and reply["seq"] == 2
    assert sent["conversationId"] == reply["conversationId"]
    inbox = (await bob.call(INBOX))["conversations"]["edges"]
    assert [edge["node"]["peer"]["username"] for edge in inbox] == [alice.username]
    assert inbox[0]["node"]["lastMessage"] == {"body": "hi alice", "seq": 2}


async def test_retry_with_same_client_message_id_returns_the_original(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    first = await alice.send("once", to=bob, client_id="k1")
    again = await alice.send("once", to=bob, client_id="k1")
    assert again == first
    assert await _message_count(alice, first["conversationId"]) == 1


@pytest.mark.smoke
async def test_same_client_message_id_sent_ten_times_concurrently_is_one_message(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("start", to=bob))["conversationId"]
    results = await asyncio.gather(
        *(alice.send("dup", conversation_id=conversation_id, client_id="same") for _ in range(10))
    )
    assert len({r["id"] for r in results}) == 1
    assert await _message_count(alice, conversation_id) == 2


@pytest.mark.smoke
async def test_twenty_concurrent_senders_get_seqs_without_gaps(app: RunningApp) -> None:
    # given a conversation with a first message (seq 1)
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("start", to=bob))["conversationId"]
    # when both send 10 messages each at once
    sends = [
        sender.send(f"m{i}", conversation_id=conversation_id)
        for i in range(10)
        for sender in (alice, bob)
    ]
    results = await asyncio.gather(*sends)
    # then
    assert sorted(r["seq"] for r in results) == list(range(2, 22))
    history = await alice.call(HISTORY, id=conversation_id, first=100)
    seqs = [e["node"]["seq"] for e in history["conversation"]["messages"]["edges"]]
    assert seqs == list(range(21, 0, -1))


@pytest.mark.parametrize(
    ("body", "code"),
    [("", "BAD_USER_INPUT"), ("   ", "BAD_USER_INPUT"), ("x" * 10_001, "BAD_USER_INPUT")],
)
async def test_invalid_body_is_refused_and_nothing_is_stored(
    app: RunningApp, body: str, code: str
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("start", to=bob))["conversationId"]
    with pytest.raises(GraphQLError) as failure:
        await alice.send(body, conversation_id=conversation_id)
    assert failure.value.codes == [code]
    assert await _message_count(alice, conversation_id) == 1


async def test_body_of_exactly_ten_thousand_characters_is_accepted(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("y" * 10_000, to=bob)
    assert len(sent["body"]) == 10_000


async def test_message_to_a_user_that_does_not_exist_is_not_found(app: RunningApp) -> None:
    alice = await register(app.http)
    with pytest.raises(GraphQLError) as failure:
        await alice.call(
            SEND, input={"body": "hi", "clientMessageId": "x", "recipientId": missing(Kind.USER)}
        )
    assert failure.value.codes == ["NOT_FOUND"]
    assert (await alice.call(INBOX))["conversations"]["edges"] == []


async def test_member_cannot_post_into_someone_elses_conversation(app: RunningApp) -> None:
    alice, bob, mallory = [await register(app.http) for _ in range(3)]
    conversation_id = (await alice.send("private", to=bob))["conversationId"]
    with pytest.raises(GraphQLError) as posting:
        await mallory.send("intrusion", conversation_id=conversation_id)
    with pytest.raises(GraphQLError) as reading:
        await mallory.call(HISTORY, id=conversation_id, first=10)
    with pytest.raises(GraphQLError) as marking:
        await mallory.call(MARK_READ, c=conversation_id, s=1)
    # someone else's conversation is answered like one that does not exist: ids reveal nothing
    assert posting.value.codes == reading.value.codes == marking.value.codes == ["NOT_FOUND"]
    assert await _message_count(alice, conversation_id) == 1


async def test_malformed_ids_are_bad_user_input(app: RunningApp) -> None:
    alice = await register(app.http)
    with pytest.raises(GraphQLError) as failure:
        await alice.call(HISTORY, id="not-a-number", first=1)
    assert failure.value.codes == ["BAD_USER_INPUT"]


async def test_sending_without_a_token_is_unauthenticated(app: RunningApp) -> None:
    alice = await register(app.http)
    anonymous = Account(app.http, "0", "nobody", token="", refresh_token="")
    with pytest.raises(GraphQLError) as failure:
        await anonymous.send("hi", to=alice)
    assert failure.value.codes == ["UNAUTHENTICATED"]


@pytest.mark.smoke
async def test_history_pages_newest_first_with_keyset_cursors(app: RunningApp) -> None:
    # given 7 messages
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("m1", to=bob))["conversationId"]
    for i in range(2, 8):
        await alice.send(f"m{i}", conversation_id=conversation_id)
    # when paging forward 3 at a time
    page1 = (await alice.call(HISTORY, id=conversation_id, first=3))["conversation"]["messages"]
    page2 = (
        await alice.call(HISTORY, id=conversation_id, first=3, after=page1["pageInfo"]["endCursor"])
    )["conversation"]["messages"]
    # a message arriving between pages does not shift the next page
    await bob.send("m8", conversation_id=conversation_id)
    page3 = (
        await alice.call(HISTORY, id=conversation_id, first=3, after=page2["pageInfo"]["endCursor"])
    )["conversation"]["messages"]
    # then
    assert [e["node"]["seq"] for e in page1["edges"]] == [7, 6, 5]
    assert [e["node"]["seq"] for e in page2["edges"]] == [4, 3, 2]
    assert [e["node"]["seq"] for e in page3["edges"]] == [1]
    assert page1["pageInfo"]["hasNextPage"] and page2["pageInfo"]["hasNextPage"]
    assert not page3["pageInfo"]["hasNextPage"]
    # and paging backwards from the oldest end
    oldest = (await alice.call(HISTORY, id=conversation_id, last=2))["conversation"]["messages"]
    assert [e["node"]["seq"] for e in oldest["edges"]] == [2, 1]
    assert oldest["pageInfo"]["hasPreviousPage"] is True
    newer = (
        await alice.call(
            HISTORY, id=conversation_id, last=2, before=oldest["pageInfo"]["startCursor"]
        )
    )["conversation"]["messages"]
    assert [e["node"]["seq"] for e in newer["edges"]] == [4, 3]


@pytest.mark.parametrize(
    "arguments",
    [{"first": 101}, {"last": 101}, {"first": -1}, {"first": 1, "last": 1}, {"after": "garbage!"}],
)
async def test_out_of_range_page_arguments_are_bad_user_input(
    app: RunningApp, arguments: dict[str, object]
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("m1", to=bob))["conversationId"]
    with pytest.raises(GraphQLError) as failure:
        await alice.call(HISTORY, id=conversation_id, **arguments)
    assert failure.value.codes == ["BAD_USER_INPUT"]


def _cursor(*values: object) -> str:
    """A cursor encoded as the server encodes them: base64 of the sort-key values as JSON."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("connection", "cursor"),
    [
        pytest.param("history", _cursor("seven"), id="history-text-seq"),
        pytest.param("history", _cursor(2**70), id="history-seq-beyond-bigint"),
        pytest.param("history", _cursor("\x00"), id="history-nul-seq"),
        pytest.param("history", _cursor(True), id="history-boolean-seq"),
        pytest.param("inbox", _cursor("2025-01-01T00:00:00+00:00", "1"), id="inbox-text-id"),
        pytest.param("inbox", _cursor("2025-01-01T00:00:00+00:00", 2**64), id="inbox-huge-id"),
        pytest.param("inbox", _cursor(1, 1), id="inbox-number-for-time"),
    ],
)
async def test_a_cursor_holding_values_its_columns_cannot_hold_is_bad_user_input(
    app: RunningApp, connection: str, cursor: str
) -> None:
    # Cursors are opaque, but still client input. One holding text or a number beyond 64 bits
    # for an integer column used to reach the database and come back as INTERNAL_SERVER_ERROR;
    # now only the kind of value the server itself puts there is accepted.
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("m1", to=bob))["conversationId"]
    with pytest.raises(GraphQLError) as failure:
        if connection == "history":
            await alice.call(HISTORY, id=conversation_id, first=5, after=cursor)
        else:
            await alice.call(INBOX, first=5, after=cursor)
    assert failure.value.codes == ["BAD_USER_INPUT"]


@pytest.mark.smoke
async def test_inbox_orders_by_latest_activity_and_counts_unread(app: RunningApp) -> None:
    # given alice hears from bob twice, then from carol once
    alice, bob, carol = await register(app.http), await register(app.http), await register(app.http)
    from_bob = await bob.send("b1", to=alice)
    await bob.send("b2", to=alice)
    await carol.send("c1", to=alice)
    # when
    inbox = (await alice.call(INBOX, first=1))["conversations"]
    rest = (await alice.call(INBOX, first=5, after=inbox["pageInfo"]["endCursor"]))["conversations"]
    # then
    assert inbox["edges"][0]["node"]["peer"]["username"] == carol.username
    assert inbox["edges"][0]["node"]["unreadCount"] == 1
    assert inbox["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["peer"]["username"] for e in rest["edges"]] == [bob.username]
    assert rest["edges"][0]["node"]["unreadCount"] == 2
    # and reading clears the count
    await alice.call(MARK_READ, c=from_bob["conversationId"], s=2)
    rest = (await alice.call(INBOX, first=5, after=inbox["pageInfo"]["endCursor"]))["conversations"]
    assert rest["edges"][0]["node"]["unreadCount"] == 0


async def test_receipts_only_move_forward_and_stop_at_the_last_message(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("m1", to=bob))["conversationId"]
    await alice.send("m2", conversation_id=conversation_id)
    delivered = (await bob.call(MARK_DELIVERED, c=conversation_id, s=2))["markDelivered"]
    assert delivered == {"lastReadSeq": 0, "lastDeliveredSeq": 2}
    read = (await bob.call(MARK_READ, c=conversation_id, s=99))["markRead"]
    assert (read["lastReadSeq"], read["lastDeliveredSeq"]) == (2, 2)
    backwards = (await bob.call(MARK_READ, c=conversation_id, s=1))["markRead"]
    assert backwards["lastReadSeq"] == 2
    with pytest.raises(GraphQLError) as failure:
        await bob.call(MARK_READ, c=conversation_id, s=-1)
    assert failure.value.codes == ["BAD_USER_INPUT"]


async def test_messaging_yourself_is_bad_user_input(app: RunningApp) -> None:
    alice = await register(app.http)
    with pytest.raises(GraphQLError) as failure:
        await alice.send("me", to=alice)
    assert failure.value.codes == ["BAD_USER_INPUT"]
