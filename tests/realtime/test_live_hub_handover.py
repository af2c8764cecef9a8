"""A subscription handed to the hub while a dispatch round reads or renders gets every event.

The hub's round reads the log, picks each event's live recipients, awaits the rendering,
then moves its position past what it read. Two handovers lost an event for good:
- during the rendering: a newcomer whose catch-up read ended before an event existed was
  neither a recipient (it was not live when the round picked them) nor covered by its
  catch-up, and the round then moved the position past the event;
- during the read: the round picked the newcomer for what it read, past an event an earlier
  round had read while the newcomer was not yet live; its cursor then passed that event, and
  the re-read from where it was covered skipped it (once in six runs of the Redis restart
  test: seq 3 of 500 never arrived).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Deliver, ReadLog, StreamItem, Tap
from chatr.infra.live.hub import LiveHub
from tests.support.api import Account, register
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


@dataclass
class _Scene:
    """Bob and alice in a DM (message 1 sent), each with a tap; alice's adoption can be held
    between its catch-up read and its handover."""

    hub: LiveHub
    conversation_id: int
    first: int
    bob: Account
    bobs: Tap
    alices: Tap
    bobs_read: ReadLog
    alices_read: ReadLog
    holding_alice: bool = False
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    hand_over: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold_after_catch_up(self) -> None:
        """Call after each read that is not the dispatcher's: while alice is being adopted,
        her catch-up read is done here and her handover waits until `hand_alice_over`, as
        it does while the adopter awaits its connection's release."""
        if self.holding_alice:
            self.caught_up.set()
            await self.hand_over.wait()

    async def adopt_alice_held(self) -> asyncio.Task[None]:
        """Start alice's adoption; returns once her catch-up read is done."""
        self.holding_alice = True
        adopting = asyncio.create_task(
            self.hub.go_live(self.alices, cursor=self.first, read=self.alices_read)
        )
        await asyncio.wait_for(self.caught_up.wait(), STEP)
        return adopting

    async def hand_alice_over(self, adopting: asyncio.Task[None]) -> None:
        self.hand_over.set()
        await asyncio.wait_for(adopting, STEP)
        assert self.alices.live

    async def send(self, body: str) -> None:
        await self.bob.send(
            body, conversation_id=global_id(Kind.CONVERSATION, self.conversation_id)
        )

    async def alice_receives_through(self, seq: int) -> list[int | None]:
        received: list[int | None] = []
        while seq not in received:
            item = await asyncio.wait_for(self.alices.next_item(), STEP)
            assert isinstance(item, LoggedEvent)
            received.append(item.seq)
        return received


async def _scene(app: RunningApp, monkeypatch: pytest.MonkeyPatch) -> _Scene:
    """On a hub that reads only when something is announced (no tick)."""
    monkeypatch.setattr(app.runtime.live, "_tick", 3600.0)
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("m1", to=alice))["conversationId"])
    async with app.runtime.db.reader() as session:
        first = await event_log.position_before_seq(session, conversation_id=conversation_id, seq=1)
    return _Scene(
        hub=app.runtime.live,
        conversation_id=conversation_id,
        first=first,
        bob=bob,
        bobs=Tap(viewer_id=pk(bob.id), conversation_id=conversation_id, queue_size=100),
        alices=Tap(viewer_id=pk(alice.id), conversation_id=conversation_id, queue_size=100),
        bobs_read=_reader(app, pk(bob.id), conversation_id),
        alices_read=_reader(app, pk(alice.id), conversation_id),
    )


def _dispatcher_task(app: RunningApp) -> asyncio.Task[Any]:
    dispatcher = app.runtime.supervisor.get("live-dispatcher")
    assert dispatcher is not None and dispatcher.task is not None
    return dispatcher.task


async def test_a_newcomer_handed_over_while_a_round_renders_gets_the_event_that_round_read(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given bob live in a conversation through a renderer that will hold message 2's render
    hub: LiveHub = app.runtime.live
    scene = await _scene(app, monkeypatch)
    held = _HeldRenderer(hold_seq=2)
    scene.bobs.renderer = held
    dispatcher = _dispatcher_task(app)
    read_for_listeners = event_log.read_for_listeners
    dispatching = 0

    async def observed_read(connection: Any, *, after: int, **kwargs: Any) -> Any:
        nonlocal dispatching
        if asyncio.current_task() is dispatcher:
            dispatching += 1
            try:
                return await read_for_listeners(connection, after=after, **kwargs)
            finally:
                dispatching -= 1
        batch = await read_for_listeners(connection, after=after, **kwargs)
        await scene.hold_after_catch_up()
        return batch

    monkeypatch.setattr(event_log, "read_for_listeners", observed_read)
    async with hub.attach(scene.bobs), hub.attach(scene.alices):
        await hub.go_live(scene.bobs, cursor=scene.first, read=scene.bobs_read)
        await _until(lambda: not dispatching and not hub._dirty and not hub._wakeup.is_set())
        # and alice's subscription being adopted: its catch-up read is done (before message 2
        # exists, after the hub's last read) but its handover waits
        adopting = await scene.adopt_alice_held()
        # when message 2 is sent and the round that read it is rendering it for bob
        await scene.send("m2")
        await asyncio.wait_for(held.rendering.wait(), STEP)
        # and alice is handed over right then
        await scene.hand_alice_over(adopting)
        held.release.set()
        await scene.send("m3")
        # then alice gets message 2, then 3, once each
        assert await scene.alice_receives_through(3) == [2, 3]


async def test_a_newcomer_handed_over_while_a_round_reads_gets_what_an_earlier_round_read(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given bob live in a conversation, and alice's subscription being adopted: its catch-up
    # read is done (before message 2 exists) but its handover waits
    hub: LiveHub = app.runtime.live
    scene = await _scene(app, monkeypatch)
    dispatcher = _dispatcher_task(app)
    read_for_listeners = event_log.read_for_listeners
    read_three, release_read = asyncio.Event(), asyncio.Event()

    async def observed_read(connection: Any, *, after: int, **kwargs: Any) -> Any:
        batch = await read_for_listeners(connection, after=after, **kwargs)
        if asyncio.current_task() is not dispatcher:
            await scene.hold_after_catch_up()
        elif any(event.seq == 3 for event in batch.events) and not release_read.is_set():
            read_three.set()
            await release_read.wait()
        return batch

    monkeypatch.setattr(event_log, "read_for_listeners", observed_read)
    async with hub.attach(scene.bobs), hub.attach(scene.alices):
        await hub.go_live(scene.bobs, cursor=scene.first, read=scene.bobs_read)
        adopting = await scene.adopt_alice_held()
        # and message 2 dispatched to bob alone, the hub's position past it
        await scene.send("m2")
        two = await asyncio.wait_for(scene.bobs.next_item(), STEP)
        assert isinstance(two, LoggedEvent) and two.seq == 2
        await _until(lambda: hub.position is not None and hub.position > two.id)
        # when message 3 is sent and alice is handed over while the round reading it is on
        # its way
        await scene.send("m3")
        await asyncio.wait_for(read_three.wait(), STEP)
        await scene.hand_alice_over(adopting)
        release_read.set()
        # then alice gets message 2, then 3, once each, and bob message 3 once
        assert await scene.alice_receives_through(3) == [2, 3]
        three = await asyncio.wait_for(scene.bobs.next_item(), STEP)
        assert isinstance(three, LoggedEvent) and three.seq == 3
        await asyncio.sleep(0.1)
        assert not scene.bobs._items
