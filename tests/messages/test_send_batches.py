"""Sends that queue together share one statement (chatr.services.send_statements): each keeps
its own rules and its own answer, and none waits for a busy conversation it shares a batch
with."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, text

from chatr.db import ConnectionLost
from chatr.infra import event_log
from chatr.infra.precompiled import Precompiled
from chatr.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Event,
    EventType,
    Membership,
    Message,
)
from chatr.models.base import utcnow
from chatr.services import send_statements
from chatr.services.send_statements import (
    AlreadySent,
    NotPostable,
    StoredMessage,
    Unwritten,
    Written,
)
from chatr.settings import Settings
from tests.groups.helpers import CREATE_GROUP
from tests.support.api import BLOCK_USER, Account, register
from tests.support.ids import Kind, global_id, pk
from tests.support.servers import RunningApp, in_process_app

#: How long a test lets a conversation's lock stay held: a batch must not wait for it.
HOLD_SECONDS = 1.0

_keys = itertools.count()


async def _group(owner: Account) -> int:
    created = await owner.call(CREATE_GROUP, input={"name": "Batched"})
    return pk(created["createGroup"]["id"])


async def _owned_groups(app: RunningApp, count: int) -> list[tuple[Account, int]]:
    owners = [await register(app.http) for _ in range(count)]
    return [(owner, await _group(owner)) for owner in owners]


def _stored(sender: Account, conversation_id: int, body: str, **extra: Any) -> StoredMessage:
    key = extra.pop("client_id", f"batch-{next(_keys)}")
    return StoredMessage(conversation_id, pk(sender.id), key, body, utcnow(), **extra)


async def _store_all(app: RunningApp, sends: list[StoredMessage]) -> list[Written | Exception]:
    return await send_statements.store_all(app.runtime.db.autocommit_engine, sends)


async def _last_seq(app: RunningApp, conversation_id: int) -> int:
    async with app.runtime.db.reader() as session:
        seq = await session.scalar(
            text("SELECT last_seq FROM conversations WHERE id = :id"), {"id": conversation_id}
        )
    return int(seq)


async def test_a_batch_writes_each_send_as_its_own_statement_would_in_one_transaction(
    app: RunningApp,
) -> None:
    # given three groups, one of them with a message to reply to
    (alice, first), (bob, second), (carol, third) = await _owned_groups(app, 3)
    engine = app.runtime.db.autocommit_engine
    quoted = await send_statements.store_one(engine, _stored(bob, second, "quoted"))
    snapshot = {"messageId": "m", "excerpt": "quoted"}
    sends = [
        _stored(alice, first, "one"),
        _stored(bob, second, "two", reply_to_id=quoted.message_id, reply_snapshot=snapshot),
        _stored(carol, third, "three", forwarded=True),
    ]

    # when they go in one batch
    outcomes = await _store_all(app, sends)

    # then each is written at its conversation's next seq
    assert all(isinstance(outcome, Written) for outcome in outcomes)
    written = [outcome for outcome in outcomes if isinstance(outcome, Written)]
    assert [w.seq for w in written] == [2, 3, 2]  # (seq 1: the creation; 2 in bob's: quoted)
    async with app.runtime.db.reader() as session:
        messages = {
            m.id: m
            for m in await session.scalars(
                select(Message).where(Message.id.in_([w.message_id for w in written]))
            )
        }
        events = {
            e.message_id: e
            for e in await session.scalars(
                select(Event).where(Event.message_id.in_([w.message_id for w in written]))
            )
        }
        marks = {
            (m.conversation_id, m.user_id): m.last_read_seq
            for m in await session.scalars(select(Membership))
        }
    for stored, w in zip(sends, written, strict=True):
        message = messages[w.message_id]
        assert (message.conversation_id, message.seq, message.sender_id) == (
            stored.conversation_id,
            w.seq,
            stored.sender_id,
        )
        assert (message.body, message.client_id, message.created_at) == (
            stored.body,
            stored.client_id,
            stored.now,
        )
        assert (message.reply_to_id, message.reply_snapshot, message.forwarded) == (
            stored.reply_to_id,
            stored.reply_snapshot,
            stored.forwarded,
        )
        event = events[w.message_id]
        assert (event.type, event.conversation_id, event.seq, event.actor_id) == (
            EventType.MESSAGE_POSTED,
            stored.conversation_id,
            w.seq,
            stored.sender_id,
        )
        assert event_log.position_of(event.xid, event.id) == w.position
        assert marks[(stored.conversation_id, stored.sender_id)] == w.seq
        assert await _last_seq(app, stored.conversation_id) == w.seq
    # and all of them in one transaction
    assert len({events[w.message_id].xid for w in written}) == 1


async def test_a_send_that_may_not_post_is_left_out_of_its_batch_and_refused_alone(
    app: RunningApp,
) -> None:
    (alice, first), (_bob, second) = await _owned_groups(app, 2)
    dave = await register(app.http)

    outcomes = await _store_all(
        app, [_stored(alice, first, "member"), _stored(dave, second, "intruder")]
    )

    assert isinstance(outcomes[0], Written) and outcomes[0].seq == 2
    assert isinstance(outcomes[1], Unwritten)
    assert await _last_seq(app, second) == 1
    with pytest.raises(NotPostable):
        await send_statements.store_one(
            app.runtime.db.autocommit_engine, _stored(dave, second, "intruder")
        )
    assert await _last_seq(app, second) == 1


async def test_a_client_id_used_again_fails_the_batch_without_a_gap_and_alone_finds_it_used(
    app: RunningApp,
) -> None:
    (alice, first), (bob, second) = await _owned_groups(app, 2)
    engine = app.runtime.db.autocommit_engine
    await send_statements.store_one(engine, _stored(alice, first, "hi", client_id="k1"))

    retried = _stored(alice, first, "hi", client_id="k1")
    fresh = _stored(bob, second, "fresh")
    outcomes = await _store_all(app, [retried, fresh])

    # the statement aborted as a whole: nothing written, no seq taken
    assert all(isinstance(outcome, Unwritten) for outcome in outcomes)
    assert (await _last_seq(app, first), await _last_seq(app, second)) == (2, 1)
    # and each, sent again alone, gets its own answer
    with pytest.raises(AlreadySent):
        await send_statements.store_one(engine, retried)
    assert (await send_statements.store_one(engine, fresh)).seq == 2


@pytest.fixture
async def held_lock(app: RunningApp) -> AsyncIterator[Any]:
    """A transaction of its own that can take a conversation's seq lock and hold it."""
    async with app.runtime.db.engine.connect() as connection:
        await connection.begin()
        yield connection
        await connection.rollback()


