"""The mail outbox retries a failing mail server off the request path."""

from __future__ import annotations

from email.message import EmailMessage

from chatr.mailer import Outbox


class FlakyMailer:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("mail server down")
        self.sent.append(message)


async def test_mail_is_retried_until_the_server_accepts_it() -> None:
    mailer = FlakyMailer(failures=2)
    outbox = Outbox(mailer, sender="chatr <no-reply@test>", first_delay=0.01)
    await outbox.start()
    outbox.queue(to="a@example.com", subject="hi", body="code 123456")
    await outbox.stop(drain_seconds=2)
    assert [m["To"] for m in mailer.sent] == ["a@example.com"]
