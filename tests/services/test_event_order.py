"""The event log's one order: late commits, per-conversation seq order, cursors, no shared lock.

The log is read only below the oldest running transaction (chatr.infra.event_log), so an
event whose transaction commits late is delivered late, never skipped; one conversation's
sends are serialised before they get a transaction id; sends to different conversations
share no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select, text

from chatr.errors import BadUserInput, ErrorCode
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import StreamItem, drain_log
from chatr.models import EventType
from chatr.services import streams
from tests.support import services
from tests.support.api import Account, register
from tests.support.ids import Kind, global_id, pk
from tests.support.servers import RunningApp

#: The held transaction stays short: every test session on the machine shares the cluster,
#: and its xmin (what every reader waits for) is cluster-wide.
HOLD_SECONDS = 1.0

CREATE_GROUP = """
mutation Create($input: CreateGroupInput!) { createGroup(input: $input) { id } }
"""


async def _collect(stream: AsyncIterator[StreamItem], into: list[LoggedEvent]) -> None:
    async for item in stream:
        if isinstance(item, LoggedEvent):
            into.append(item)


async def _until(condition: object, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def _group(owner: Account) -> str:
    created = await owner.call(CREATE_GROUP, input={"name": "Ordered"})
    return str(created["createGroup"]["id"])


async def _replay(app: RunningApp, viewer_id: int) -> list[LoggedEvent]:
    """The viewer's whole log, as a replay from the start reads it now."""

    async def read(after: int) -> list[LoggedEvent]:
        async with app.runtime.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_user(connection, viewer_id=viewer_id, after=after)

    return [event async for event in drain_log(read, 0)]


async def _all_events(app: RunningApp, viewer_id: int) -> list[LoggedEvent]:
    """The replay once everything committed so far is below the horizon (transactions of
    other sessions on the cluster hold it back for a moment)."""
    async with app.runtime.db.autocommit_engine.connect() as connection:
        start = await event_log.starting_point(connection)
        async with asyncio.timeout(10):
            while await event_log.current_position(connection) < start.settled:
                await asyncio.sleep(0.01)
    return await _replay(app, viewer_id)


async def test_an_event_that_commits_late_is_delivered_not_skipped(app: RunningApp) -> None:
    # given alice following all her conversations live, from now
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    with_bob = pk((await bob.send("hi", to=alice))["conversationId"])
    with_carol = (await carol.send("hi", to=alice))["conversationId"]
    received: list[LoggedEvent] = []
    stream = streams.user_events(app.runtime, viewer_id=pk(alice.id), after=None)
    collecting = asyncio.create_task(_collect(stream, received))
    try:
        await app.until_live(1)
        # when a transaction logs an event in bob's conversation and holds its commit
        async with app.runtime.db.engine.connect() as held:
            await held.begin()
            late = await event_log.append(
                held,
                type=EventType.RECEIPT_UPDATED,
                conversation_id=with_bob,
                actor_id=pk(bob.id),
                seq=1,
                data={"lastReadSeq": 1, "lastDeliveredSeq": 1},
            )
            # while later transactions commit and announce theirs
            for body in ("c1", "c2", "c3"):
                await carol.send(body, conversation_id=with_carol)
            await asyncio.sleep(HOLD_SECONDS)
            # then no reader has gone past it: nothing after it was delivered or replayed
            assert received == []
            assert [e.id for e in await _replay(app, pk(alice.id)) if e.id >= late] == []
            await held.commit()
        # and once it commits (unannounced: the hub reads again while the horizon lags),
        # it arrives first, then the later ones, each once
        await _until(lambda: len(received) >= 4)
        await asyncio.sleep(0.2)
        assert received[0].id == late
        assert [e.message.body for e in received[1:] if e.message] == ["c1", "c2", "c3"]
        assert len(received) == 4
        # and a replay from before it agrees on that order
        replayed = [e.id for e in await _all_events(app, pk(alice.id))]
        assert replayed[-4:] == [e.id for e in received]
    finally:
        collecting.cancel()
        await asyncio.gather(collecting, return_exceptions=True)


