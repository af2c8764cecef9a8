"""DataLoaders keep deep queries at a fixed number of SQL statements (no N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tests.support.api import register
from tests.support.servers import RunningApp

DEEP_INBOX = """
{ conversations(first: 50) { edges { node {
    id unreadCount peer { username }
    lastMessage { body sender { username } conversation { id } }
    members { lastReadSeq user { username } }
    messages(first: 10) { edges { node { body sender { username } } } }
} } } }
"""


@contextmanager
def count_statements(app: RunningApp) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = app.runtime.db.engine.sync_engine

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _inbox_statements(app: RunningApp, conversations: int) -> int:
    alice = await register(app.http)
    for _ in range(conversations):
        friend = await register(app.http)
        await friend.send("hello", to=alice)
        await alice.send("hi", to=friend)
    with count_statements(app) as statements:
        response = await alice.call(DEEP_INBOX)
    assert len(response["conversations"]["edges"]) == conversations
    return len(statements)


async def test_deep_inbox_query_costs_the_same_for_two_or_eight_conversations(
    app: RunningApp,
) -> None:
    small = await _inbox_statements(app, 2)
    large = await _inbox_statements(app, 8)
    # Per-conversation `messages` pages are one query each (a keyset page cannot be batched);
    # everything else is batched. Where batches split depends on event-loop ticks, so the
    # bound is "at most one statement per extra conversation": any N+1 field would add >= 6.
    assert large - small <= 6
    assert large <= 8 + 12
