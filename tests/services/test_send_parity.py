"""The two send paths store the same rows.

On PostgreSQL a send is one statement (one round trip); on SQLite it is the same steps as
separate statements in one transaction. Both are built from the same Core fragments, and this
test holds them to it: the same conversation of sends, retries and refusals, played through
GraphQL on an app of each backend, must leave identical messages, events, conversations
(`last_seq`, PENDING -> ACTIVE) and membership read marks, and get identical answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from chatr import migrations
from chatr.models import Conversation, Event, Membership, Message, User
from chatr.settings import Settings
from tests.groups.helpers import ACCEPT, CREATE_GROUP
from tests.support.api import BLOCK_USER, SEND, Account, GraphQLError, register
from tests.support.ids import Kind, global_id
from tests.support.servers import RunningApp, in_process_app
from tests.support.statements import recorded_statements

SEND_SEQ_ONLY = "mutation S($input: SendMessageInput!) { sendMessage(input: $input) { seq } }"
Step = Callable[[dict[str, Account], dict[str, str]], Awaitable[dict[str, Any]]]


@pytest.fixture
async def embedded_app(settings: Settings, tmp_path: Path) -> AsyncIterator[RunningApp]:
    """The embedded default (SQLite, in-memory broker) on a database of its own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'parity.db'}"
    await asyncio.to_thread(migrations.upgrade, url)
    async with in_process_app(
        settings.with_overrides(database_url=url, broker_url="memory://")
    ) as running:
        yield running


def _send(
    sender: str, body: str, key: str, *, to: str | None = None, into: str | None = None
) -> Step:
    """A step: `sender` sends `body` under `key`, to a person or into a named conversation."""

    async def step(people: dict[str, Account], conversations: dict[str, str]) -> dict[str, Any]:
        target = (
            {"recipientId": people[to].id}
            if to is not None
            else {"conversationId": conversations[str(into)]}
        )
        message_input = {"body": body, "clientMessageId": key, **target}
        sent = (await people[sender].call(SEND, input=message_input))["sendMessage"]
        return {"seq": sent["seq"], "body": sent["body"], "key": sent["clientMessageId"]}

    return step


async def _alice_makes_a_group_with_carol(
    people: dict[str, Account], conversations: dict[str, str]
) -> dict[str, Any]:
    group_input = {"name": "Team", "inviteeIds": [people["carol"].id]}
    group = (await people["alice"].call(CREATE_GROUP, input=group_input))["createGroup"]
    conversations["group"] = group["id"]
    await people["carol"].call(ACCEPT, c=group["id"])
    return {"group": True}


async def _bob_blocks_alice(
    people: dict[str, Account], _conversations: dict[str, str]
) -> dict[str, Any]:
    await people["bob"].call(BLOCK_USER, u=people["alice"].id)
    return {"blocked": True}


SCRIPT: list[tuple[str, Step]] = [
    ("alice opens a DM with bob (a message request)", _send("alice", "hi", "a1", to="bob")),
    ("alice retries it by recipient", _send("alice", "hi", "a1", to="bob")),
    ("alice writes again", _send("alice", "still there?", "a2", into="dm")),
    ("alice retries that into the conversation", _send("alice", "still there?", "a2", into="dm")),
    ("carol, no member, writes into it", _send("carol", "intrusion", "c1", into="dm")),
    ("bob replies: the request is accepted", _send("bob", "yes", "b1", into="dm")),
    ("alice reuses a1 for another text", _send("alice", "changed", "a1", into="dm")),
    ("alice makes a group with carol", _alice_makes_a_group_with_carol),
    ("carol writes in the group", _send("carol", "hello team", "c1", into="group")),
    ("bob, no member, writes in the group", _send("bob", "let me in", "b2", into="group")),
    ("alice reuses a2 in the group", _send("alice", "still there?", "a2", into="group")),
    ("bob blocks alice", _bob_blocks_alice),
    ("alice writes into the DM", _send("alice", "blocked?", "a3", into="dm")),
    ("alice retries a1 after the block", _send("alice", "hi", "a1", to="bob")),
    ("bob writes into the DM", _send("bob", "bye", "b3", into="dm")),
    ("alice writes in the group", _send("alice", "still here", "a4", into="group")),
]


async def _play(app: RunningApp) -> list[tuple[str, object]]:
    """Run SCRIPT; each step's answer (or its error codes)."""
    people = {name: await register(app.http, name) for name in ("alice", "bob", "carol")}
    conversations: dict[str, str] = {}
    answers: list[tuple[str, object]] = []
    for what, step in SCRIPT:
        try:
            answers.append((what, await step(people, conversations)))
        except GraphQLError as error:
            answers.append((what, [e.get("extensions") for e in error.errors]))
        if "dm" not in conversations and answers[-1][1] and isinstance(answers[-1][1], dict):
            async with app.runtime.db.reader() as session:
                dm_id = await session.scalar(select(Conversation.id).order_by(Conversation.id))
            assert dm_id is not None
            conversations["dm"] = global_id(Kind.CONVERSATION, dm_id)
    return answers


