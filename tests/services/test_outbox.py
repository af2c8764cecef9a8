"""The outbox sends mail and SMS off the request path, retrying a failing provider."""

from __future__ import annotations

from email.message import EmailMessage

from chatr.outbox import DeliveryFailed, Outbox
from chatr.sms import WebhookSms
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


async def test_mail_is_retried_until_the_server_accepts_it() -> None:
    mailer = FlakyMailer(failures=2)
    outbox = _outbox(mailer, FlakySms(failures=0))
    await outbox.start()
    outbox.queue(to="a@example.com", subject="hi", body="code 123456")
    await outbox.stop(drain_seconds=2)
    assert [m["To"] for m in mailer.sent] == ["a@example.com"]
    assert mailer.sent[0]["From"] == "chatr <no-reply@test>"


async def test_texts_and_mail_go_through_the_same_queue_with_the_same_retries() -> None:
    mailer, sms = FlakyMailer(failures=1), FlakySms(failures=2)
    outbox = _outbox(mailer, sms)
    await outbox.start()
    outbox.queue_sms(to="+15551234567", body="code 111111")
    outbox.queue(to="b@example.com", subject="hi", body="code 222222")
    await outbox.stop(drain_seconds=2)
    assert sms.sent == [("+15551234567", "code 111111")]
    assert [m["To"] for m in mailer.sent] == ["b@example.com"]


async def test_a_text_failing_after_the_last_attempt_is_dropped_and_the_queue_moves_on() -> None:
    sms = FlakySms(failures=5)
    outbox = _outbox(FlakyMailer(failures=0), sms, attempts=3)
    await outbox.start()
    outbox.queue_sms(to="+15551234567", body="lost")
    outbox.queue_sms(to="+15557654321", body="kept")
    await outbox.stop(drain_seconds=2)
    # three attempts for the first text, then the queue moved on to the second
    assert sms.failures == 0
    assert sms.sent == [("+15557654321", "kept")]


async def test_the_webhook_provider_retried_through_the_outbox_delivers_once() -> None:
    async with running_sms_sink() as sink:
        sink.fail_next(2)
        outbox = _outbox(FlakyMailer(failures=0), WebhookSms(sink.url, token="t0ken"))
        await outbox.start()
        outbox.queue_sms(to="+447700900123", body="Your code is 123456")
        await outbox.stop(drain_seconds=5)
    assert sink.attempts == 3
    assert [(m.to, m.body) for m in sink.messages] == [("+447700900123", "Your code is 123456")]
