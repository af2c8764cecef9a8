"""The outbox sends mail and SMS off the request path, retrying a failing provider."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import pytest

from chatr.infra.delivery import DeliveryFailed
from chatr.infra.outbox import Outbox
from chatr.infra.sms import WebhookSms
from chatr.supervision import Supervisor
from tests.support.sms_sink import running_sms_sink


class FlakyMailer:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("mail server down")
        self.sent.append(message)


class FlakySms:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, str]] = []

    async def send(self, *, to: str, body: str) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryFailed("provider answered 503")
        self.sent.append((to, body))


def _outbox(mailer: object, sms: object, *, attempts: int = 4) -> Outbox:
    return Outbox(
        mailer=mailer,  # type: ignore[arg-type]
        sms=sms,  # type: ignore[arg-type]
        mail_from="chatr <no-reply@test>",
        attempts=attempts,
        first_delay=0.01,
    )


async def test_mail_is_retried_until_the_server_accepts_it(
    supervisor: Supervisor,
) -> None:
    mailer = FlakyMailer(failures=2)
    outbox = _outbox(mailer, FlakySms(failures=0))
    await outbox.start(supervisor)
    outbox.queue(to="a@example.com", subject="hi", body="code 123456")
    await outbox.stop(drain_seconds=2)
    assert [m["To"] for m in mailer.sent] == ["a@example.com"]
    assert mailer.sent[0]["From"] == "chatr <no-reply@test>"


async def test_texts_and_mail_go_through_the_same_queue_with_the_same_retries(
    supervisor: Supervisor,
) -> None:
    mailer, sms = FlakyMailer(failures=1), FlakySms(failures=2)
    outbox = _outbox(mailer, sms)
    await outbox.start(supervisor)
    outbox.queue_sms(to="+15551234567", body="code 111111")
    outbox.queue(to="b@example.com", subject="hi", body="code 222222")
    await outbox.stop(drain_seconds=2)
    assert sms.sent == [("+15551234567", "code 111111")]
    assert [m["To"] for m in mailer.sent] == ["b@example.com"]


async def test_a_text_failing_after_the_last_attempt_is_dropped_and_the_queue_moves_on(
    supervisor: Supervisor,
) -> None:
    sms = FlakySms(failures=5)
    outbox = _outbox(FlakyMailer(failures=0), sms, attempts=3)
    await outbox.start(supervisor)
    outbox.queue_sms(to="+15551234567", body="lost")
    outbox.queue_sms(to="+15557654321", body="kept")
    await outbox.stop(drain_seconds=2)
    # three attempts for the first text, then the queue moved on to the second
    assert sms.failures == 0
    assert sms.sent == [("+15557654321", "kept")]


async def test_the_webhook_provider_retried_through_the_outbox_delivers_once(
    supervisor: Supervisor,
) -> None:
    async with running_sms_sink() as sink:
        sink.fail_next(2)
        outbox = _outbox(FlakyMailer(failures=0), WebhookSms(sink.url, token="t0ken"))
        await outbox.start(supervisor)
        outbox.queue_sms(to="+447700900123", body="Your code is 123456")
        await outbox.stop(drain_seconds=5)
    assert sink.attempts == 3
    assert [(m.to, m.body) for m in sink.messages] == [("+447700900123", "Your code is 123456")]


class BuggyMailer:
    """Raises something no sender is supposed to raise (a bug) for the first message."""

    def __init__(self) -> None:
        self.calls = 0
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("template")
        self.sent.append(message)


async def test_a_sender_raising_a_surprise_exception_does_not_stop_later_mail(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    # given a mailer whose first send raises an unexpected error
    mailer = BuggyMailer()
    outbox = _outbox(mailer, FlakySms(failures=0))
    await outbox.start(supervisor)
    with caplog.at_level(logging.ERROR, logger="chatr.outbox"):
        # when two mails are queued
        outbox.queue(to="first@example.com", subject="hi", body="one")
        outbox.queue(to="second@example.com", subject="hi", body="two")
        # then stopping (which drains the queue) does not raise
        await outbox.stop(drain_seconds=2)
    # and the broken job was dropped once (a bug is not retried), the next one went out
    assert mailer.calls == 2
    assert [m["To"] for m in mailer.sent] == ["second@example.com"]
    assert outbox.metrics()["dropped"] == 1
    # and the surprise was logged with its traceback
    failure = next(r for r in caplog.records if "failed unexpectedly" in r.getMessage())
    assert failure.exc_info is not None


async def test_the_outbox_task_is_supervised_and_stopping_it_never_raises(
    supervisor: Supervisor,
) -> None:
    outbox = _outbox(FlakyMailer(failures=0), FlakySms(failures=0))
    await outbox.start(supervisor)
    await asyncio.sleep(0)  # let it start
    record = supervisor.get("outbox")
    assert record is not None and record.running
    await outbox.stop(drain_seconds=0.1)
    await outbox.stop(drain_seconds=0.1)  # twice is harmless
    assert record.task is not None and record.task.done()
