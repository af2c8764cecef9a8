"""Editing, unsending (delete for everyone) and deleting for me, in DMs and groups alike."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from chatr.models import Message
from chatr.models.base import utcnow
from chatr.settings import Settings
from tests.groups.helpers import group_with
from tests.messages.helpers import (
    DELETE_FOR_ME,
    EDIT,
    PIN,
    REACT,
    STAR,
    UNSEND,
    history,
    reply,
)
from tests.support.api import BLOCK_USER, MARK_READ, GraphQLError, register
from tests.support.ids import Kind, missing, pk
from tests.support.servers import RunningApp, in_process_app


async def _codes(call: Awaitable[object]) -> list[str]:
    with pytest.raises(GraphQLError) as refused:
        await call
    return refused.value.codes


@pytest.mark.smoke
async def test_sender_edits_a_text_and_every_version_is_kept(app: RunningApp) -> None:
    # given a DM with one message
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("helo bob", to=bob)
    # when alice corrects it twice
    await alice.call(EDIT, m=sent["id"], body="hello bob")
    edited = (await alice.call(EDIT, m=sent["id"], body="hello bob!"))["editMessage"]
    # then the message says so and both people see every version, oldest first, by alice
    assert edited["body"] == "hello bob!" and edited["editedAt"] is not None
    seen_by_bob = (await history(bob, sent["conversationId"]))["messages"][0]
    assert [v["body"] for v in seen_by_bob["editHistory"]] == [
        "helo bob",
        "hello bob",
        "hello bob!",
    ]
    assert {v["editor"]["id"] for v in seen_by_bob["editHistory"]} == {alice.id}
    assert seen_by_bob["body"] == "hello bob!"


async def test_member_cannot_edit_someone_elses_message(app: RunningApp) -> None:
    # given a group where bob wrote something
    alice, bob = await register(app.http), await register(app.http)
    group_id = await group_with(alice, admins=[bob])
    sent = await bob.send("bob's words", conversation_id=group_id)
    # when alice (the owner, even) edits it, she is refused, and it is unchanged
    assert await _codes(alice.call(EDIT, m=sent["id"], body="alice's words")) == ["FORBIDDEN"]
    assert (await history(bob, group_id))["messages"][-1]["body"] == "bob's words"


async def test_editing_is_refused_once_the_window_is_over(
    settings: Settings, database: str
) -> None:
    # given a server with a 60 s edit window and a message sent two minutes ago
    async with in_process_app(settings.with_overrides(message_edit_window_seconds=60)) as app:
        alice, bob = await register(app.http), await register(app.http)
        sent = await alice.send("too late?", to=bob)
        async with app.runtime.db.session() as session, session.begin():
            await session.execute(
                update(Message)
                .where(Message.id == pk(sent["id"]))
                .values(created_at=utcnow() - timedelta(minutes=2))
            )
        fresh = await alice.send("in time", to=bob)
        # when alice edits both, then only the fresh one changes
        with pytest.raises(GraphQLError) as refused:
            await alice.call(EDIT, m=sent["id"], body="changed")
        assert refused.value.codes == ["FORBIDDEN"]
        assert refused.value.errors[0]["extensions"]["reason"] == "EDIT_WINDOW_CLOSED"
        assert (await alice.call(EDIT, m=fresh["id"], body="changed"))["editMessage"]["body"] == (
            "changed"
        )


async def test_a_bad_edit_is_a_coded_error(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("hello", to=bob)
    assert await _codes(alice.call(EDIT, m=sent["id"], body="")) == ["BAD_USER_INPUT"]
    assert await _codes(alice.call(EDIT, m="not-an-id", body="x")) == ["BAD_USER_INPUT"]
    assert await _codes(alice.call(EDIT, m=missing(Kind.MESSAGE), body="x")) == ["NOT_FOUND"]


@pytest.mark.smoke
async def test_unsend_leaves_a_tombstone_saying_who_and_when(app: RunningApp) -> None:
    # given a DM with two messages
    alice, bob = await register(app.http), await register(app.http)
    first = await alice.send("oops, wrong chat", to=bob)
    await bob.send("what?", to=alice)
    # when alice unsends her message
    unsent = (await alice.call(UNSEND, m=first["id"]))["unsendMessage"]
    # then both see a tombstone in its place: no text, who removed it and when; seqs unchanged
    assert unsent["body"] is None and unsent["deletedAt"] is not None
    assert unsent["deletedBy"] == {"id": alice.id}
    messages = (await history(bob, first["conversationId"]))["messages"]
    assert [(m["seq"], m["body"]) for m in messages] == [(1, None), (2, "what?")]
    # and unsending again changes nothing; bob may not unsend alice's message
    assert (await alice.call(UNSEND, m=first["id"]))["unsendMessage"]["deletedAt"] == unsent[
        "deletedAt"
    ]
    second = await alice.send("mine", to=bob)
    assert await _codes(bob.call(UNSEND, m=second["id"])) == ["FORBIDDEN"]


async def test_group_admins_may_unsend_members_messages_and_members_may_not(
    app: RunningApp,
) -> None:
    # given a group with an owner, an admin and two members
    owner, admin, member, other = [await register(app.http) for _ in range(4)]
    group_id = await group_with(owner, admins=[admin], members=[member, other])
    spam = await member.send("spam", conversation_id=group_id)
    more = await member.send("more spam", conversation_id=group_id)
    # when another member tries, they are refused; the admin and the owner may
    assert await _codes(other.call(UNSEND, m=spam["id"])) == ["FORBIDDEN"]
    assert (await admin.call(UNSEND, m=spam["id"]))["unsendMessage"]["deletedBy"] == {
        "id": admin.id
    }
    assert (await owner.call(UNSEND, m=more["id"]))["unsendMessage"]["deletedBy"] == {
        "id": owner.id
    }


async def test_unsend_removes_the_content_from_every_table(app: RunningApp) -> None:
    # given a group message that was edited, reacted to, quoted, pinned, starred, mentions
    # someone, and whose text also sits in a reply's quote
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    group_id = await group_with(alice, admins=[bob], members=[carol])
    secret = "the launch code is swordfish"
    sent = await alice.send(f"@{carol.username} first draft", conversation_id=group_id)
    await alice.call(EDIT, m=sent["id"], body=f"@{carol.username} {secret}")
    await bob.call(REACT, m=sent["id"], e="👍")
    await bob.call(PIN, m=sent["id"])
    await carol.call(STAR, m=sent["id"])
    quoting = await reply(
        carol, "noted", conversation_id=group_id, reply_to=sent["id"], client_id="quote-1"
    )
    assert secret in quoting["replyTo"]["excerpt"]
    # alice's reply to her own message quotes it too
    own_reply = await reply(
        alice, "also", conversation_id=group_id, reply_to=quoting["id"], client_id="quote-2"
    )
    assert own_reply["replyTo"]["excerpt"] == "noted"
    # when alice unsends it
    await alice.call(UNSEND, m=sent["id"])
    # then no table holds its text any more (nor "first draft", its first version)
    engine = app.runtime.db.engine
    async with engine.connect() as connection:
        tables = [
            row[0]
            for row in await connection.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
                if engine.dialect.name == "postgresql"
                else text("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
        ]
        holding = []
        for table in tables:
            rows = await connection.execute(text(f'SELECT * FROM "{table}"'))
            for row in rows:
                flat = " ".join(str(value) for value in row)
                if "swordfish" in flat or "first draft" in flat:
                    holding.append(table)
    assert holding == []
    # and what referred to it is a tombstone: the quote, the reactions, the pin and the star
    seen = await history(carol, group_id)
    by_id = {m["id"]: m for m in seen["messages"]}
    assert by_id[sent["id"]]["reactions"] == [] and by_id[sent["id"]]["editHistory"] == []
    assert by_id[sent["id"]]["mentions"] == [] and by_id[sent["id"]]["pinnedAt"] is None
    assert seen["pinnedMessages"] == []
    assert by_id[quoting["id"]]["replyTo"] == {
        "messageId": sent["id"],
        "seq": sent["seq"],
        "kind": "TEXT",
        "excerpt": None,
        "senderName": alice.username,
        "sender": {"id": alice.id},
        "deleted": True,
    }


async def test_delete_for_me_hides_a_message_from_my_history_and_unread_count_only(
    app: RunningApp,
) -> None:
    # given bob sent alice three messages she has not read
    alice, bob = await register(app.http), await register(app.http)
    sent = [await bob.send(f"note {n}", to=alice) for n in range(3)]
    conversation_id = sent[0]["conversationId"]
    assert (await history(alice, conversation_id))["unreadCount"] == 3
    # when she deletes the second for herself
    hidden = (await alice.call(DELETE_FOR_ME, m=sent[1]["id"]))["deleteMessageForMe"]
    assert hidden == {"messageId": sent[1]["id"]}
    # then it is gone from her history and her unread count, and still there for bob
    mine = await history(alice, conversation_id)
    assert [m["body"] for m in mine["messages"]] == ["note 0", "note 2"]
    assert mine["unreadCount"] == 2
    assert [m["body"] for m in (await history(bob, conversation_id))["messages"]] == [
        "note 0",
        "note 1",
        "note 2",
    ]
    # and for her it no longer exists: reacting to it is NOT_FOUND
    assert await _codes(alice.call(REACT, m=sent[1]["id"], e="👍")) == ["NOT_FOUND"]
    await alice.call(MARK_READ, c=conversation_id, s=3)
    assert (await history(alice, conversation_id))["unreadCount"] == 0


async def test_nobody_changes_messages_in_a_dm_with_a_block(app: RunningApp) -> None:
    # given a DM where bob then blocked alice
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("hello", to=bob)
    theirs = await bob.send("hi", to=alice)
    await bob.call(BLOCK_USER, u=alice.id)
    # then neither may edit, unsend, react or pin there (FORBIDDEN, reason BLOCKED)
    for call in (
        alice.call(EDIT, m=sent["id"], body="x"),
        alice.call(UNSEND, m=sent["id"]),
        alice.call(REACT, m=theirs["id"], e="👍"),
        bob.call(REACT, m=sent["id"], e="👍"),
        bob.call(PIN, m=sent["id"]),
    ):
        with pytest.raises(GraphQLError) as refused:
            await call
        assert refused.value.codes == ["FORBIDDEN"]
        assert refused.value.errors[0]["extensions"]["reason"] == "BLOCKED"


async def test_edits_are_rate_limited_per_user(settings: Settings, database: str) -> None:
    limited = settings.with_overrides(rate_limits=True, edit_message_limit="2 per minute")
    async with in_process_app(limited) as app:
        alice, bob = await register(app.http), await register(app.http)
        sent = await alice.send("v1", to=bob)
        await alice.call(EDIT, m=sent["id"], body="v2")
        await alice.call(EDIT, m=sent["id"], body="v3")
        assert await _codes(alice.call(EDIT, m=sent["id"], body="v4")) == ["RATE_LIMITED"]
        assert (await history(bob, sent["conversationId"]))["messages"][0]["body"] == "v3"
