"""Resolve once, broadcast bytes: one execution per viewer shape, each viewer still seeing
exactly what privacy allows them, and cursors that do not split subscribers apart."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Iterator, MutableMapping
from contextlib import AsyncExitStack
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    execute,
    get_named_type,
    is_leaf_type,
    parse,
)

from chatr.context import Context, SharedFacts, SharedRenderContext, SharedRenderMisuse
from chatr.errors import SubscriberOverflowError
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.link_fetch import PreviewJob
from chatr.infra.live import QUEUE, StreamItem, Tap, Typing
from chatr.loaders import Loaders
from chatr.models import EventType
from chatr.schema import build_schema
from chatr.schema.broadcast import BroadcastRenderer, _variables_below_root
from chatr.schema.errors import present
from chatr.schema.events import is_exposed
from chatr.schema.socket_outlet import LiveOperation, SocketOutlet
from chatr.services import auth, link_previews
from chatr.services.auth import Viewer
from chatr.services.privacy import Standing
from chatr.settings import Settings
from tests.groups.helpers import LEAVE, group_with
from tests.media import helpers as media
from tests.messages.helpers import DELETE_FOR_ME, EDIT, PIN, REACT, STAR, UNPIN, UNSEND
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    LOGIN,
    MARK_READ,
    PASSWORD,
    SEND_FRIEND_REQUEST,
    Account,
    data,
    register,
)
from tests.support.ids import pk
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
    return (await feed.next_of("MessagePostedEvent"))["message"]


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


MENTIONS_VIEW = """
subscription Feed($id: ID!) {
  conversationEvents(conversationId: $id) {
    __typename
    ... on MessagePostedEvent { mentioned message { body mentions { id } } }
  }
}
"""


async def test_the_mentioned_flag_reaches_only_the_member_mentioned(server: RunningApp) -> None:
    # given a group of four, all subscribed with one document
    assert server.ws_url
    alice, bob, carol, dave = await _people(server, 4)
    group_id = await group_with(alice, members=[bob, carol, dave])
    viewers = {"alice": alice, "bob": bob, "carol": carol, "dave": dave}
    async with AsyncExitStack() as stack:
        feeds = {
            name: await stack.enter_async_context(
                subscribe(server.ws_url, account.token, MENTIONS_VIEW, {"id": group_id})
            )
            for name, account in viewers.items()
        }
        await server.until_live(len(viewers))
        executions, deliveries = _counts(server)
        # when alice mentions bob
        await alice.send(f"@{bob.username} please review", conversation_id=group_id)
        seen = {name: await feed.next_of("MessagePostedEvent") for name, feed in feeds.items()}
    # then only bob's event says he was mentioned, though all four share the message
    assert {name: event["mentioned"] for name, event in seen.items()} == {
        "alice": False,
        "bob": True,
        "carol": False,
        "dave": False,
    }
    assert {str(event["message"]["mentions"]) for event in seen.values()} == {str([{"id": bob.id}])}
    # and the render was still shared: bob alone, and everyone else (nothing else differs)
    assert _counts(server) == (executions + 2, deliveries + 4)


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

    async def send(message: MutableMapping[str, Any]) -> None:
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


# -- the shared-render contract --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["request", "connection_params", "presence", "authenticated_viewer"]
)
def test_a_shared_render_refuses_per_connection_state(name: str) -> None:
    # given the context one execution for many viewers runs with
    shared = SharedRenderContext(
        runtime=None,  # type: ignore[arg-type]
        request=None,  # type: ignore[arg-type]
        response=None,
        loaders=None,  # type: ignore[arg-type]
        _viewer=None,
        _viewer_checked=True,
        shared=SharedFacts(1, _no_standings),
    )
    # when a resolver reads what belongs to one connection, it is told it is a bug
    with pytest.raises(SharedRenderMisuse, match=f"Context.{name} is not available"):
        getattr(shared, name)


async def _no_standings(_viewer_id: int, _user_id: int) -> Standing:
    raise AssertionError("not asked")


def _selection(type_: GraphQLNamedType, depth: int) -> str:
    """Every field of `type_` without arguments, objects `depth` levels down.

    Fields with arguments (paginated history) are left out: for the former member they fail,
    and a field error makes graphql-core cancel its siblings, whose cancellation can reach a
    DataLoader future they share (a hazard of the loaders themselves, not of the shared
    render); the comparison needs deterministic runs.
    """
    assert isinstance(type_, GraphQLObjectType | GraphQLInterfaceType)
    parts = ["__typename"]
    for name, field in type_.fields.items():
        if field.args:
            continue
        named = get_named_type(field.type)
        if is_leaf_type(named):
            parts.append(name)
        elif depth > 0 and isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            parts.append(f"{name} {{ {_selection(named, depth - 1)} }}")
    return " ".join(parts)


def _everything(schema: GraphQLSchema, depth: int) -> str:
    """A subscription selecting every field of every event type, `depth` levels down."""
    interface = schema.get_type("ConversationEvent")
    assert isinstance(interface, GraphQLInterfaceType)
    spreads = " ".join(
        f"... on {event_type.name} {{ {_selection(event_type, depth)} }}"
        for event_type in schema.get_possible_types(interface)
    )
    return (
        "subscription Everything($id: ID!) { conversationEvents(conversationId: $id) "
        f"{{ {spreads} }} }}"
    )


class _RecordingOutlet:
    """What the renderer needs of a subscription's socket: its viewer, and where to write."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.connection = SimpleNamespace(request=None)
        self.payloads: list[str] = []

    def bind(self, tap: Tap) -> None:
        pass

    def close(self) -> None:
        pass

    def write(self, payload: str, position: int | None) -> None:
        self.payloads.append(payload)


