"""The Broker's contract, on the in-process transport and on the shared Redis alike.

Fault behaviour (Redis killed, hung, restarted) lives in test_redis_faults.py, against a
private redis-server; `FakeTransport` below covers reconnect ordering deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from chatr.pubsub.broker import (
    RESYNC,
    Backoff,
    Broker,
    BrokerUnavailable,
    Message,
    Resync,
    SubscriberOverflow,
    create_broker,
)
from chatr.pubsub.memory_transport import MemoryTransport
from chatr.pubsub.redis_transport import RedisTransport

from .helpers import (
    SHARED_REDIS_URL,
    WAIT,
    next_item,
    server_channels,
    server_subscriber_count,
    unique_prefix,
    wait_until,
)

OWNER_TASK = "chatr-pubsub-owner"


class RecordingTransport:
    """Delegates to a real transport and records every (un)subscribe and the task that sent it."""

    def __init__(self, inner: MemoryTransport | RedisTransport) -> None:
        self.inner = inner
        self.commands: list[tuple[str, tuple[str, ...], str]] = []

    def _record(self, command: str, channels: Sequence[str]) -> None:
        task = asyncio.current_task()
        self.commands.append((command, tuple(channels), task.get_name() if task else "?"))

    async def connect(self) -> None:
        await self.inner.connect()

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def subscribe(self, channels: Sequence[str]) -> None:
        self._record("subscribe", channels)
        await self.inner.subscribe(channels)

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        self._record("unsubscribe", channels)
        await self.inner.unsubscribe(channels)

    async def ping(self) -> None:
        await self.inner.ping()

    async def next_message(self) -> tuple[str, str]:
        return await self.inner.next_message()

    async def publish(self, channel: str, data: str) -> None:
        await self.inner.publish(channel, data)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Bus:
    """Brokers on one message bus: the in-process transport, or the shared Redis."""

    kind: str
    prefix: str = field(default_factory=unique_prefix)
    brokers: list[Broker] = field(default_factory=list)
    recorders: list[RecordingTransport] = field(default_factory=list)

    async def broker(self, **options: int) -> Broker:
        inner = MemoryTransport() if self.kind == "memory" else RedisTransport(SHARED_REDIS_URL)
        recorder = RecordingTransport(inner)
        broker = Broker(recorder, prefix=self.prefix, **options)
        self.brokers.append(broker)
        self.recorders.append(recorder)
        await broker.start()
        await wait_until(lambda: broker.ready, what="broker ready")
        return broker

    def commands(self, command: str) -> list[tuple[str, ...]]:
        """Every `command` ("subscribe"/"unsubscribe") sent to the transport, as prefixed names."""
        return [
            channels for recorder in self.recorders for name, channels, _ in recorder.commands
            if name == command
        ]  # fmt: skip

    def key(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    async def transport_channels(self) -> set[str]:
        """Logical channels subscribed on the bus itself (for Redis: as the server sees it)."""
        if self.kind == "redis":
            return await server_channels(SHARED_REDIS_URL, self.prefix)
        return {
            name.removeprefix(f"{self.prefix}:")
            for recorder in self.recorders
            if isinstance(recorder.inner, MemoryTransport)
            for name in recorder.inner.subscribed
        }


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    bus = Bus(request.param)
    yield bus
    for broker in bus.brokers:
        await broker.stop()


@pytest.fixture
async def redis_bus() -> AsyncIterator[Bus]:
    bus = Bus("redis")
    yield bus
    for broker in bus.brokers:
        await broker.stop()


async def test_subscriber_receives_what_is_published_after_subscribe_returns(bus: Bus) -> None:
    broker = await bus.broker()

    async with broker.subscribe("conversation:1") as sub:
        await broker.publish("conversation:1", '{"seq": 1}')
        await broker.publish("conversation:2", "not for us")
        await broker.publish("conversation:1", '{"seq": 2}')

        assert await next_item(sub) == Message("conversation:1", '{"seq": 1}')
        assert await next_item(sub) == Message("conversation:1", '{"seq": 2}')
        assert sub.channels == {"conversation:1"}

    assert broker.metrics()["published"] == 3


async def test_one_subscriber_reads_several_channels_in_publish_order(bus: Bus) -> None:
    broker = await bus.broker()

    async with broker.subscriber() as sub:
        await sub.add("user:7")
        await sub.add("conversation:3")
        await broker.publish("conversation:3", "a")
        await broker.publish("user:7", "b")

        assert [await next_item(sub), await next_item(sub)] == [
            Message("conversation:3", "a"),
            Message("user:7", "b"),
        ]


async def test_twenty_concurrent_subscribers_all_receive_the_first_message(bus: Bus) -> None:
    # given: 20 clients subscribing to the same new channel in the same instant
    broker = await bus.broker()
    subscribed = 0
    all_subscribed = asyncio.Event()

    async def client() -> Message | Resync:
        nonlocal subscribed
        async with broker.subscribe("conversation:20") as sub:
            subscribed += 1
            if subscribed == 20:
                all_subscribed.set()
            return await next_item(sub)

    clients = [asyncio.create_task(client()) for _ in range(20)]
    async with asyncio.timeout(WAIT):
        await all_subscribed.wait()

    # when
    await broker.publish("conversation:20", "first")

    # then: everyone got it and left without errors
    async with asyncio.timeout(WAIT):
        received = await asyncio.gather(*clients)
    assert received == [Message("conversation:20", "first")] * 20
    # one SUBSCRIBE for all of them, and one UNSUBSCRIBE once the last one left
    assert bus.commands("subscribe") == [(bus.key("conversation:20"),)]
    assert broker.metrics()["channels"] == 0
    await wait_until(lambda: bus.commands("unsubscribe") == [(bus.key("conversation:20"),)])
    assert await bus.transport_channels() == set()


async def test_transport_subscribes_on_first_subscriber_and_unsubscribes_after_last(
    bus: Bus,
) -> None:
    broker = await bus.broker()

    async with broker.subscribe("conversation:5") as first:
        async with broker.subscribe("conversation:5"):
            assert await bus.transport_channels() == {"conversation:5"}
        # the second one left; the first still listens
        await broker.publish("conversation:5", "still here")
        assert await next_item(first) == Message("conversation:5", "still here")
        assert await bus.transport_channels() == {"conversation:5"}

    await wait_until(lambda: broker.metrics()["live_channels"] == 0)
    assert await bus.transport_channels() == set()
    assert bus.commands("subscribe") == [(bus.key("conversation:5"),)]
    assert bus.commands("unsubscribe") == [(bus.key("conversation:5"),)]


async def test_add_is_idempotent_and_remove_releases_the_channel(bus: Bus) -> None:
    broker = await bus.broker()

    async with broker.subscriber() as sub:
        await sub.add("user:1")
        await sub.add("user:1")
        assert broker.metrics()["channels"] == 1

        sub.remove("user:1")
        await broker.publish("user:1", "after remove")

        assert sub.channels == frozenset()
        await wait_until(lambda: broker.metrics()["live_channels"] == 0)
        assert await bus.transport_channels() == set()
        assert sub.pending == 0
    assert bus.commands("subscribe") == [(bus.key("user:1"),)]


async def test_only_the_owner_task_sends_subscribe_and_unsubscribe(bus: Bus) -> None:
    broker = await bus.broker()

    async def client(number: int) -> None:
        async with broker.subscribe(f"conversation:{number % 3}") as sub:
            await sub.add("user:1")

    async with asyncio.timeout(WAIT):
        await asyncio.gather(
            *(asyncio.create_task(client(n), name=f"client-{n}") for n in range(10))
        )
    await wait_until(lambda: broker.metrics()["live_channels"] == 0)

    senders = {sender for recorder in bus.recorders for _, _, sender in recorder.commands}
    assert senders == {OWNER_TASK}


async def test_one_redis_connection_serves_every_local_subscriber(redis_bus: Bus) -> None:
    broker = await redis_bus.broker()

    async with (
        broker.subscribe("conversation:1"),
        broker.subscribe("conversation:1"),
        broker.subscribe("conversation:1"),
    ):
        count = await server_subscriber_count(SHARED_REDIS_URL, redis_bus.prefix, "conversation:1")

    assert count == 1


async def test_cancelling_subscribers_at_any_point_leaves_no_reference_behind(bus: Bus) -> None:
    # given: clients that go away at every stage of setting up a subscription
    broker = await bus.broker()

    async def client() -> None:
        async with broker.subscribe("conversation:9") as sub:
            async for _ in sub:
                pass

    for step in range(24):
        task = asyncio.create_task(client())
        for _ in range(step % 12):
            await asyncio.sleep(0)
        if step >= 12:
            await asyncio.sleep(0.001 * (step - 11))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(1):
                await task

    # then: no local reference, and the transport converges to no subscription
    assert broker.metrics()["channels"] == 0
    assert broker.metrics()["subscribers"] == 0
    await wait_until(lambda: broker.metrics()["live_channels"] == 0)
    assert await bus.transport_channels() == set()
    # and the owner is not wedged: the channel still works
    async with broker.subscribe("conversation:9") as sub:
        await broker.publish("conversation:9", "alive")
        assert await next_item(sub) == Message("conversation:9", "alive")


async def test_slow_subscriber_is_cut_while_others_receive_everything(bus: Bus) -> None:
    broker = await bus.broker(queue_size=5)

    async with (
        broker.subscribe("conversation:1") as fast,
        broker.subscribe("conversation:1") as slow,
    ):
        for number in range(30):
            await broker.publish("conversation:1", str(number))
            assert await next_item(fast) == Message("conversation:1", str(number))
            assert slow.pending <= 5  # memory stays bounded however far behind it is

        with pytest.raises(SubscriberOverflow, match="resume from the last cursor"):
            await next_item(slow)
        assert slow.channels == frozenset()
        assert slow.pending == 0

    metrics = broker.metrics()
    assert metrics["overflows"] == 1
    assert metrics["delivered"] == 30 + 5


async def test_stop_ends_the_iteration_of_active_subscribers(bus: Bus) -> None:
    broker = await bus.broker()
    listening = asyncio.Event()

    async def client() -> list[Message | Resync]:
        async with broker.subscribe("conversation:1") as sub:
            listening.set()
            return [item async for item in sub]

    task = asyncio.create_task(client())
    async with asyncio.timeout(WAIT):
        await listening.wait()

    await broker.stop()

    async with asyncio.timeout(WAIT):
        assert await task == []
    assert not broker.ready


async def test_publish_and_subscribe_after_stop_raise_broker_unavailable(bus: Bus) -> None:
    broker = await bus.broker()
    await broker.stop()

    with pytest.raises(BrokerUnavailable):
        await broker.publish("conversation:1", "late")
    with pytest.raises(BrokerUnavailable):
        async with broker.subscribe("conversation:1"):
            pass


async def test_brokers_with_different_prefixes_do_not_see_each_other(redis_bus: Bus) -> None:
    other_bus = Bus("redis")
    mine = await redis_bus.broker()
    theirs = await other_bus.broker()
    try:
        async with mine.subscribe("conversation:1") as sub:
            await theirs.publish("conversation:1", "other deployment")
            await mine.publish("conversation:1", "ours")

            assert await next_item(sub) == Message("conversation:1", "ours")
    finally:
        await theirs.stop()


async def test_two_brokers_on_one_redis_deliver_across_instances(redis_bus: Bus) -> None:
    instance_a = await redis_bus.broker()
    instance_b = await redis_bus.broker()

    async with instance_a.subscribe("conversation:1") as sub:
        await instance_b.publish("conversation:1", "from b")

        assert await next_item(sub) == Message("conversation:1", "from b")


async def test_create_broker_picks_the_transport_from_the_url() -> None:
    memory = create_broker("memory://")
    redis = create_broker(SHARED_REDIS_URL, prefix="x", queue_size=3)

    assert isinstance(memory._transport, MemoryTransport)
    assert isinstance(redis._transport, RedisTransport)
    with pytest.raises(ValueError, match="unsupported broker URL"):
        create_broker("kafka://localhost")
    await memory.stop()
    await redis.stop()


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.05, 2.0)

    delays = [backoff.next() for _ in range(8)]
    backoff.reset()

    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff.next() == 0.05


class FakeTransport:
    """A scriptable transport: it refuses connections, drops one, or holds (un)subscribes."""

    def __init__(self, *, refuse_connects: int = 0) -> None:
        self.refuse_connects = refuse_connects
        self.connects = 0
        self.subscribed: set[str] = set()
        self.held: set[str] = set()  # commands now waiting at a gate
        self._gates: dict[str, asyncio.Event] = {}
        self._inbox: asyncio.Queue[tuple[str, str] | Exception] = asyncio.Queue()

    def hold(self, command: str) -> None:
        """Make every "subscribe" or "unsubscribe" wait until `release(command)`."""
        self._gates[command] = asyncio.Event()

    def release(self, command: str) -> None:
        self._gates.pop(command).set()

    async def _gate(self, command: str) -> None:
        gate = self._gates.get(command)
        if gate is not None:
            self.held.add(command)
            try:
                await gate.wait()
            finally:
                self.held.discard(command)

    async def connect(self) -> None:
        self.connects += 1
        if self.refuse_connects:
            self.refuse_connects -= 1
            raise ConnectionError("connection refused")
        self._inbox = asyncio.Queue()

    async def disconnect(self) -> None:
        self.subscribed.clear()

    async def subscribe(self, channels: Sequence[str]) -> None:
        await self._gate("subscribe")
        self.subscribed.update(channels)

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        await self._gate("unsubscribe")
        self.subscribed.difference_update(channels)

    async def ping(self) -> None:
        pass

    async def next_message(self) -> tuple[str, str]:
        item = await self._inbox.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def publish(self, channel: str, data: str) -> None:
        if channel in self.subscribed:
            self._inbox.put_nowait((channel, data))

    async def aclose(self) -> None:
        pass

    def drop_connection(self) -> None:
        self._inbox.put_nowait(ConnectionError("connection reset by peer"))


@asynccontextmanager
async def fake_broker(**options: int) -> AsyncIterator[tuple[Broker, FakeTransport]]:
    """A broker whose transport refuses its first three connections."""
    transport = FakeTransport(refuse_connects=3)
    broker = Broker(transport, prefix="p", backoff_initial=0.001, backoff_max=0.004, **options)
    await broker.start()
    try:
        await wait_until(lambda: broker.ready, what="ready after refused connections")
        yield broker, transport
    finally:
        await broker.stop()


async def test_owner_retries_refused_connections_without_resync() -> None:
    async with fake_broker() as (broker, transport):
        assert transport.connects == 4
        assert broker.metrics()["reconnects"] == 0
        async with broker.subscribe("c") as sub:
            await broker.publish("c", "first")
            assert await next_item(sub) == Message("c", "first")  # no RESYNC on first connect


async def test_resync_is_delivered_only_after_every_channel_is_resubscribed() -> None:
    async with fake_broker() as (broker, transport), broker.subscriber() as sub:
        await sub.add("a")
        await sub.add("b")
        # when: the connection drops, and the resubscription is slow
        transport.hold("subscribe")
        transport.drop_connection()
        await wait_until(lambda: "subscribe" in transport.held, what="resubscription to start")

        # then: not ready, and no RESYNC yet: messages could still be missed
        assert not broker.ready
        assert sub.pending == 0

        transport.release("subscribe")
        assert await next_item(sub) is RESYNC
        assert transport.subscribed == {"p:a", "p:b"}
        assert broker.ready
        assert broker.metrics()["reconnects"] == 1

        await broker.publish("b", "live again")
        assert await next_item(sub) == Message("b", "live again")


async def test_add_returns_only_once_the_transport_acknowledged() -> None:
    async with fake_broker() as (broker, transport), broker.subscriber() as sub:
        transport.hold("subscribe")
        adding = asyncio.create_task(sub.add("c"))
        await wait_until(lambda: "subscribe" in transport.held)
        assert not adding.done()

        transport.release("subscribe")
        async with asyncio.timeout(WAIT):
            await adding
        assert transport.subscribed == {"p:c"}


async def test_add_during_a_pending_unsubscribe_waits_for_the_resubscribe() -> None:
    # given: the last subscriber of "c" left and the UNSUBSCRIBE is in flight
    async with fake_broker() as (broker, transport), broker.subscriber() as sub:
        await sub.add("c")
        transport.hold("unsubscribe")
        sub.remove("c")
        await wait_until(lambda: "unsubscribe" in transport.held)

        # when: someone wants "c" again before the UNSUBSCRIBE is done
        adding = asyncio.create_task(sub.add("c"))
        await asyncio.sleep(0)

        # then: add() does not claim "live" until the channel is subscribed again
        assert not adding.done()
        transport.release("unsubscribe")
        async with asyncio.timeout(WAIT):
            await adding
        assert transport.subscribed == {"p:c"}


async def test_an_add_that_times_out_releases_its_channel_but_keeps_the_subscriber() -> None:
    async with fake_broker() as (broker, transport), broker.subscriber() as sub:
        await sub.add("kept")
        transport.hold("subscribe")

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await sub.add("slow")

        assert sub.channels == {"kept"}
        assert broker.metrics()["channels"] == 1
        transport.release("subscribe")
        await wait_until(lambda: transport.subscribed == {"p:kept"})
        await broker.publish("kept", "still listening")
        assert await next_item(sub) == Message("kept", "still listening")


async def test_concurrent_adds_of_one_channel_survive_the_cancellation_of_either() -> None:
    async with fake_broker() as (broker, transport), broker.subscriber() as sub:
        # given: the owner is busy, so "c" is not even requested yet
        transport.hold("subscribe")
        busy = asyncio.create_task(sub.add("x"))
        await wait_until(lambda: "subscribe" in transport.held)
        first = asyncio.create_task(sub.add("c"))
        second = asyncio.create_task(sub.add("c"))
        await wait_until(lambda: broker.metrics()["channels"] == 2)

        # when: the add() that attached "c" is cancelled
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        transport.release("subscribe")

        # then: the other one still gets "c" live
        async with asyncio.timeout(WAIT):
            await asyncio.gather(busy, second)
        assert sub.channels == {"c", "x"}
        await broker.publish("c", "live")
        assert await next_item(sub) == Message("c", "live")


async def test_a_resync_that_does_not_fit_the_queue_cuts_the_subscriber() -> None:
    async with fake_broker(queue_size=1) as (broker, transport), broker.subscribe("c") as sub:
        await broker.publish("c", "unread")
        await wait_until(lambda: sub.pending == 1)
        transport.drop_connection()

        await wait_until(lambda: broker.metrics()["reconnects"] == 1)
        with pytest.raises(SubscriberOverflow):
            await next_item(sub)


async def test_concurrent_publishes_on_redis_arrive_in_order_in_few_round_trips(
    redis_bus: Bus,
) -> None:
    # given a subscriber, and a publisher whose PUBLISHes are counted as Redis sees them
    instance_a = await redis_bus.broker()
    instance_b = await redis_bus.broker()
    recorder = instance_b._transport
    assert isinstance(recorder, RecordingTransport)
    transport = recorder.inner
    assert isinstance(transport, RedisTransport)
    commands = transport._commands
    async with instance_a.subscribe("conversation:1") as sub:
        # when fifty publishes are made at once
        await asyncio.gather(*(instance_b.publish("conversation:1", str(n)) for n in range(50)))
        # then every message arrives, in the order they were made, in a few pipelines
        received = [await next_item(sub) for _ in range(50)]
    assert received == [Message("conversation:1", str(n)) for n in range(50)]
    assert 1 <= commands.round_trips <= 2