@pytest.mark.smoke
async def test_concurrent_sends_to_one_conversation_are_logged_in_seq_order(
    app: RunningApp,
) -> None:
    # given a group whose owner sends 40 messages at once
    owner = await register(app.http)
    group = await _group(owner)
    await asyncio.gather(*(owner.send(f"m{i}", conversation_id=group) for i in range(40)))
    # then the log's order of the group's messages is their seq order, without gaps
    seqs = [
        e.seq for e in await _all_events(app, pk(owner.id)) if e.type == EventType.MESSAGE_POSTED
    ]
    assert seqs == list(range(1, 42))  # the creation's SYSTEM message is seq 1


async def test_a_send_does_not_wait_for_another_conversations_commit(app: RunningApp) -> None:
    # given a transaction that logged an event in one conversation and has not committed
    alice = await register(app.http)
    first = await _group(alice)
    second = await _group(alice)
    async with app.runtime.db.engine.connect() as held:
        await held.begin()
        await held.execute(select(event_log.serialised(pk(first))))
        await event_log.append(
            held,
            type=EventType.RECEIPT_UPDATED,
            conversation_id=pk(first),
            actor_id=pk(alice.id),
            seq=1,
            data={"lastReadSeq": 1, "lastDeliveredSeq": 1},
        )
        # when a message goes to another conversation, it is stored without waiting
        sent = await asyncio.wait_for(alice.send("free", conversation_id=second), HOLD_SECONDS)
        assert sent["seq"] == 2
        # while one to the held conversation waits for it (its seqs stay in order)
        waiting = asyncio.ensure_future(alice.send("queued", conversation_id=first))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await held.rollback()
    assert (await waiting)["seq"] == 2


async def test_a_cursor_from_before_the_new_order_resumes_at_the_same_event(
    app: RunningApp,
) -> None:
    # given events logged before migration 0002: xid 0, their old ids
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("new 1", to=alice))["conversationId"])
    old_id = 10**12
    async with app.runtime.db.engine.begin() as connection:
        for offset in (1, 2):
            await connection.execute(
                text(
                    "INSERT INTO events (id, xid, type, conversation_id, actor_id, seq, data, "
                    "created_at) VALUES (:id, 0, 'RECEIPT_UPDATED', :c, :a, 1, NULL, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"id": old_id + offset, "c": conversation_id, "a": pk(bob.id)},
            )
    await bob.send("new 2", conversation_id=global_id(Kind.CONVERSATION, conversation_id))
    # when alice resumes with the plain id cursor she was given for the first one
    stream = streams.user_events(
        app.runtime,
        viewer_id=pk(alice.id),
        after=event_log.position_from_cursor(str(old_id + 1), field="after"),
    )
    items = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    # then she gets the second old event, then everything logged since, in that order
    assert all(isinstance(item, LoggedEvent) for item in items)
    events: list[LoggedEvent] = items  # type: ignore[assignment]
    assert event_log.split_position(events[0].id) == (0, old_id + 2)
    assert [e.message.body for e in events[1:] if e.message] == ["new 1", "new 2"]


@pytest.mark.parametrize("cursor", ["abc", "-1", str(1 << 127), str(1 << 63)])
def test_a_cursor_that_is_no_position_is_bad_user_input(cursor: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        event_log.position_from_cursor(cursor, field="after")
    assert refused.value.code is ErrorCode.BAD_USER_INPUT


def test_a_position_keeps_its_transaction_and_event_id() -> None:
    position = event_log.position_of(5_000_000_000, 42)
    assert event_log.split_position(position) == (5_000_000_000, 42)
    assert event_log.position_from_cursor(event_log.cursor_of(position), field="after") == position
    # transaction order first, then id order within a transaction
    assert event_log.position_of(7, 1) > event_log.position_of(6, 10**12)


async def test_a_transaction_in_another_database_does_not_hold_back_the_log(
    app: RunningApp,
) -> None:
    # given a transaction with an xid, open in another database of the same cluster
    other = await asyncpg.connect(services.POSTGRES_ADMIN_URL)
    transaction = other.transaction()
    await transaction.start()
    try:
        await other.fetchval("SELECT pg_current_xact_id()")
        # when a message is sent here meanwhile
        alice, bob = await register(app.http), await register(app.http)
        await bob.send("not held back", to=alice)
        # then the log here becomes final past it while that transaction is still open
        events = await _all_events(app, pk(alice.id))
        assert [e.message.body for e in events if e.message] == ["not held back"]
        assert not other.is_closed() and other.is_in_transaction()
    finally:
        await transaction.rollback()
        await other.close()