async def _stored(app: RunningApp) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a send touches, with ids replaced by names (users) and order (the rest)."""
    c = Conversation.__table__.c
    m = Message.__table__.c
    e = Event.__table__.c
    async with app.runtime.db.engine.connect() as db:
        user = {row.id: row.username for row in await db.execute(select(User.id, User.username))}
        user[None] = None
        rows = (await db.execute(select(Conversation.__table__).order_by(c.id))).all()
        conversation = {row.id: index for index, row in enumerate(rows)}
        conversations = [
            (conversation[r.id], r.kind, r.status, r.last_seq, user[r.created_by_id]) for r in rows
        ]
        rows = (await db.execute(select(Message.__table__).order_by(m.id))).all()
        message = {row.id: (conversation[row.conversation_id], row.seq) for row in rows}
        messages = [
            (*message[r.id], user[r.sender_id], r.client_id, r.kind, r.body, r.reply_to_id)
            for r in rows
        ]
        # In log order, numbered: PostgreSQL's ids come from a sequence (gaps allowed, e.g. a
        # retry aborted after taking one), SQLite's from the counter.
        log_order = select(Event.__table__).order_by(e.xid, e.id)
        events = [
            (
                number,
                r.type,
                conversation[r.conversation_id],
                user[r.actor_id],
                *(message.get(r.message_id), r.seq, r.data),
            )
            for number, r in enumerate(await db.execute(log_order), start=1)
        ]
        memberships = sorted(
            (
                conversation[r.conversation_id],
                user[r.user_id],
                r.state,
                r.role,
                *(r.last_read_seq, r.last_delivered_seq),
            )
            for r in await db.execute(select(Membership.__table__))
        )
    return {
        "conversations": conversations,
        "messages": messages,
        "events": events,
        "memberships": memberships,
    }


async def test_both_send_paths_store_the_same_rows_and_give_the_same_answers(
    app: RunningApp, embedded_app: RunningApp
) -> None:
    # given one app on PostgreSQL and one on the embedded SQLite
    assert app.runtime.db.engine.dialect.name == "postgresql"
    assert embedded_app.runtime.db.engine.dialect.name == "sqlite"
    # when the same script of sends runs on each
    answers = await _play(app)
    embedded_answers = await _play(embedded_app)
    stored, embedded_stored = await _stored(app), await _stored(embedded_app)
    # then the answers and every stored row are the same
    assert embedded_answers == answers
    for table, rows in stored.items():
        assert embedded_stored[table] == rows, table
    # and they are the right ones (so the comparison is not between two empty databases)
    # (someone else's conversation is NOT_FOUND, as if there were none)
    assert [answer for _, answer in answers if isinstance(answer, list)] == [
        [{"code": "NOT_FOUND", "field": "conversationId"}],
        [{"code": "CONFLICT", "field": "clientMessageId"}],
        [{"code": "NOT_FOUND", "field": "conversationId"}],
        [{"code": "CONFLICT", "field": "clientMessageId"}],
        [{"code": "FORBIDDEN", "reason": "BLOCKED", "field": "conversationId"}],
        [{"code": "FORBIDDEN", "reason": "BLOCKED", "field": "recipientId"}],
        [{"code": "FORBIDDEN", "reason": "BLOCKED", "field": "conversationId"}],
    ]
    dm = stored["conversations"][0]
    assert dm == (0, "DIRECT", "ACTIVE", 3, "alice")
    assert [row[:6] for row in stored["messages"] if row[0] == 0] == [
        (0, 1, "alice", "a1", "TEXT", "hi"),
        (0, 2, "alice", "a2", "TEXT", "still there?"),
        (0, 3, "bob", "b1", "TEXT", "yes"),
    ]
    assert [row[1:] for row in stored["memberships"] if row[0] == 0] == [
        ("alice", "ACCEPTED", "MEMBER", 2, 2),
        ("bob", "ACCEPTED", "MEMBER", 3, 3),
    ]
    posted = [row for row in stored["events"] if row[1] == "MESSAGE_POSTED"]
    assert [(row[0], row[3], row[4], row[5]) for row in posted[:3]] == [
        (1, "alice", (0, 1), 1),
        (2, "alice", (0, 2), 2),
        (3, "bob", (0, 3), 3),
    ]


async def test_a_send_into_a_conversation_is_one_statement_on_postgresql(app: RunningApp) -> None:
    # given a conversation, and a first send that warmed up everything per user
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await alice.send("first", to=bob))["conversationId"]
    await alice.send("warm", conversation_id=conversation_id)
    # when alice sends into it (the recorder also watches the driver, past SQLAlchemy)
    message_input = {"body": "counted", "clientMessageId": "k", "conversationId": conversation_id}
    async with recorded_statements(app) as statements:
        sent = (await alice.call(SEND_SEQ_ONLY, input=message_input))["sendMessage"]
    # then the database saw one statement (one round trip), and it did the whole send
    assert sent["seq"] == 3
    assert len(statements) == 1
    for write in ("UPDATE conversations", "INSERT INTO messages", "UPDATE memberships"):
        assert write in statements[0]
    assert "INSERT INTO events" in statements[0]
    # (serialised per conversation by its advisory lock, so xid order is seq order; tried
    # only, when the send runs in the group commit: see tests/messages/test_send_batches.py)
    assert "pg_try_advisory_xact_lock" in statements[0]