async def _per_viewer(
    app: RunningApp, schema: Any, document: Any, item: StreamItem, viewer: Viewer, group_id: str
) -> dict[str, Any]:
    """What stock strawberry would send this viewer: its own execution, its own context."""
    context = Context(
        runtime=app.runtime,
        request=None,  # type: ignore[arg-type]
        response=None,
        loaders=Loaders(app.runtime, cache=True),
        _viewer=viewer,
        _viewer_checked=True,
    )
    result = execute(
        schema._schema,
        document,
        root_value=item,
        context_value=context,
        variable_values={"id": group_id},
        executor_class=schema.execution_context_class,
    )
    if isinstance(result, Awaitable):
        result = await result
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in present(list(result.errors))]
    return json.loads(json.dumps(payload))


@pytest.fixture
def collect_dropped_coroutines() -> Iterator[None]:
    """Collect the dropped coroutines (below) while this test's warning filters apply, so the
    report cannot land in whichever test happens to run next."""
    yield
    gc.collect()


# When a field errors for a viewer (a former member's nested conversation, say), graphql-core
# nulls its parent and drops the sibling resolvers' coroutines it had created but no longer
# needs; the garbage collector then reports them as "never awaited" at an arbitrary later
# moment. That is the library's behaviour, not a rendering difference: the comparisons below
# are what this test judges.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.usefixtures("collect_dropped_coroutines")
async def test_the_shared_render_of_every_event_matches_each_viewers_own_execution(
    app: RunningApp, settings: Settings
) -> None:
    # given alice, who keeps most details to friends or nobody, in a group with a friend, a
    # stranger, someone who blocked her, someone she blocked and a member who left; alice has
    # a second device
    alice, friend, stranger, blocker, blocked, former = await _people(app, 6)
    await alice.call(SEND_FRIEND_REQUEST, u=friend.id)
    await friend.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    group_id = await group_with(alice, members=[friend, stranger, blocker, blocked, former])
    await blocker.call(BLOCK_USER, u=alice.id)
    await alice.call(BLOCK_USER, u=blocked.id)
    await alice.call(
        UPDATE_PRIVACY,
        input={
            "joinedDate": "FRIENDS",
            "readReceipts": "FRIENDS",
            "fullName": "NOBODY",
            "gender": "FRIENDS",
            "lastSeen": "FRIENDS",
            "onlineStatus": "NOBODY",
        },
    )
    login = await data(app.http, LOGIN, {"input": {"login": alice.username, "password": PASSWORD}})
    second_device = replace(alice, token=login["login"]["accessToken"])
    # and one event of every kind a subscription delivers, by alice and by the friend
    produced = {kind: await produce(alice, friend, group_id) for kind, produce in PRODUCERS.items()}
    for kind, made_by_the_server in SERVER_PRODUCERS.items():
        produced[kind] = await made_by_the_server(app, alice, group_id)
    exposed = {kind for kind in EventType if is_exposed(_logged_of(kind))}
    assert exposed <= produced.keys(), f"no producer for {exposed - produced.keys()}"
    by_type: dict[EventType, list[StreamItem]] = {}
    async with asyncio.timeout(10):  # the log shows an event once older writes have ended
        while not all(by_type.get(kind) for kind in exposed):
            by_type = {}
            for logged in await _items(app, alice):
                by_type.setdefault(logged.type, []).append(logged)
            await asyncio.sleep(0.05)
    assert produced.keys() == exposed
    typing = [
        Typing(pk(group_id), pk(user.id), typing, time.time() + 5)
        for user, typing in ((alice, True), (friend, False))
    ]
    everything: list[StreamItem] = [*(i for kind in exposed for i in by_type[kind]), *typing]
    # when each is rendered once for all of them, as the live fan-out does
    schema = build_schema(settings)
    viewers = {
        "alice": alice,
        "alice's other device": second_device,
        "friend": friend,
        "stranger": stranger,
        "blocker": blocker,
        "blocked": blocked,
        "former member": former,
    }
    resolved = {
        name: await auth.viewer_from_token(app.runtime, token=account.token)
        for name, account in viewers.items()
    }
    await former.call(LEAVE, c=group_id)
    [alices_message] = [
        posted
        for posted in by_type[EventType.MESSAGE_POSTED]
        if isinstance(posted, LoggedEvent)
        and posted.message
        and posted.message.body == "from alice"
    ]
    views_of_alices_message: set[str] = set()
    shared_renders = 0
    # (the deeper selections reach fields that depend on the viewer's identity, which makes
    # every render personal; the shallow ones are shared)
    for depth in (1, 2, 3):
        document = parse(_everything(schema._schema, depth))
        for item in everything:
            outlets = {name: _RecordingOutlet(viewer) for name, viewer in resolved.items()}
            executions = await _render_shared(app, schema, document, item, outlets, group_id)
            shared_renders += executions < len(outlets)
            # then every viewer got, byte for byte after JSON normalisation, what their own
            # execution gives them
            for name, outlet in outlets.items():
                [payload] = outlet.payloads
                own = await _per_viewer(app, schema, document, item, resolved[name], group_id)
                assert json.loads(payload) == own, (depth, item, name)
                if item == alices_message and depth == 2:
                    views_of_alices_message.add(payload)
    # and payloads really were shared, and really differ by standing: herself (both devices),
    # her friend, strangers, the two blocked sides
    assert shared_renders > 0
    assert len(views_of_alices_message) >= 4


