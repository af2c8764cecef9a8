"""Resolve once, broadcast bytes: one execution per viewer shape, each viewer still seeing
exactly what privacy allows them, and cursors that do not split subscribers apart."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any

import pytest
from graphql import parse

from chatr.errors import SubscriberOverflowError
from chatr.schema.broadcast import LiveOperation, SocketOutlet, _variables_below_root
from chatr.services.live import QUEUE, Tap
from tests.groups.helpers import group_with
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    SEND_FRIEND_REQUEST,
    Account,
    register,
)
from tests.support.servers import RunningApp
from tests.support.ws import LEGACY_WS, TRANSPORT_WS, Feed, subscribe

SENDER_VIEW = """
subscription Feed($id: ID!, $afterSeq: Int) {
  conversationEvents(conversationId: $id, afterSeq: $afterSeq) {
    __typename
    ... on MessagePostedEvent {
      message { seq body clientMessageId sender { id createdAt blocked } }
    }
  }
}
"""
BODIES_ONLY = """
subscription Bodies($id: ID!) {
  conversationEvents(conversationId: $id) {
    __typename
    ... on MessagePostedEvent { message { seq body } }
  }
}
"""
UPDATE_PRIVACY = """
mutation Privacy($input: PrivacySettingsInput!) {
  updatePrivacySettings(input: $input) { joinedDate }
}
"""


async def _people(app: RunningApp, count: int) -> list[Account]:
    return list(await asyncio.gather(*(register(app.http) for _ in range(count))))


async def _message(feed: Feed) -> dict[str, Any]:
    return (await feed.next_of("MessagePostedEvent"))["message"]  # type: ignore[no-any-return]


def _counts(app: RunningApp) -> tuple[int, int]:
    metrics = app.runtime.live.metrics()
    return metrics["executions"], metrics["deliveries"]


async def test_one_message_is_executed_once_per_viewer_shape_and_each_viewer_sees_their_own(
    server: RunningApp,
) -> None:
    # given alice, who shows her joined date to friends only, in a group with a friend, two
    # strangers and someone who blocked her; everyone subscribed, alice on a second device
    assert server.ws_url
    alice, friend, stranger, other_stranger, blocker = await _people(server, 5)
    await alice.call(SEND_FRIEND_REQUEST, u=friend.id)
    await friend.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    group_id = await group_with(alice, members=[friend, stranger, other_stranger, blocker])
    await blocker.call(BLOCK_USER, u=alice.id)
    await alice.call(UPDATE_PRIVACY, input={"joinedDate": "FRIENDS"})
    viewers = {
        "alice": alice,
        "friend": friend,
        "stranger": stranger,
        "other stranger": other_stranger,
        "blocker": blocker,
    }
    async with AsyncExitStack() as stack:
        feeds = {
            name: await stack.enter_async_context(
                subscribe(
                    server.ws_url,
                    account.token,
                    SENDER_VIEW,
                    {"id": group_id},
                    # both protocols share the render: only the frame differs
                    protocol=LEGACY_WS if name == "other stranger" else TRANSPORT_WS,
                )
            )
            for name, account in viewers.items()
        }
        await server.until_live(len(viewers))
        executions, deliveries = _counts(server)
        # when alice writes once
        await alice.send("hi all", conversation_id=group_id, client_id="alice-key-1")
        seen = {name: await _message(feed) for name, feed in feeds.items()}
    # then the message was executed once per shape (herself, friend, stranger, blocked) and
    # delivered to all five
    assert _counts(server) == (executions + 4, deliveries + 5)
    # and each saw exactly what alice's settings and their standing with her allow
    assert {m["body"] for m in seen.values()} == {"hi all"}
    shown = {
        name: (
            m["clientMessageId"],
            m["sender"]["createdAt"] is not None,
            m["sender"]["blocked"],
        )
        for name, m in seen.items()
    }
    assert shown == {
        "alice": ("alice-key-1", True, False),
        "friend": (None, True, False),
        "stranger": (None, False, False),
        "other stranger": (None, False, False),
        "blocker": (None, False, True),
    }


async def test_subscribers_who_resumed_from_different_cursors_share_one_execution(
    server: RunningApp,
) -> None:
    # given three members who subscribed from different points of the history (and one
    # selecting other fields)
    assert server.ws_url
    owner, first, second, third = await _people(server, 4)
    group_id = await group_with(owner, members=[first, second, third])
    async with AsyncExitStack() as stack:
        cursors = [
            await stack.enter_async_context(
                subscribe(server.ws_url, member.token, SENDER_VIEW, variables)
            )
            for member, variables in (
                (first, {"id": group_id, "afterSeq": 0}),
                (second, {"id": group_id, "afterSeq": 2}),
                (owner, {"id": group_id}),
            )
        ]
        bodies = await stack.enter_async_context(
            subscribe(server.ws_url, third.token, BODIES_ONLY, {"id": group_id})
        )
        await server.until_live(4)
        executions, deliveries = _counts(server)
        # when the owner writes once
        sent = await owner.send("one render", conversation_id=group_id)
        # then everyone gets it
        for feed in cursors:
            while (message := await _message(feed))["seq"] != sent["seq"]:
                pass  # replayed history first
            assert message["body"] == "one render"
        assert (await _message(bodies)) == {"seq": sent["seq"], "body": "one render"}
    # and it took one execution for the two members (same shape), one for the owner herself
    # and one for the other selection: the cursor is not part of what is shared
    assert _counts(server) == (executions + 3, deliveries + 4)


# -- the socket end, on its own --------------------------------------------------------------


class _Connection:
    """What an outlet needs of its connection's context."""

    authenticated_viewer = None


