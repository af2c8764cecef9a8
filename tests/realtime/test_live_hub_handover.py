"""A subscription handed to the hub while a dispatch round is rendering gets every event.

The hub's round reads the log, picks each event's live recipients, awaits the rendering,
then moves its position past what it read. A newcomer whose catch-up read ended before an
event existed, and whose handover lands during that await, was neither a recipient (it was
not live when the round picked them) nor covered by its catch-up, and the round then moved
the position past the event: it never arrived, and no tick could bring it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Deliver, ReadLog, StreamItem, Tap
from chatr.infra.live.hub import LiveHub
from tests.support.api import register
from tests.support.ids import Kind, global_id, pk
from tests.support.servers import RunningApp

#: Bounds every wait below; a healthy run takes milliseconds per step.
STEP = 10.0


class _HeldRenderer:
    """Delivers like the queue renderer, but holds the rendering of one seq until released:
    a socket renderer awaits the database the same way."""

    def __init__(self, hold_seq: int) -> None:
        self.hold_seq = hold_seq
        self.rendering = asyncio.Event()
        self.release = asyncio.Event()

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver:
        if isinstance(item, LoggedEvent) and item.seq == self.hold_seq:
            self.rendering.set()
            await self.release.wait()

        def deliver() -> None:
            for tap in taps:
                tap.offer(item)

        return deliver


def _reader(app: RunningApp, viewer_id: int, conversation_id: int) -> ReadLog:
    async def read(after: int) -> Sequence[LoggedEvent]:
        async with app.runtime.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_conversation(
                connection, viewer_id=viewer_id, conversation_id=conversation_id, after=after
            )

    return read


async def _until(condition: Any) -> None:
    async with asyncio.timeout(STEP):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_newcomer_handed_over_while_a_round_renders_gets_the_event_that_round_read(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given bob live in a conversation through a renderer that will hold message 2's render,
    # on a hub that reads only when something is announced (no tick)
    hub: LiveHub = app.runtime.live
    monkeypatch.setattr(hub, "_tick", 3600.0)
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("m1", to=alice))["conversationId"])
    async with app.runtime.db.reader() as session:
        first = await event_log.position_before_seq(session, conversation_id=conversation_id, seq=1)
    held = _HeldRenderer(hold_seq=2)
    bobs = Tap(viewer_id=pk(bob.id), conversation_id=conversation_id, queue_size=100)
    bobs.renderer = held
    alices = Tap(viewer_id=pk(alice.id), conversation_id=conversation_id, queue_size=100)
    dispatcher = app.runtime.supervisor.get("live-dispatcher")
    assert dispatcher is not None
    read_for_listeners = event_log.read_for_listeners
    dispatching = 0
    adopting_alice, caught_up, hand_over = False, asyncio.Event(), asyncio.Event()

    async def observed_read(connection: Any, *, after: int, **kwargs: Any) -> Any:
        nonlocal dispatching
        if asyncio.current_task() is dispatcher.task:
            dispatching += 1
            try:
                return await read_for_listeners(connection, after=after, **kwargs)
            finally:
                dispatching -= 1
        batch = await read_for_listeners(connection, after=after, **kwargs)
        if adopting_alice:
            caught_up.set()
            await hand_over.wait()
        return batch

    monkeypatch.setattr(event_log, "read_for_listeners", observed_read)
    async with hub.attach(bobs), hub.attach(alices):
        await hub.go_live(bobs, cursor=first, read=_reader(app, pk(bob.id), conversation_id))
        await _until(lambda: not dispatching and not hub._dirty and not hub._wakeup.is_set())
        # and alice's subscription being adopted: its catch-up read is done (before message 2
        # exists, after the hub's last read) but its handover waits, as it does while the
        # adopter awaits its connection's release
        adopting_alice = True
        adopting = asyncio.create_task(
            hub.go_live(alices, cursor=first, read=_reader(app, pk(alice.id), conversation_id))
        )
        await asyncio.wait_for(caught_up.wait(), STEP)
        # when message 2 is sent and the round that read it is rendering it for bob
        await bob.send("m2", conversation_id=global_id(Kind.CONVERSATION, conversation_id))
        await asyncio.wait_for(held.rendering.wait(), STEP)
        # and alice is handed over right then
        hand_over.set()
        await asyncio.wait_for(adopting, STEP)
        assert alices.live
        held.release.set()
        await bob.send("m3", conversation_id=global_id(Kind.CONVERSATION, conversation_id))
        # then alice gets message 2, then 3, once each
        received: list[int | None] = []
        while 3 not in received:
            item = await asyncio.wait_for(alices.next_item(), STEP)
            assert isinstance(item, LoggedEvent)
            received.append(item.seq)
        assert received == [2, 3]
