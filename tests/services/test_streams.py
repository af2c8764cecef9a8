"""The stream service: replay-then-live ordering and the slow-subscriber cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatr.errors import ErrorCode, StreamFailed, SubscriberOverflowError
from chatr.infra.event_log import LoggedEvent
from chatr.services import messages, streams
from chatr.settings import Settings
from tests.support.api import register
from tests.support.ids import Kind, global_id, pk
from tests.support.servers import RunningApp, in_process_app


@pytest.fixture
async def tiny_queue_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings.with_overrides(subscriber_queue_size=3)) as running:
        yield running


async def test_subscriber_that_falls_behind_is_cut_with_a_resumable_cursor(
    tiny_queue_app: RunningApp,
) -> None:
    # given a live stream that has delivered one event and then stops reading
    app = tiny_queue_app
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("m0", to=alice))["conversationId"])
    stream = streams.conversation_events(
        app.runtime, viewer_id=pk(alice.id), conversation_id=conversation_id, after_seq=None
    )
    receiving = asyncio.ensure_future(anext(stream))
    async with asyncio.timeout(5):
        while app.runtime.live.metrics()["live_taps"] == 0:
            await asyncio.sleep(0.01)
    await bob.send("m1", to=alice)
    first = await receiving
    assert isinstance(first, LoggedEvent) and first.seq == 2
    # when more events arrive than its queue holds
    for i in range(3, 11):
        await messages.send(
            app.runtime,
            sender_id=pk(bob.id),
            body=f"m{i}",
            client_id=f"k{i}",
            conversation_id=conversation_id,
        )
    async with asyncio.timeout(5):
        while app.runtime.live.metrics()["overflows"] == 0:
            await asyncio.sleep(0.01)
    # then reading on ends the stream with SUBSCRIBER_OVERFLOW and where to resume from
    with pytest.raises(SubscriberOverflowError) as cut:
        await anext(stream)
    assert cut.value.code is ErrorCode.SUBSCRIBER_OVERFLOW
    assert cut.value.extensions["cursor"] == str(first.id)
    # and resuming from that cursor's seq gets everything that was missed, in order
    resumed = streams.conversation_events(
        app.runtime, viewer_id=pk(alice.id), conversation_id=conversation_id, after_seq=first.seq
    )
    seqs = [(await anext(resumed)).seq for _ in range(8)]  # type: ignore[union-attr]
    assert seqs == list(range(3, 11))
    await resumed.aclose()


def test_message_snapshot_carries_exactly_the_message_columns() -> None:
    from dataclasses import fields

    from chatr.infra.event_log import MessageSnapshot
    from chatr.models import Message

    assert [f.name for f in fields(MessageSnapshot)] == [c.name for c in Message.__table__.c]


class _FailingRenderer:
    """A renderer with a bug in it."""

    async def render(self, item: object, taps: object) -> None:
        raise RuntimeError("a bug while rendering")


async def test_a_stream_whose_rendering_fails_ends_with_a_resumable_error_and_others_go_on(
    app: RunningApp,
) -> None:
    # given alice with a stream whose renderer breaks, and bob with an ordinary one
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("m0", to=alice))["conversationId"])
    broken = streams.conversation_events(
        app.runtime,
        viewer_id=pk(alice.id),
        conversation_id=conversation_id,
        after_seq=None,
        renderer=_FailingRenderer(),  # type: ignore[arg-type]
    )
    healthy = streams.conversation_events(
        app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id, after_seq=None
    )
    ending = asyncio.ensure_future(anext(broken))
    receiving = asyncio.ensure_future(anext(healthy))
    async with asyncio.timeout(5):
        while app.runtime.live.metrics()["live_taps"] < 2:
            await asyncio.sleep(0.01)
    # when a message arrives
    await alice.send("m1", to=bob)
    # then the broken stream ends with STREAM_FAILED and where to resume from
    with pytest.raises(StreamFailed) as failed:
        await ending
    assert failed.value.code is ErrorCode.STREAM_FAILED
    assert "cursor" in failed.value.extensions
    # and the hub went on delivering to everyone else
    delivered = await receiving
    assert isinstance(delivered, LoggedEvent) and delivered.seq == 2
    await healthy.aclose()


async def test_a_stream_that_reads_slowly_while_replaying_is_not_cut(
    tiny_queue_app: RunningApp,
) -> None:
    # given more history than the live queue holds
    app = tiny_queue_app
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("m1", to=alice))["conversationId"])
    for i in range(2, 11):
        await bob.send(f"m{i}", conversation_id=global_id(Kind.CONVERSATION, conversation_id))
    # when a stream replays all of it, pausing between items
    stream = streams.conversation_events(
        app.runtime, viewer_id=pk(alice.id), conversation_id=conversation_id, after_seq=0
    )
    seqs = []
    for _ in range(10):
        item = await anext(stream)
        assert isinstance(item, LoggedEvent)
        seqs.append(item.seq)
        await asyncio.sleep(0.01)
    await stream.aclose()
    # then it gets everything in order: replay reads on from the log, nothing queues up
    assert seqs == list(range(1, 11))
    assert app.runtime.live.metrics()["overflows"] == 0