async def _render_shared(
    app: RunningApp,
    schema: Any,
    document: Any,
    item: StreamItem,
    outlets: dict[str, _RecordingOutlet],
    group_id: str,
) -> int:
    """Render `item` once for every outlet, as the live fan-out does; how many executions."""
    renderer = BroadcastRenderer(
        runtime=app.runtime,
        schema=schema._schema,
        executor_class=schema.execution_context_class,
        document=document,
        operation_name=None,
        variables={"id": group_id},
    )
    taps = [
        Tap(viewer_id=o.viewer.id, conversation_id=pk(group_id), queue_size=10, outlet=o)
        for o in outlets.values()
    ]
    before = app.runtime.live.counters["executions"]
    (await renderer.render(item, taps))()
    return int(app.runtime.live.counters["executions"] - before)


async def _post(alice: Account, friend: Account, group_id: str) -> str:
    await alice.send("from alice", conversation_id=group_id)
    # a mention: `mentioned` is true for alice alone
    await friend.send(f"from the friend to @{alice.username}", conversation_id=group_id)
    return "two sendMessage calls"


async def _sent_by(account: Account, group_id: str, body: str) -> str:
    return str((await account.send(body, conversation_id=group_id))["id"])


async def _edit(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(friend, group_id, "to be edited")
    await friend.call(EDIT, m=message_id, body="edited")
    return "editMessage by the friend"


async def _unsend(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(friend, group_id, "to be unsent")
    await alice.call(UNSEND, m=message_id)
    return "unsendMessage by alice (the owner) of the friend's message"


async def _react(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(friend, group_id, "to be reacted to")
    await alice.call(REACT, m=message_id, e="🎉")
    await friend.call(REACT, m=message_id, e="👍")
    return "reactToMessage by alice and the friend"


async def _pin(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(friend, group_id, "to be pinned")
    await alice.call(PIN, m=message_id)
    return "pinMessage by alice"


async def _unpin(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(alice, group_id, "pinned for a moment")
    await alice.call(PIN, m=message_id)
    await alice.call(UNPIN, m=message_id)
    return "unpinMessage by alice"


async def _play(alice: Account, friend: Account, group_id: str) -> str:
    upload_id = await media.upload(friend, media.wav(0.2), kind="AUDIO", content_type="audio/wav")
    sent = await media.send_media(friend, [upload_id], conversation_id=group_id, client_id="vn")
    await alice.call(media.MARK_PLAYED, m=sent["id"])
    return "markPlayed by alice on the friend's voice note"


async def _receipts(alice: Account, friend: Account, group_id: str) -> str:
    last = (await alice.call(LAST_SEQ, id=group_id))["conversation"]["lastSeq"]
    await alice.call(MARK_READ, c=group_id, s=last)
    await friend.call(MARK_READ, c=group_id, s=last)
    return "markRead by alice and the friend"


LAST_SEQ = "query Last($id: ID!) { conversation(id: $id) { lastSeq } }"


async def _star(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(friend, group_id, "to be starred")
    await alice.call(STAR, m=message_id)
    return "starMessage by alice (an event for her alone)"


async def _hide(alice: Account, friend: Account, group_id: str) -> str:
    message_id = await _sent_by(friend, group_id, "to be deleted for alice")
    await alice.call(DELETE_FOR_ME, m=message_id)
    return "deleteMessageForMe by alice (an event for her alone)"


async def _settings(alice: Account, friend: Account, group_id: str) -> str:
    await alice.call(
        "mutation P($c: ID!) { pinConversation(conversationId: $c) { id } }", c=group_id
    )
    return "alice pins the group (an event for her alone)"


async def _invitation(alice: Account, friend: Account, group_id: str) -> str:
    await friend.call(
        "mutation C($input: CreateGroupInput!) { createGroup(input: $input) { id } }",
        input={"name": "The friend's", "inviteeIds": [alice.id]},
    )
    return "the friend invites alice to a new group"


async def _deletion(alice: Account, friend: Account, group_id: str) -> str:
    direct = (await friend.send("soon gone", to=alice))["conversationId"]
    await friend.call(
        "mutation D($c: ID!) { deleteConversation(conversationId: $c) { conversationId } }",
        c=direct,
    )
    return "the friend deletes their direct conversation with alice"


async def _removal(alice: Account, friend: Account, group_id: str) -> str:
    other = await friend.call(
        "mutation C($input: CreateGroupInput!) { createGroup(input: $input) { id } }",
        input={"name": "The friend's other", "inviteeIds": [alice.id]},
    )
    other_id = other["createGroup"]["id"]
    await alice.call(
        "mutation A($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }", c=other_id
    )
    await friend.call(
        "mutation R($c: ID!, $u: ID!) { removeGroupMember(conversationId: $c, userId: $u) { id } }",
        c=other_id,
        u=alice.id,
    )
    return "the friend removes alice from another group of theirs"


async def _profile(alice: Account, friend: Account, group_id: str) -> str:
    await friend.call(
        "mutation U($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }",
        input={"displayName": "The Friend"},
    )
    return "the friend changes their display name (alice shares the group with them)"


#: How to make each kind of logged event a subscription delivers (typing is not logged); the
#: events addressed to one person are all addressed to alice, so her log holds them.
PRODUCERS = {
    EventType.MESSAGE_POSTED: _post,
    EventType.RECEIPT_UPDATED: _receipts,
    EventType.MEMBER_SETTINGS_CHANGED: _settings,
    EventType.GROUP_INVITED: _invitation,
    EventType.CONVERSATION_DELETED: _deletion,
    EventType.MEMBERSHIP_ENDED: _removal,
    EventType.PROFILE_UPDATED: _profile,
    EventType.MESSAGE_EDITED: _edit,
    EventType.MESSAGE_DELETED: _unsend,
    EventType.REACTION_CHANGED: _react,
    EventType.MESSAGE_PINNED: _pin,
    EventType.MESSAGE_UNPINNED: _unpin,
    EventType.MESSAGE_PLAYED: _play,
    EventType.MESSAGE_STAR_CHANGED: _star,
    EventType.MESSAGE_HIDDEN: _hide,
}


async def _preview(app: RunningApp, alice: Account, group_id: str) -> str:
    sent = await alice.send("see https://example.com/page", conversation_id=group_id)
    job = PreviewJob(pk(sent["id"]), pk(group_id), "https://example.com/page")
    preview = {"url": job.url, "title": "Example", "siteName": "example.com"}
    assert await link_previews.attach(app.runtime, job, preview)
    return "the server attaches a link preview to alice's message"


#: Events the server makes by itself, not on anyone's request.
SERVER_PRODUCERS = {EventType.MESSAGE_UPDATED: _preview}


def _logged_of(kind: EventType) -> LoggedEvent:
    return cast(LoggedEvent, SimpleNamespace(type=kind))


async def _items(app: RunningApp, member: Account) -> list[LoggedEvent]:
    """Everything `member`'s myEvents replays, from the start of the log."""
    items: list[LoggedEvent] = []
    async with app.runtime.db.autocommit_engine.connect() as connection:
        while True:
            page = await event_log.list_for_user(
                connection, viewer_id=pk(member.id), after=items[-1].id if items else 0
            )
            items += page
            if len(page) < event_log.REPLAY_PAGE:
                return items
