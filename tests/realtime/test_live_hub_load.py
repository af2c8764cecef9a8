"""The live hub under churn and reconnect storms: newcomers never hold up live delivery.

Both drive in-process subscriptions through the real stream service (attach, replay,
adoption, live) rather than sockets, so thousands fit in a test: what is under test is the
hub, not the WebSocket layer. Latency is from just before a message is sent (the service
call, not HTTP) to its arrival at a stable subscriber's stream.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Deliver, ReadLog, StreamItem, Tap, drain_log
from chatr.runtime import Runtime
from chatr.services import messages
from tests.groups.helpers import group_with
from tests.realtime.live_streams import Stream, running
from tests.support.api import Account, register
from tests.support.ids import pk
from tests.support.servers import RunningApp

ROUND_FAILED = "live fan-out round failed"
CHURN_CYCLES = 1000
CHURN_ROUNDS = 8


def _p99(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


class _Sender:
    """Sends one message at a time and times its arrival at a stable subscriber."""

    def __init__(self, rt: Runtime, sender: Account, conversation_id: int, stable: Stream) -> None:
        self._rt = rt
        self._sender_id = pk(sender.id)
        self._conversation_id = conversation_id
        self._stable = stable
        self._count = 0
        self.last_seq = 0

    async def latency(self) -> float:
        self._count += 1
        started = time.perf_counter()
        sent = await messages.send(
            self._rt,
            sender_id=self._sender_id,
            body=f"steady {self._count}",
            client_id=f"steady-{self._count}",
            conversation_id=self._conversation_id,
        )
        self.last_seq = sent.seq
        event, arrived = await self._stable.next(timeout=10)
        assert event.seq == sent.seq, "the stable subscriber got something else, or twice"
        return arrived - started

    async def measure(
        self, *, at_least: int, until: asyncio.Future[Any] | None = None
    ) -> list[float]:
        """Latencies of `at_least` messages, and more until `until` is done."""
        samples: list[float] = []
        while len(samples) < at_least or (until is not None and not until.done()):
            samples.append(await self.latency())
            await asyncio.sleep(0.005)
        return samples


async def _dm(app: RunningApp) -> tuple[Account, Account, int]:
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = pk((await alice.send("hello", to=bob))["conversationId"])
    return alice, bob, conversation_id


def _watch_adoptions(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[asyncio.Task[Any], asyncio.Event], list[int]]:
    """Let a test see when a subscription's task enters adoption, and count the ones that
    were closed (cancelled) before it finished."""
    hub = app.runtime.live
    entered: dict[asyncio.Task[Any], asyncio.Event] = {}
    cut_short = [0]
    go_live = hub.go_live

    async def watched(tap: Tap, *, cursor: int, read: ReadLog) -> None:
        task = asyncio.current_task()
        if task in entered:
            entered[task].set()
        try:
            await go_live(tap, cursor=cursor, read=read)
        except asyncio.CancelledError:
            cut_short[0] += 1
            raise

    monkeypatch.setattr(hub, "go_live", watched)
    return entered, cut_short


async def _churn(
    app: RunningApp,
    entered: dict[asyncio.Task[Any], asyncio.Event],
    *,
    viewer: Account,
    conversation_id: int,
    after_seq: Callable[[], int],
    cycles: int,
    workers: int,
) -> None:
    """`cycles` subscriptions, each closed as soon as (or a moment after) the hub adopts it;
    half of them resume a few messages back (`after_seq()`), half start from now."""
    remaining = [cycles]
    rng = random.Random(8)

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            stream = Stream.conversation(
                app.runtime,
                viewer_id=pk(viewer.id),
                conversation_id=conversation_id,
                after_seq=rng.choice([None, after_seq()]),
            )
            adopting = entered[stream.task] = asyncio.Event()
            try:
                await asyncio.wait_for(adopting.wait(), 10)
                for _ in range(rng.choice([0, 0, 1, 2, 5])):
                    await asyncio.sleep(0)  # land at different points of the adoption
            finally:
                await stream.close()
                del entered[stream.task]

    await asyncio.gather(*(worker() for _ in range(workers)))


# KNOWN INTERMITTENT (timing): a p99 over ~160 samples compared with another, in a process
# that shares two cores with the other worker, failed twice in ~10 full runs on 2026-12-06
# (35 vs 2 x 8.2 ms in a clean-clone run while the browser tests ran on the other worker at
# the same time, since pytest 9.2 had broken their grouping; 50.1 vs 2 x 24.4 ms in a loaded
# local run); it passed alone and in every other run. Re-run once: a second failure still
# fails the suite, so a real slowdown (every churned round slower) is still caught.
@pytest.mark.flaky(reruns=1)
async def test_subscriptions_closed_during_adoption_do_not_slow_live_delivery(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given bob live in a conversation with alice, who sends to him one message at a time
    caplog.set_level(logging.WARNING)
    alice, bob, conversation_id = await _dm(app)
    entered, cut_short = _watch_adoptions(app, monkeypatch)
    async with running(
        Stream.conversation(app.runtime, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ) as stable:
        await app.until_live(1)
        sender = _Sender(app.runtime, alice, conversation_id, stable)
        await sender.measure(at_least=20)  # warm-up
        # when alice's other devices subscribe and hang up during their adoption, 1,000 times
        # (eight rounds with and without that churn alternate, so machine noise, which on a
        # busy CI machine moves a p99 of a few hundred samples by milliseconds, hits both alike)
        quiet: list[float] = []
        churned: list[float] = []
        for _ in range(CHURN_ROUNDS):
            quiet += await sender.measure(at_least=60)
            churning = asyncio.ensure_future(
                _churn(
                    app,
                    entered,
                    viewer=alice,
                    conversation_id=conversation_id,
                    after_seq=lambda: max(sender.last_seq - 3, 0),
                    cycles=CHURN_CYCLES // CHURN_ROUNDS,
                    workers=1,
                )
            )
            churned += await sender.measure(at_least=20, until=churning)
            await churning
        # (none of the closed subscriptions is left behind)
        assert app.runtime.live.metrics()["taps"] == 1
    # then most of them really were closed mid-adoption
    assert cut_short[0] >= 500
    # and no fan-out round failed, and bob's p99 latency stayed within 2x of the quiet one
    assert [r for r in caplog.records if ROUND_FAILED in r.getMessage()] == []
    print(
        f"\nchurn: p99 {_p99(churned) * 1000:.1f} ms ({len(churned)} messages), "
        f"quiet p99 {_p99(quiet) * 1000:.1f} ms ({len(quiet)}); {cut_short[0]} cut mid-adoption"
    )
    assert _p99(churned) <= 2 * _p99(quiet)


STORM = 2000
MISSED = 200
MEMBERS = 20


async def _send_many(rt: Runtime, sender: Account, conversation_id: int, count: int) -> None:
    for i in range(count):
        await messages.send(
            rt,
            sender_id=pk(sender.id),
            body=f"history {i}",
            client_id=f"history-{conversation_id}-{i}-{time.monotonic_ns()}",
            conversation_id=conversation_id,
        )


def _reader(rt: Runtime, conversation_id: int, viewer_id: int) -> ReadLog:
    """The log as one member sees it (what `streams.conversation_events` reads with)."""

    async def read(after: int) -> Sequence[LoggedEvent]:
        async with rt.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_conversation(
                connection, viewer_id=viewer_id, conversation_id=conversation_id, after=after
            )

    return read


class _Recorder:
    """A renderer that keeps what each tap is handed, synchronously, as a socket outlet
    writes its frames (no task per subscription), so the test measures the hub."""

    def __init__(self, count: int) -> None:
        self._count = count
        self.ids: dict[Tap, list[int]] = {}
        self.complete: dict[Tap, asyncio.Event] = {}

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver:
        def deliver() -> None:
            if not isinstance(item, LoggedEvent):
                return
            for tap in taps:
                ids = self.ids.setdefault(tap, [])
                ids.append(item.id)
                if len(ids) == self._count:
                    self.complete[tap].set()

        return deliver


async def _resume(
    rt: Runtime, recorder: _Recorder, viewer_id: int, conversation_id: int, cursor: int
) -> list[int]:
    """A subscription resuming from `cursor` through the hub's own API: attach, catch up
    (adoption), live; returns the ids of the events it was handed."""
    tap = Tap(
        viewer_id=viewer_id, conversation_id=conversation_id, queue_size=1000, renderer=recorder
    )
    complete = recorder.complete[tap] = asyncio.Event()
    async with rt.live.attach(tap):
        await rt.live.go_live(tap, cursor=cursor, read=_reader(rt, conversation_id, viewer_id))
        await asyncio.wait_for(complete.wait(), 60)
        await asyncio.sleep(0.2)  # (and nothing more after the last)
        assert not tap.ended
    return recorder.ids[tap]


async def test_a_reconnect_storm_resumes_every_stream_exactly_and_live_stays_fast(
    app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    # given a group of 20 whose members missed the last 200 events, and bob live in a
    # conversation with alice, who sends to him one message at a time
    caplog.set_level(logging.WARNING)
    rt = app.runtime
    owner = await register(app.http)
    members = list(await asyncio.gather(*(register(app.http) for _ in range(MEMBERS - 1))))
    group_id = pk(await group_with(owner, members=members))
    await _send_many(rt, owner, group_id, MISSED + 10)
    async with rt.db.reader() as session:
        cursor = await event_log.current_position(session)
    await _send_many(rt, owner, group_id, MISSED)
    viewers = [pk(account.id) for account in (owner, *members)]
    alice, bob, conversation_id = await _dm(app)
    async with running(
        Stream.conversation(rt, viewer_id=pk(bob.id), conversation_id=conversation_id)
    ) as stable:
        await app.until_live(1)
        sender = _Sender(rt, alice, conversation_id, stable)
        await sender.measure(at_least=20)  # warm-up
        # when 2,000 subscriptions (100 devices of each member) resume at once, 200 events
        # back, while the group goes on talking
        started = time.perf_counter()
        recorder = _Recorder(count=MISSED + 5)
        storm = asyncio.ensure_future(
            asyncio.gather(
                *(
                    _resume(rt, recorder, viewers[i % MEMBERS], group_id, cursor)
                    for i in range(STORM)
                )
            )
        )
        await _send_many(rt, owner, group_id, 5)
        during = await sender.measure(at_least=20, until=storm)
        received = await storm
        storm_seconds = time.perf_counter() - started
    # then every resumed stream got exactly what it missed, in order, once
    expected = [event.id async for event in drain_log(_reader(rt, group_id, viewers[0]), cursor)]
    assert len(expected) == MISSED + 5
    assert all(ids == expected for ids in received)
    # and bob's live latency stayed under 250 ms p99 throughout
    print(
        f"\nstorm: {STORM} resumed in {storm_seconds:.1f} s; live p99 "
        f"{_p99(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms ({len(during)} msgs)"
    )
    assert _p99(during) < 0.25
    assert [r for r in caplog.records if ROUND_FAILED in r.getMessage()] == []