def _tap_with_outlet(send_text: Any, *, limit: int) -> tuple[Tap, SocketOutlet]:
    """A tap whose socket is `send_text(frame)` (wrapped as the ASGI send it would be)."""

    async def send(message: dict[str, Any]) -> None:
        assert message["type"] == "websocket.send"
        await send_text(message["text"])

    operation = LiveOperation.create(
        legacy=False,
        operation_id="op-1",
        query="subscription { x }",
        variables=None,
        operation_name=None,
        send=send,
    )
    outlet = SocketOutlet(operation, connection=_Connection(), limit=limit)  # type: ignore[arg-type]
    tap = Tap(viewer_id=1, conversation_id=1, queue_size=limit, renderer=QUEUE, outlet=outlet)
    return tap, outlet


async def test_frames_carry_the_operation_id_for_either_protocol() -> None:
    common: dict[str, Any] = {
        "query": "q",
        "variables": None,
        "operation_name": None,
        "send": _never,
    }
    transport = LiveOperation.create(legacy=False, operation_id='a"1', **common)
    legacy = LiveOperation.create(legacy=True, operation_id="7", **common)
    payload = '{"data":{"x":1}}'
    assert json.loads(transport.frame_head + payload + "}") == {
        "id": 'a"1',
        "type": "next",
        "payload": {"data": {"x": 1}},
    }
    assert json.loads(legacy.frame_head + payload + "}") == {
        "type": "data",
        "id": "7",
        "payload": {"data": {"x": 1}},
    }


async def _never(_: Any) -> None:
    raise AssertionError("not sent")


async def test_a_writable_socket_gets_each_frame_at_once_and_the_cursor_moves() -> None:
    sent: list[str] = []

    async def send_text(frame: str) -> None:
        sent.append(frame)

    tap, outlet = _tap_with_outlet(send_text, limit=3)
    outlet.write('{"data":1}', 11)
    outlet.write('{"data":2}', None)  # typing: no position
    # no task ran in between: both went out synchronously
    assert [json.loads(frame)["payload"]["data"] for frame in sent] == [1, 2]
    assert tap.acknowledged == 11


async def test_a_stalled_socket_is_cut_with_its_cursor_while_others_keep_receiving() -> None:
    # given one socket that stopped taking data and one that is fine
    gate = asyncio.Event()
    stalled_sent: list[str] = []
    healthy_sent: list[str] = []

    async def stalled(frame: str) -> None:
        await gate.wait()
        stalled_sent.append(frame)

    async def healthy(frame: str) -> None:
        healthy_sent.append(frame)

    stalled_tap, stalled_outlet = _tap_with_outlet(stalled, limit=3)
    healthy_tap, healthy_outlet = _tap_with_outlet(healthy, limit=3)
    # when more events than the backlog holds are fanned out to both
    for position in range(1, 6):
        stalled_outlet.write(f'{{"data":{position}}}', position)
        healthy_outlet.write(f'{{"data":{position}}}', position)
    # then the healthy one got every frame at once
    assert len(healthy_sent) == 5 and healthy_tap.acknowledged == 5
    # and the stalled one (one frame in flight, three waiting) was cut at the fifth, with
    # the cursor of the last event that actually left
    assert stalled_tap.ended
    with pytest.raises(SubscriberOverflowError) as cut:
        await stalled_tap.until_ended()
    assert cut.value.extensions["cursor"] == "0"
    # and nothing more is sent to it once the socket frees up
    gate.set()
    await asyncio.sleep(0.01)
    assert stalled_sent == []


async def test_a_socket_that_drains_in_time_gets_everything_in_order() -> None:
    gate = asyncio.Event()
    sent: list[int] = []

    async def slow(frame: str) -> None:
        await gate.wait()
        sent.append(json.loads(frame)["payload"]["data"])

    tap, outlet = _tap_with_outlet(slow, limit=3)
    for position in range(1, 5):  # one in flight, three waiting: exactly the limit
        outlet.write(f'{{"data":{position}}}', position)
    gate.set()
    async with asyncio.timeout(5):
        while tap.acknowledged != 4:
            await asyncio.sleep(0.01)
    assert sent == [1, 2, 3, 4] and not tap.ended


async def test_a_closed_socket_ends_the_tap_quietly() -> None:
    async def gone(_: str) -> None:
        raise RuntimeError("Cannot call 'send' once a close message has been sent.")

    tap, outlet = _tap_with_outlet(gone, limit=3)
    outlet.write('{"data":1}', 1)
    assert tap.ended
    await tap.until_ended()  # no error: the client is gone, nobody to tell


def test_only_variables_the_selection_uses_split_subscribers() -> None:
    document = parse(
        """
        subscription S($id: ID!, $afterSeq: Int, $withBody: Boolean!) {
          conversationEvents(conversationId: $id, afterSeq: $afterSeq) {
            ... on MessagePostedEvent { message { seq body @include(if: $withBody) } }
            ...More
          }
        }
        fragment More on ConversationEvent { cursor @skip(if: $hideCursor) }
        """
    )
    assert _variables_below_root(document, "S") == {"withBody", "hideCursor"}
