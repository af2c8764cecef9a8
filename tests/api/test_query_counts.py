"""DataLoaders keep deep queries at a fixed number of SQL statements (no N+1)."""

from __future__ import annotations

from tests.support.api import register
from tests.support.servers import RunningApp
from tests.support.statements import recorded_statements

DEEP_INBOX = """
{ conversations(first: 50) { edges { node {
    id unreadCount peer { username }
    lastMessage { body sender { username } conversation { id } }
    members { lastReadSeq user { username } }
    messages(first: 10) { edges { node { body sender { username } } } }
} } } }
"""


async def _inbox_statements(app: RunningApp, conversations: int) -> int:
    alice = await register(app.http)
    for _ in range(conversations):
        friend = await register(app.http)
        await friend.send("hello", to=alice)
        await alice.send("hi", to=friend)
    async with recorded_statements(app) as statements:
        response = await alice.call(DEEP_INBOX)
    assert len(response["conversations"]["edges"]) == conversations
    return len(statements)


async def test_deep_inbox_query_costs_the_same_for_two_or_twelve_conversations(
    app: RunningApp,
) -> None:
    small = await _inbox_statements(app, 2)
    large = await _inbox_statements(app, 12)
    # Per-conversation `messages` pages are one query each (a keyset page cannot be batched),
    # so ten extra conversations cost ten statements; everything else is batched. Where a batch
    # splits depends on event-loop ticks (a loaded machine split one in CI), so a few splits are
    # allowed; any N+1 field would add ten more and still fail.
    assert large - small <= 10 + 4
    assert large <= 12 + 12


RICH_HISTORY = """
query History($id: ID!, $first: Int!) {
  conversation(id: $id) {
    messages(first: $first) { edges { node {
      body editedAt deletedAt forwarded pinnedAt starred
      sender { username } deletedBy { username } pinnedBy { username }
      reactions { emoji count reactedByMe reactors { username } }
      replyTo { messageId excerpt senderName deleted sender { username } }
      mentions { username }
      editHistory { body editor { username } }
    } } }
  }
}
"""
REACT = "mutation R($m: ID!, $e: String!) { reactToMessage(messageId: $m, emoji: $e) { id } }"
CREATE_GROUP = "mutation C($input: CreateGroupInput!) { createGroup(input: $input) { id } }"
ACCEPT = "mutation A($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }"
REPLY = "mutation S($input: SendMessageInput!) { sendMessage(input: $input) { id } }"


async def test_rich_history_costs_the_same_for_ten_or_fifty_messages(app: RunningApp) -> None:
    # given a group where each of 50 messages mentions two members, quotes the one before
    # and has reactions from two people
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    invitees = [bob.id, carol.id]
    group_id = (await alice.call(CREATE_GROUP, input={"name": "g", "inviteeIds": invitees}))[
        "createGroup"
    ]["id"]
    for member in (bob, carol):
        await member.call(ACCEPT, c=group_id)
    previous = None
    for n in range(50):
        sent = await alice.call(
            REPLY,
            input={
                "body": f"@{bob.username} @{carol.username} point {n}",
                "conversationId": group_id,
                "clientMessageId": f"rich-{n}",
                "replyToId": previous,
            },
        )
        previous = sent["sendMessage"]["id"]
        await bob.call(REACT, m=previous, e="👍")
        await carol.call(REACT, m=previous, e="🎉")

    async def statements(first: int) -> int:
        async with recorded_statements(app) as found:
            page = await bob.call(RICH_HISTORY, id=group_id, first=first)
        nodes = [edge["node"] for edge in page["conversation"]["messages"]["edges"]]
        assert len(nodes) == first
        assert all(len(node["mentions"]) == 2 and len(node["reactions"]) == 2 for node in nodes)
        quotes = [node["replyTo"] for node in nodes if node["replyTo"] is not None]
        assert len(quotes) >= first - 1  # the very first message quotes nothing
        assert {quote["senderName"] for quote in quotes} == {alice.username}
        return len(found)

    # when bob reads a page of 10, then of 50: the same number of statements (no N+1)
    small, large = await statements(10), await statements(50)
    print(f"rich history: {small} statements for 10 messages, {large} for 50")
    assert small == large
    assert large <= 10
