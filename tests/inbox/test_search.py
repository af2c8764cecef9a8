"""Message search: my conversations only, ranked, highlighted, paged, and never what is gone.

The smoke tests run on PostgreSQL (tsvector + GIN) and on the embedded default (FTS5 kept in
step by triggers): the same words find the same messages on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from chatr.models import Message, MessageHidden, MessageKind
from tests.groups.helpers import ACCEPT, LEAVE, create_group
from tests.support.api import Account, graphql, register
from tests.support.ids import Kind, missing, pk
from tests.support.servers import RunningApp

SEARCH = """
query Search($q: String!, $c: ID, $s: ID, $since: DateTime, $until: DateTime,
             $first: Int, $after: String) {
  searchMessages(query: $q, conversationId: $c, senderId: $s, since: $since, until: $until,
                 first: $first, after: $after) {
    edges { cursor node { rank snippet highlights { start end }
                          message { id seq body conversationId sender { id } } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def _bodies(account: Account, query: str, **filters: Any) -> list[str]:
    found = (await account.call(SEARCH, q=query, **filters))["searchMessages"]
    return [edge["node"]["message"]["body"] for edge in found["edges"]]


async def _codes(account: Account, query: str, **variables: Any) -> list[str]:
    body = await graphql(account.http, SEARCH, {"q": query, **variables}, token=account.token)
    assert body.get("data") in (None, {"searchMessages": None}), body
    return [error["extensions"]["code"] for error in body["errors"]]


@pytest.mark.smoke
async def test_search_finds_my_messages_best_first_with_the_words_highlighted(
    app: RunningApp,
) -> None:
    # given a conversation where one message says "pizza" three times and another once
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("shall we get pizza tonight", to=bob))["conversationId"]
    await bob.send("pizza pizza pizza, always pizza", conversation_id=conversation_id)
    await bob.send("or sushi", conversation_id=conversation_id)
    # when bob searches for it
    found = (await bob.call(SEARCH, q="Pizza"))["searchMessages"]
    # then both pizza messages come back, the one saying it most first, sushi not at all
    hits = [edge["node"] for edge in found["edges"]]
    assert [hit["message"]["body"] for hit in hits] == [
        "pizza pizza pizza, always pizza",
        "shall we get pizza tonight",
    ]
    assert hits[0]["rank"] > hits[1]["rank"] > 0
    # and each snippet marks exactly the matched word, as plain text ranges
    for hit in hits:
        marked = {hit["snippet"][r["start"] : r["end"]] for r in hit["highlights"]}
        assert marked == {"pizza"}, hit
    assert hits[1]["snippet"] == "shall we get pizza tonight"
    assert found["pageInfo"]["hasNextPage"] is False


@pytest.mark.smoke
async def test_every_word_must_occur_and_pages_follow_the_cursor(app: RunningApp) -> None:
    # given five messages with "blue whale" and others with only one of the words
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("a blue sky", to=bob))["conversationId"]
    for number in range(5):
        await alice.send(f"blue whale number {number}", conversation_id=conversation_id)
    await alice.send("a whale of a time", conversation_id=conversation_id)
    # when bob pages through "whale blue" two at a time
    seen: list[str] = []
    after = None
    while True:
        page = (await bob.call(SEARCH, q="whale blue", first=2, after=after))["searchMessages"]
        seen += [edge["node"]["message"]["body"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then he sees each of the five exactly once (equal rank: newest first), nothing else
    assert seen == [f"blue whale number {n}" for n in (4, 3, 2, 1, 0)]


async def test_search_never_reaches_conversations_i_am_not_in(app: RunningApp) -> None:
    # given alice and bob's conversation, and mallory who is in none of it
    alice, bob, mallory = [await register(app.http) for _ in range(3)]
    conversation_id = (await alice.send("the vault code is 1234", to=bob))["conversationId"]
    await mallory.send("what is the vault code", to=alice)
    # when mallory searches, also naming their conversation and alice as the sender
    # then she finds only her own message, and naming their conversation is NOT_FOUND
    assert await _bodies(mallory, "vault code") == ["what is the vault code"]
    assert await _bodies(mallory, "vault", s=alice.id) == []
    assert await _codes(mallory, "vault", c=conversation_id) == ["NOT_FOUND"]
    assert await _codes(mallory, "vault", c=missing(Kind.CONVERSATION)) == ["NOT_FOUND"]


async def test_a_former_member_finds_nothing_of_the_group_they_left(app: RunningApp) -> None:
    # given frank, who posted in alice's group and then left
    alice, frank = await register(app.http), await register(app.http)
    group_id = (await create_group(alice, invitees=[frank]))["id"]
    await frank.call(ACCEPT, c=group_id)
    await frank.send("my secret recipe", conversation_id=group_id)
    await alice.send("the secret is out", conversation_id=group_id)
    await frank.call(LEAVE, c=group_id)
    # then he finds none of it, not even his own message, and the group is NOT_FOUND to him
    assert await _bodies(frank, "secret") == []
    assert await _codes(frank, "secret", c=group_id) == ["NOT_FOUND"]
    # while alice, still in it, finds both
    assert sorted(await _bodies(alice, "secret")) == ["my secret recipe", "the secret is out"]


async def test_filters_narrow_by_conversation_sender_and_time(app: RunningApp) -> None:
    # given "lunch" in two conversations, from different senders
    alice, bob, carol = await register(app.http), await register(app.http), await register(app.http)
    with_bob = (await alice.send("lunch at noon", to=bob))["conversationId"]
    await bob.send("lunch sounds good", conversation_id=with_bob)
    with_carol = (await carol.send("lunch tomorrow?", to=alice))["conversationId"]
    now = datetime.now(UTC)
    # then each filter keeps exactly its part
    assert sorted(await _bodies(alice, "lunch")) == [
        "lunch at noon",
        "lunch sounds good",
        "lunch tomorrow?",
    ]
    assert sorted(await _bodies(alice, "lunch", c=with_bob)) == [
        "lunch at noon",
        "lunch sounds good",
    ]
    assert await _bodies(alice, "lunch", c=with_carol) == ["lunch tomorrow?"]
    assert await _bodies(alice, "lunch", s=bob.id) == ["lunch sounds good"]
    assert await _bodies(alice, "lunch", since=(now + timedelta(minutes=1)).isoformat()) == []
    assert len(await _bodies(alice, "lunch", until=(now + timedelta(minutes=1)).isoformat())) == 3
    assert await _bodies(alice, "lunch", until=(now - timedelta(hours=1)).isoformat()) == []
    later, earlier = now + timedelta(minutes=1), now - timedelta(minutes=1)
    codes = await _codes(alice, "lunch", since=later.isoformat(), until=earlier.isoformat())
    assert codes == ["BAD_USER_INPUT"]


@pytest.mark.smoke
async def test_a_search_needs_at_least_one_word(app: RunningApp) -> None:
    alice = await register(app.http)
    assert await _codes(alice, "  !?  ") == ["BAD_USER_INPUT"]
    assert await _codes(alice, "word " * 100) == ["BAD_USER_INPUT"]
    # operators are plain text: nothing is parsed as FTS5 or tsquery syntax
    assert await _bodies(alice, 'NEAR("a" OR b) -c * ^d') == []


async def _set(app: RunningApp, message_id: str, **values: Any) -> None:
    async with app.runtime.db.session() as session, session.begin():
        await session.execute(update(Message).where(Message.id == pk(message_id)).values(**values))


@pytest.mark.smoke
async def test_the_index_follows_edits_and_never_finds_unsent_hidden_or_encrypted_messages(
    app: RunningApp,
) -> None:
    # given four messages with "kiwi"
    alice, bob = await register(app.http), await register(app.http)
    edited = await alice.send("kiwi for breakfast", to=bob)
    conversation_id = edited["conversationId"]
    unsent = await alice.send("kiwi is my password", conversation_id=conversation_id)
    hidden = await bob.send("kiwi again", conversation_id=conversation_id)
    encrypted = await bob.send("kiwi ciphertext", conversation_id=conversation_id)
    # when one is edited, one unsent, one hidden by bob for himself, one marked encrypted
    # (the rows as the edit, unsend and delete-for-me services leave them)
    await _set(app, edited["id"], body="mango for breakfast", edited_at=datetime.now(UTC))
    await _set(app, unsent["id"], body=None, deleted_at=datetime.now(UTC))
    await _set(app, encrypted["id"], kind=MessageKind.ENCRYPTED)
    async with app.runtime.db.session() as session, session.begin():
        session.add(MessageHidden(message_id=pk(hidden["id"]), user_id=pk(bob.id)))
    # then none of them is found by kiwi; the edit is found by its new word
    assert await _bodies(bob, "kiwi") == []
    assert await _bodies(bob, "mango") == ["mango for breakfast"]
    # and alice, who did not hide "kiwi again", still finds it
    assert await _bodies(alice, "kiwi") == ["kiwi again"]
    # and nothing of the unsent text is left in the search index either
    await _assert_not_indexed(app, "password")


async def _assert_not_indexed(app: RunningApp, word: str) -> None:
    async with app.runtime.db.session() as session:
        if app.runtime.db.is_sqlite:
            # FTS5's own check: the index matches the rows it was built from (an update that
            # removed the old text with the wrong values would fail it as "malformed")
            await session.execute(
                text("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
            )
            count = await session.scalar(
                text("SELECT count(*) FROM message_search WHERE message_search MATCH :w"),
                {"w": f'"{word}"'},
            )
        else:
            count = await session.scalar(
                text(
                    "SELECT count(*) FROM messages "
                    "WHERE search_vector @@ plainto_tsquery('simple', :w)"
                ),
                {"w": word},
            )
    assert count == 0


async def test_a_guest_cannot_search(app: RunningApp) -> None:
    # searching is not among the support widget's operations
    start = """
    mutation Start($input: GuestSessionInput!) { startGuestSession(input: $input) { accessToken } }
    """
    guest = {"name": "Visitor", "email": "v@example.com", "pageContext": "/pricing"}
    started = await graphql(app.http, start, {"input": guest})
    token = started["data"]["startGuestSession"]["accessToken"]
    body = await graphql(app.http, SEARCH, {"q": "hello"}, token=token)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert body.get("data") is None
