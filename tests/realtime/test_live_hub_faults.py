"""The live hub under faults: one subscription's trouble stays its own, a lost announcement
only delays an event by a tick, and a broken listener or dispatcher is restarted and shown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from chatr.errors import ChatrError, ErrorCode, ServiceUnavailable, StreamFailed
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Tap, adoption
from chatr.pubsub import envelopes
from chatr.settings import Settings
from tests.realtime.live_streams import Stream, running
from tests.support.api import Account, register
from tests.support.ids import Kind, global_id, pk
from tests.support.servers import RunningApp, in_process_app

ROUND_FAILED = "live fan-out round failed"


async def _pair(app: RunningApp) -> tuple[Account, Account, int]:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await bob.send("m1", to=alice))["conversationId"])
    return alice, bob, conversation_id


def _round_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if ROUND_FAILED in record.getMessage()]


async def _ready(app: RunningApp) -> tuple[bool, dict[str, Any]]:
    response = await app.http.get("/readyz")
    body = response.json()
    return response.status_code == 200, body


async def test_a_subscription_closed_while_the_hub_adopts_it_does_not_stall_the_others(
    app: RunningApp, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given bob live in a conversation, and a new subscription of alice's there, resuming
    # from the start, being adopted by the hub (its catch-up read is under way)
    caplog.set_level(logging.WARNING)
    alice, bob, conversation_id = await _pair(app)
    hub = app.runtime.live
    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ) as stable:
        await app.until_live(1)
        reading, release = asyncio.Event(), asyncio.Event()
        read_for_listeners = event_log.read_for_listeners

        async def slow_from_the_start(connection: Any, *, after: int, **kwargs: Any) -> Any:
            if after == 0:
                reading.set()
                await release.wait()
            return await read_for_listeners(connection, after=after, **kwargs)

        monkeypatch.setattr(event_log, "read_for_listeners", slow_from_the_start)
        tap = Tap(viewer_id=pk(alice.id), conversation_id=conversation_id, queue_size=10)

        async def own_read(after: int) -> Sequence[LoggedEvent]:
            raise AssertionError("the batched catch-up did not fail")

        async def subscription() -> None:
            async with hub.attach(tap):
                await hub.go_live(tap, cursor=0, read=own_read)
                await tap.until_ended()

        closing = asyncio.create_task(subscription())
        await asyncio.wait_for(reading.wait(), 5)
        # when alice's client closes the subscription right then
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        release.set()
        # then bob still gets the next message promptly
        sent = time.perf_counter()
        await alice.send(
            "still there?", conversation_id=global_id(Kind.CONVERSATION, conversation_id)
        )
        event, arrived = await stable.next(timeout=5)
        assert event.seq == 2
        assert arrived - sent < 0.5
    # and no fan-out round failed on the way
    assert _round_failures(caplog) == []


@pytest.mark.parametrize(
    ("injected", "ending"),
    [
        # a bug: STREAM_FAILED; the database unreachable: SERVICE_UNAVAILABLE (retryable)
        (RuntimeError, StreamFailed),
        (ConnectionResetError, ServiceUnavailable),
    ],
)
async def test_a_subscription_whose_catch_up_read_fails_ends_with_its_cursor_and_others_go_on(
    app: RunningApp,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    injected: type[Exception],
    ending: type[ChatrError],
) -> None:
    # given bob live in a conversation
    caplog.set_level(logging.WARNING)
    alice, bob, conversation_id = await _pair(app)
    hub = app.runtime.live
    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ) as stable:
        await app.until_live(1)

        async def broken_read(after: int) -> Sequence[LoggedEvent]:
            raise injected("injected: the catch-up read failed")

        # when a new subscription of alice's, resuming from the start, cannot be caught up:
        # the log cannot be read from there, neither for everyone nor just for her
        read_for_listeners = event_log.read_for_listeners

        async def failing_from_the_start(connection: Any, *, after: int, **kwargs: Any) -> Any:
            if after == 0:
                raise injected("injected: the batched catch-up read failed")
            return await read_for_listeners(connection, after=after, **kwargs)

        monkeypatch.setattr(event_log, "read_for_listeners", failing_from_the_start)
        tap = Tap(viewer_id=pk(alice.id), conversation_id=conversation_id, queue_size=10)
        async with hub.attach(tap):
            await asyncio.wait_for(hub.go_live(tap, cursor=0, read=broken_read), 5)
            # then it ends with a coded error saying where to resume from
            with pytest.raises(ending) as failed:
                await asyncio.wait_for(tap.until_ended(), 5)
        assert failed.value.code is ending.code
        assert failed.value.extensions["cursor"] == "0"
        # and bob goes on receiving promptly, as do later subscriptions
        async with running(
            Stream.conversation(
                app.runtime, viewer_id=pk(alice.id), conversation_id=conversation_id
            )
        ) as later:
            await app.until_live(2)
            sent = time.perf_counter()
            await alice.send(
                "after the failure", conversation_id=global_id(Kind.CONVERSATION, conversation_id)
            )
            event, arrived = await stable.next(timeout=5)
            assert event.seq == 2 and arrived - sent < 0.5
            assert (await later.next_event(timeout=5)).seq == 2
    assert _round_failures(caplog) == []


async def test_an_event_whose_announcement_was_lost_reaches_subscribers_within_the_tick(
    settings: Settings, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two instances that re-read the log every second, alice live on instance A
    tick = 1.0
    settings = settings.with_overrides(live_tick_seconds=tick)
    async with in_process_app(settings) as a, in_process_app(settings) as b:
        alice, bob, conversation_id = await _pair(a)
        async with running(
            Stream.conversation(
                a.runtime, viewer_id=pk(alice.id), conversation_id=conversation_id, after_seq=1
            )
        ) as stream:
            await a.until_live(1)
            # and instance B, which loses every event announcement (killed between commit
            # and publish, say)
            announce = b.runtime.announcer.announce

            async def lose_events(channel: str, envelope: envelopes.Envelope) -> None:
                if not isinstance(envelope, envelopes.EventAnnounced):
                    await announce(channel, envelope)

            monkeypatch.setattr(b.runtime.announcer, "announce", lose_events)
            # when bob sends through B
            sent = time.perf_counter()
            await bob.via(b.http).send(
                "never announced", conversation_id=global_id(Kind.CONVERSATION, conversation_id)
            )
            # then alice still gets it, within the tick
            event, arrived = await stream.next(timeout=tick * 5)
            assert event.seq == 2
            assert arrived - sent < tick + 0.5


async def _until(condition: Any, *, timeout: float, interval: float = 0.01) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def _sending(account: Account, conversation_id: int) -> AsyncIterator[list[int]]:
    """Send a message every 50 ms for the block; yields the seqs sent so far."""
    sent: list[int] = []

    async def send_forever() -> None:
        while True:
            message = await account.send(
                "tick", conversation_id=global_id(Kind.CONVERSATION, conversation_id)
            )
            sent.append(message["seq"])
            await asyncio.sleep(0.05)

    task = asyncio.create_task(send_forever())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_crashing_listener_is_restarted_and_shown_on_readyz_meanwhile(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given bob live in a conversation
    alice, bob, conversation_id = await _pair(app)
    hub = app.runtime.live
    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ) as stable:
        await app.until_live(1)
        assert (await _ready(app))[0]
        # when the hub's listener crashes on every announcement for a while
        broken = True
        handle = hub._on_broker_item

        def crash(item: Any) -> None:
            if broken:
                raise RuntimeError("injected: the listener crashed")
            handle(item)

        monkeypatch.setattr(hub, "_on_broker_item", crash)
        seen: dict[str, Any] = {}

        async def listener_shown_failing() -> bool:
            ready, body = await _ready(app)
            seen.update(body["taskStatus"]["live-listener"])
            return not ready and not body["tasks"] and seen["failures"] >= 1

        async with _sending(alice, conversation_id) as sent:
            # then /readyz says so while it waits to be restarted
            await _until(listener_shown_failing, timeout=10)
            assert seen["lastError"] == "RuntimeError: injected: the listener crashed"
            # and once the fault is gone it is restarted and the instance is ready again
            broken = False

            async def ready() -> bool:
                return (await _ready(app))[0]

            await _until(ready, timeout=10)
            await asyncio.sleep(0.2)
        status = (await _ready(app))[1]["taskStatus"]["live-listener"]
        assert status["running"] and status["restarts"] >= 1
        # and bob got every message sent meanwhile, in order, once
        received = [(await stable.next_event(timeout=5)).seq for _ in sent]
        assert received == sent


async def test_a_dispatcher_whose_rounds_keep_failing_is_degraded_until_one_succeeds(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given bob live in a conversation
    alice, bob, conversation_id = await _pair(app)
    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ) as stable:
        await app.until_live(1)
        # when the hub cannot read the log (the database is away)
        read = event_log.read_for_listeners

        async def database_down(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionRefusedError("injected: the database is away")

        monkeypatch.setattr(event_log, "read_for_listeners", database_down)
        message = await alice.send(
            "while down", conversation_id=global_id(Kind.CONVERSATION, conversation_id)
        )

        # then the dispatcher is shown degraded on /readyz
        async def degraded() -> bool:
            ready, body = await _ready(app)
            return not ready and bool(body["taskStatus"]["live-dispatcher"]["degraded"])

        await _until(degraded, timeout=10)
        # and once the database is back it recovers and delivers what was missed
        monkeypatch.setattr(event_log, "read_for_listeners", read)
        assert (await stable.next_event(timeout=10)).seq == message["seq"]

        async def recovered() -> bool:
            ready, body = await _ready(app)
            return ready and body["taskStatus"]["live-dispatcher"]["degraded"] is None

        await _until(recovered, timeout=10)


class _UnreachableBroker:
    def subscriber(self, **_: Any) -> Any:
        raise ConnectionRefusedError("injected: the broker is unreachable")


async def test_a_subscription_waiting_for_a_dead_listener_fails_with_a_code_in_bounded_time(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an instance whose hub listener crashed and cannot start again
    alice, bob, conversation_id = await _pair(app)
    hub = app.runtime.live
    hub.channel_timeout = 0.5

    def crash(item: Any) -> None:
        raise RuntimeError("injected: the listener crashed")

    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ):
        await app.until_live(1)
        monkeypatch.setattr(hub, "_broker", _UnreachableBroker())
        monkeypatch.setattr(hub, "_on_broker_item", crash)
        await alice.send("crash it", conversation_id=global_id(Kind.CONVERSATION, conversation_id))

        async def listener_down() -> bool:
            status = (await _ready(app))[1]["taskStatus"]["live-listener"]
            return "unreachable" in str(status["lastError"])

        await _until(listener_down, timeout=10)
        # when someone subscribes to a conversation whose channel is not live yet
        carol = await register(app.http)
        other = pk((await carol.send("hello", to=alice))["conversationId"])
        started = time.perf_counter()
        stream = Stream.conversation(app.runtime, viewer_id=pk(alice.id), conversation_id=other)
        # then the subscription ends with a coded error instead of waiting forever
        with pytest.raises(ServiceUnavailable) as refused:
            await stream.next(timeout=5)
        assert refused.value.code is ErrorCode.SERVICE_UNAVAILABLE
        assert time.perf_counter() - started < 2
        await stream.close()


async def test_a_subscription_far_behind_is_caught_up_on_its_own_exactly(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a hub that batches only newcomers right at the head of the log
    monkeypatch.setattr(adoption, "BATCH_REACH", 0)
    alice, bob, conversation_id = await _pair(app)
    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ):
        await app.until_live(1)
        for i in range(2, 6):
            await alice.send(f"m{i}", conversation_id=global_id(Kind.CONVERSATION, conversation_id))
        # when alice resumes from her first message, so her replay and catch-up run alone
        async with running(
            Stream.conversation(
                app.runtime,
                viewer_id=pk(alice.id),
                conversation_id=conversation_id,
                after_seq=1,
            )
        ) as resumed:
            replayed = [(await resumed.next_event()).seq for _ in range(4)]
            await app.until_live(2)
            await bob.send("live", conversation_id=global_id(Kind.CONVERSATION, conversation_id))
            # then she gets what she missed and what follows, in order, once
            assert replayed == [2, 3, 4, 5]
            assert (await resumed.next_event()).seq == 6
            with pytest.raises(TimeoutError):
                await resumed.next(timeout=0.3)
