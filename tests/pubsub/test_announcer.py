"""Announcements that fail to publish are retried until they go out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from chatr.pubsub import envelopes
from chatr.pubsub.announcer import Announcer
from chatr.pubsub.broker import Broker, BrokerUnavailable, Message, create_broker
from chatr.supervision import Supervisor


class FlakyPublish:
    """Makes a broker's next `failures` publishes fail with BrokerUnavailable (announcements
    and the announcer's retries both go through `publish_soon`)."""

    def __init__(self, broker: Broker, failures: int) -> None:
        self.failures = failures
        self._publish_soon = broker.publish_soon
        broker.publish_soon = self  # type: ignore[method-assign]

    def __call__(self, channel: str, data: str) -> asyncio.Future[None]:
        if self.failures > 0:
            self.failures -= 1
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(BrokerUnavailable("simulated outage"))
            return failed
        return self._publish_soon(channel, data)


async def answered() -> None:
    """Let the announcements' publishes answer: `announce` returns before they do, and their
    outcome (kept for retry, or not) is settled by a callback on the next turn of the loop."""
    await asyncio.sleep(0)


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    instance = create_broker("memory://", prefix="announcer-test")
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    instance = Supervisor()
    yield instance
    await instance.stop()


async def test_failed_announcement_is_published_once_the_broker_recovers(
    broker: Broker, supervisor: Supervisor
) -> None:
    # given an announcer whose first three publishes fail
    announcer = Announcer(broker)
    await announcer.start(supervisor)
    FlakyPublish(broker, failures=3)
    try:
        async with broker.subscribe("conversation:1") as sub:
            # when
            await announcer.announce(
                "conversation:1", envelopes.EventAnnounced(7, 1, "MESSAGE_POSTED", 3)
            )
            # then it arrives after the retries, and nothing is left pending
            item = await asyncio.wait_for(sub.__anext__(), 5)
            assert isinstance(item, Message)
            assert envelopes.decode(item.data) == envelopes.EventAnnounced(
                7, 1, "MESSAGE_POSTED", 3
            )
            assert announcer.pending == 0
    finally:
        await announcer.stop()


async def test_only_the_newest_change_per_channel_and_subject_is_kept(broker: Broker) -> None:
    announcer = Announcer(broker)  # not started: nothing retries, so the backlog is visible
    FlakyPublish(broker, failures=10)
    for event_id in (3, 5, 4):
        await announcer.announce(
            "conversation:1", envelopes.EventAnnounced(event_id, 1, "MESSAGE_POSTED", event_id)
        )
    await announcer.announce("user:1", envelopes.SessionRevoked(user_id=1, session_id=9))
    await announcer.announce(
        "conversation:1", envelopes.TypingChanged(1, 2, typing=True, expires_at=0.0)
    )
    for change in ("REQUESTED", "ACCEPTED"):
        await announcer.announce("user:1", envelopes.FriendChanged(change, 1, 2, 0.0))
    await answered()
    assert announcer.pending == 3
    friend = announcer._pending[("user:1", "friend:1", 2)]
    assert isinstance(friend, envelopes.FriendChanged) and friend.change == "ACCEPTED"
    kept = announcer._pending[("conversation:1", "event", 0)]
    assert isinstance(kept, envelopes.EventAnnounced) and kept.event_id == 5


class BuggyPublish:
    """Publishing to `channel` raises a surprise (a bug); other channels fail like an outage
    until `outage` publishes have failed."""

    def __init__(self, broker: Broker, *, channel: str, outage: int) -> None:
        self.channel = channel
        self.outage = outage
        self._publish = broker.publish
        broker.publish = self  # type: ignore[method-assign]

    async def __call__(self, channel: str, data: str) -> None:
        if channel == self.channel:
            raise ValueError("unencodable")
        if self.outage > 0:
            self.outage -= 1
            raise BrokerUnavailable("simulated outage")
        await self._publish(channel, data)


async def test_a_surprise_error_drops_that_announcement_and_the_rest_still_go_out(
    broker: Broker, supervisor: Supervisor
) -> None:
    # given two announcements kept for retry, one of which can never be published (a bug)
    announcer = Announcer(broker)
    flaky = FlakyPublish(broker, failures=2)
    await announcer.announce("user:1", envelopes.SessionRevoked(user_id=1, session_id=9))
    await announcer.announce("conversation:2", envelopes.EventAnnounced(4, 2, "MESSAGE_POSTED", 1))
    await answered()
    assert flaky.failures == 0 and announcer.pending == 2
    BuggyPublish(broker, channel="user:1", outage=0)
    async with broker.subscribe("conversation:2") as sub:
        # when the retry task runs
        await announcer.start(supervisor)
        # then the good one arrives, the broken one is dropped, and the task keeps running
        item = await asyncio.wait_for(sub.__anext__(), 5)
        assert isinstance(item, Message)
        assert announcer.pending == 0
        record = supervisor.get("announcer")
        assert record is not None and record.running and record.failures == 0
    await announcer.stop()
    assert record.task is not None and record.task.done()


async def test_an_outage_is_logged_once_not_for_every_failed_publish(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    announcer = Announcer(broker)
    FlakyPublish(broker, failures=50)
    with caplog.at_level(logging.WARNING, logger="chatr.pubsub.announcer"):
        for conversation_id in range(1, 21):
            await announcer.announce(
                f"conversation:{conversation_id}",
                envelopes.EventAnnounced(conversation_id, conversation_id, "MESSAGE_POSTED", 1),
            )
        await answered()
    assert announcer.pending == 20
    assert len([r for r in caplog.records if r.name == "chatr.pubsub.announcer"]) == 1


async def test_announce_returns_before_the_bus_answers_and_a_later_failure_is_still_kept(
    broker: Broker,
) -> None:
    # given a bus that has not answered the publish yet
    on_its_way: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    broker.publish_soon = lambda channel, data: on_its_way  # type: ignore[method-assign]
    announcer = Announcer(broker)

    # when a change is announced, then the mutation is not held up by the round trip
    await asyncio.wait_for(
        announcer.announce("conversation:3", envelopes.EventAnnounced(9, 3, "MESSAGE_POSTED", 2)),
        0.5,
    )
    assert announcer.pending == 0

    # and when the publish then fails, the announcement is kept for the retries
    on_its_way.set_exception(BrokerUnavailable("Redis went away"))
    await answered()
    assert announcer.pending == 1