async def test_a_send_to_a_busy_conversation_is_left_out_without_holding_up_its_batch(
    app: RunningApp, held_lock: Any
) -> None:
    (alice, busy), (bob, free) = await _owned_groups(app, 2)
    await held_lock.execute(select(event_log.serialised(busy)))

    batched = await asyncio.wait_for(
        _store_all(app, [_stored(alice, busy, "waits"), _stored(bob, free, "goes")]),
        HOLD_SECONDS,
    )
    alone = await asyncio.wait_for(_store_all(app, [_stored(alice, busy, "waits")]), HOLD_SECONDS)

    assert isinstance(batched[0], Unwritten) and isinstance(batched[1], Written)
    assert isinstance(alone[0], Unwritten)
    assert await _last_seq(app, busy) == 1
    # while sent on its own it waits for the lock, then takes the next seq
    waiting = asyncio.ensure_future(
        send_statements.store_one(app.runtime.db.autocommit_engine, _stored(alice, busy, "w"))
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await held_lock.rollback()
    assert (await waiting).seq == 2


async def test_a_reply_in_a_batch_accepts_a_message_request_and_a_block_refuses_a_send(
    app: RunningApp,
) -> None:
    alice, bob, carol, erin = [await register(app.http) for _ in range(4)]
    request = pk((await alice.send("hi", to=bob))["conversationId"])
    blocked = pk((await carol.send("hi", to=erin))["conversationId"])
    await erin.call(BLOCK_USER, u=carol.id)

    outcomes = await _store_all(
        app, [_stored(bob, request, "yes"), _stored(carol, blocked, "again")]
    )

    assert isinstance(outcomes[0], Written) and isinstance(outcomes[1], Unwritten)
    async with app.runtime.db.reader() as session:
        status = await session.scalar(
            text("SELECT status FROM conversations WHERE id = :id"), {"id": request}
        )
    assert status == ConversationStatus.ACTIVE
    assert await _last_seq(app, blocked) == 1


async def test_a_send_that_mentions_someone_is_never_batched(app: RunningApp) -> None:
    (alice, first), (bob, second) = await _owned_groups(app, 2)
    with pytest.raises(ValueError):
        await _store_all(
            app,
            [
                _stored(alice, first, "@bob", mention_ids=(pk(bob.id),)),
                _stored(bob, second, "plain"),
            ],
        )
    assert (await _last_seq(app, first), await _last_seq(app, second)) == (1, 1)


@pytest.fixture
async def one_slot_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    """An app that runs one send statement at a time: whatever arrives meanwhile queues."""
    async with in_process_app(settings.with_overrides(send_batch_concurrency=1)) as running:
        yield running


async def test_sends_that_arrive_together_share_statements_and_keep_every_seq_in_order(
    one_slot_app: RunningApp,
) -> None:
    # given eight groups whose owners each send six messages, one after another, all at once
    app = one_slot_app
    groups = await _owned_groups(app, 8)
    sends = app.runtime.sends
    before = (sends.batches, sends.items)

    async def six(owner: Account, conversation_id: int) -> list[int]:
        group = global_id(Kind.CONVERSATION, conversation_id)
        return [(await owner.send(f"m{n}", conversation_id=group))["seq"] for n in range(6)]

    answered = await asyncio.gather(*(six(owner, c) for owner, c in groups))

    # then every send was answered with its conversation's next seq, in order
    assert answered == [[2, 3, 4, 5, 6, 7]] * 8
    # and fewer statements than sends ran
    batches, items = sends.batches - before[0], sends.items - before[1]
    assert items == 48
    assert batches < items
    # and the log holds each message once, in seq order per conversation
    async with app.runtime.db.reader() as session:
        rows = (
            await session.execute(
                select(Event.conversation_id, Event.seq)
                .where(Event.type == EventType.MESSAGE_POSTED)
                .order_by(Event.xid, Event.id)
            )
        ).all()
    for _, conversation_id in groups:
        assert [seq for c, seq in rows if c == conversation_id] == [1, 2, 3, 4, 5, 6, 7]


async def test_a_batch_whose_connection_is_lost_leaves_every_send_to_be_sent_again_alone(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a batch statement whose connection closes under it (it may have committed)
    (alice, first), (bob, second) = await _owned_groups(app, 2)

    async def lost(*_: Any) -> list[Any]:
        raise ConnectionLost("the database connection closed under a statement")

    monkeypatch.setattr(send_statements.precompiled, "fetch_rows", lost)
    sends = [_stored(alice, first, "one"), _stored(bob, second, "two")]

    outcomes = await _store_all(app, sends)

    # then no send is answered from it: each goes again on its own, and finds its way
    assert all(isinstance(outcome, Unwritten) for outcome in outcomes)
    monkeypatch.undo()
    engine = app.runtime.db.autocommit_engine
    assert [(await send_statements.store_one(engine, s)).seq for s in sends] == [2, 2]


#: Conversations in the table when the batch's plan is checked: enough that reading them all
#: costs the planner more than fetching the batch's own by primary key.
_TABLE_SIZE = 1_000


async def test_a_batch_finds_its_conversations_by_primary_key_in_its_generic_plan(
    app: RunningApp,
) -> None:
    # given four groups among a thousand conversations, and the planner's statistics
    groups = await _owned_groups(app, 4)
    async with app.runtime.db.session() as session:
        session.add_all(
            Conversation(kind=ConversationKind.GROUP, name=f"Other {number}")
            for number in range(_TABLE_SIZE - len(groups))
        )
        await session.commit()
    engine = app.runtime.db.autocommit_engine
    statement = Precompiled(send_statements.send_batch_statement(), engine.dialect)
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            await driver.execute("ANALYZE conversations")
            # (the plan a prepared statement settles on after its first five runs)
            await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            scans_before = await _sequential_scans_of_conversations(driver)

            # when the batch statement runs, prepared, again and again
            for round_ in range(3):
                sends = [_stored(owner, group, f"round {round_}") for owner, group in groups]
                arguments = statement.arguments(send_statements._batch_parameters(sends))
                assert len(await driver.fetch(statement.sql, *arguments)) == len(sends)

            # then it never read the whole table
            assert await _sequential_scans_of_conversations(driver) == scans_before


async def _sequential_scans_of_conversations(driver: Any) -> int:
    """The sequential scans of `conversations` in this connection's transaction so far."""
    scans = await driver.fetchval(
        "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'conversations'"
    )
    return int(scans or 0)
