"""Changes to messages are durable events: a client that reconnects with its cursor gets every
edit, unsend, reaction and pin it missed, in order, exactly once, on both WebSocket protocols,
whichever instance made the change and whichever it reconnects to; and a user's private
changes (stars, delete-for-me) reach their own other devices the same way, and nobody else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chatr.settings import Settings
from tests.messages.helpers import DELETE_FOR_ME, EDIT, PIN, REACT, STAR, UNSEND
from tests.support.api import Account, register
from tests.support.processes import uvicorn_process
from tests.support.ws import PROTOCOLS, Feed, subscribe

CHANGES = """
  __typename conversationId cursor
  ... on MessagePostedEvent { message { id body } }
  ... on MessageChangedEvent {
    user { id }
    message { id body deletedAt deletedBy { id } pinnedBy { id } reactions { emoji count } }
  }
  ... on ReactionChangedEvent { emoji previousEmoji }
"""
MY_CHANGES = f"subscription Mine($after: String) {{ myEvents(after: $after) {{ {CHANGES} }} }}"
CONVERSATION_CHANGES = f"""
subscription Conversation($id: ID!, $afterSeq: Int) {{
  conversationEvents(conversationId: $id, afterSeq: $afterSeq) {{ {CHANGES} }}
}}
"""


def _shape(event: dict[str, Any]) -> tuple[str, str | None, str | None]:
    user = (event.get("user") or {}).get("id")
    return event["__typename"], event["message"]["id"], user


async def _durable(feed: Feed, count: int) -> list[dict[str, Any]]:
    """The next `count` durable events (receipts are not among these tests' events)."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        event = await feed.next()
        if event["cursor"] is not None:
            events.append(event)
    return events


async def _make_changes(alice: Account, bob: Account, first: str, second: str) -> None:
    """An edit, an unsend, a reaction and a pin, in this order."""
    await alice.call(EDIT, m=first, body="first, edited")
    await alice.call(UNSEND, m=second)
    await bob.call(REACT, m=first, e="🎉")
    await bob.call(PIN, m=first)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reconnecting_replays_edits_unsends_reactions_and_pins_once_in_order(
    settings: Settings, database: str, protocol: str
) -> None:
    with uvicorn_process(settings) as a, uvicorn_process(settings) as b:
        async with (
            httpx.AsyncClient(base_url=a.http_url) as http_a,
            httpx.AsyncClient(base_url=b.http_url) as http_b,
        ):
            alice = await register(http_a)
            bob = (await register(http_a)).via(http_b)
            first = await alice.send("first", to=bob)
            second = await alice.send("second", to=bob)
            conversation_id = first["conversationId"]
            # given alice listened on A up to the second message, and bob on B, then both left
            async with subscribe(
                a.ws_url, alice.token, MY_CHANGES, {"after": "0"}, protocol=protocol
            ) as feed:
                cursor = (await _durable(feed, 2))[-1]["cursor"]
            # when bob (through B) and alice (through A) change the messages meanwhile
            await _make_changes(alice, bob, first["id"], second["id"])
            expected = [
                ("MessageEditedEvent", first["id"], alice.id),
                ("MessageDeletedEvent", second["id"], alice.id),
                ("ReactionChangedEvent", first["id"], bob.id),
                ("MessagePinnedEvent", first["id"], bob.id),
            ]
            # then reconnecting with the cursor (to B for alice, to A for bob) replays exactly
            # those four, in order; after them comes what happens next, and nothing twice
            for account, url, document, variables in (
                (alice, b.ws_url, MY_CHANGES, {"after": cursor}),
                (bob, a.ws_url, CONVERSATION_CHANGES, {"id": conversation_id, "afterSeq": 2}),
            ):
                async with subscribe(
                    url, account.token, document, variables, protocol=protocol
                ) as feed:
                    replayed = await _durable(feed, 4)
                    assert [_shape(event) for event in replayed] == expected
                    assert {event["conversationId"] for event in replayed} == {conversation_id}
                    assert replayed[2]["emoji"] == "🎉" and replayed[2]["previousEmoji"] is None
                    unsent = replayed[1]["message"]
                    assert (unsent["body"], unsent["deletedBy"]) == (None, {"id": alice.id})
                    # the message as it is now: edited, reacted to and pinned
                    now = replayed[3]["message"]
                    assert now["body"] == "first, edited"
                    assert now["reactions"] == [{"emoji": "🎉", "count": 1}]
                    assert now["pinnedBy"] == {"id": bob.id}
                    # and live: bob takes his reaction back
                    await bob.call(REACT, m=first["id"], e="🎉")
                    (live,) = await _durable(feed, 1)
                    assert _shape(live) == ("ReactionChangedEvent", first["id"], bob.id)
                    assert (live["emoji"], live["previousEmoji"]) == (None, "🎉")
                    await bob.call(REACT, m=first["id"], e="🎉")  # as it was, for the next
                    (live,) = await _durable(feed, 1)
                    assert live["emoji"] == "🎉"


PRIVATE = """
subscription Mine($after: String) {
  myEvents(after: $after) {
    __typename conversationId cursor
    ... on MessagePostedEvent { message { id body } }
    ... on MessageStarChangedEvent { starred message { id } user { id } }
    ... on MessageHiddenEvent { message { id } user { id } }
  }
}
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_my_other_device_replays_my_stars_and_hidden_messages_on_another_instance(
    settings: Settings, database: str, protocol: str
) -> None:
    with uvicorn_process(settings) as a, uvicorn_process(settings) as b:
        async with (
            httpx.AsyncClient(base_url=a.http_url) as http_a,
            httpx.AsyncClient(base_url=b.http_url) as http_b,
        ):
            alice = await register(http_a)
            bob = (await register(http_a)).via(http_b)
            first = await bob.send("first", to=alice)
            second = await bob.send("second", to=alice)
            # given a device of alice's that listened on B up to the second message, then left
            async with subscribe(
                b.ws_url, alice.token, PRIVATE, {"after": "0"}, protocol=protocol
            ) as feed:
                cursor = (await _durable(feed, 2))[-1]["cursor"]
            # when she stars the first and deletes the second for herself, through A
            await alice.call(STAR, m=first["id"])
            await alice.call(DELETE_FOR_ME, m=second["id"])
            await bob.send("third", to=alice)
            # then that device, back on B with its cursor, replays both, in order, once
            async with subscribe(
                b.ws_url, alice.token, PRIVATE, {"after": cursor}, protocol=protocol
            ) as feed:
                replayed = await _durable(feed, 3)
            assert [(e["__typename"], (e.get("message") or {}).get("id")) for e in replayed] == [
                ("MessageStarChangedEvent", first["id"]),
                ("MessageHiddenEvent", second["id"]),
                ("MessagePostedEvent", replayed[2]["message"]["id"]),
            ]
            assert replayed[0]["starred"] is True and replayed[0]["user"] == {"id": alice.id}
            assert replayed[2]["message"]["body"] == "third"
            # while bob, replaying everything on A, gets neither
            async with subscribe(
                a.ws_url, bob.token, PRIVATE, {"after": "0"}, protocol=protocol
            ) as feed:
                bobs = await _durable(feed, 3)
            assert [e["message"]["body"] for e in bobs] == ["first", "second", "third"]
