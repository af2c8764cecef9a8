"""One in-process outbox for everything sent to people outside the app: mail and SMS.

Requests never wait for a mail server or an SMS provider: they queue a delivery job and
answer. A single background task sends the jobs, retrying each a few times with backoff, so a
slow or briefly failing provider costs nothing on the request path (a job still failing after
the retries is logged and dropped; the user can ask for a new code).

A job is a channel name, a recipient (for the log) and the channel sender's bound `send`: the
queue and the retry policy are the same for every channel, only the sender differs.

The sending task runs under the instance's supervisor. A sender that raises something
unexpected (a bug, not an unreachable provider) has that one job logged with its traceback and
dropped, not retried (the same bug would strike again) and not allowed to end the task: later
mail still goes out. `stop()` never raises, so shutdown always goes on to close the broker and
the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from typing import TYPE_CHECKING

from chatr.infra.delivery import DeliveryFailed
from chatr.supervision import SupervisedTask, Supervisor

if TYPE_CHECKING:
    from chatr.infra.mailer import Mailer
    from chatr.infra.sms import SmsSender
    from chatr.settings import Settings

log = logging.getLogger("chatr.outbox")


OPT_OUT_VARIABLE = "CHATR_I_ACCEPT_UNDELIVERED_CODES"


def undelivered_codes_problem(settings: Settings) -> str | None:
    """Why production must not start as configured, or None.

    Without a mail server and an SMS webhook, the verification, sign-in and password-reset
    codes chatr sends reach nobody (in production they are never logged either): sign-up
    verification, SMS/email two-factor sign-in and password resets silently cannot work.
    Refusing to start says so at deploy time instead of in support tickets.
    """
    if not settings.is_production or settings.accept_undelivered_codes:
        return None
    missing = [
        name
        for name, value in (
            ("CHATR_SMTP_URL", settings.smtp_url),
            ("CHATR_SMS_WEBHOOK_URL", settings.sms_webhook_url),
        )
        if not value
    ]
    if not missing:
        return None
    return (
        f"CHATR_ENV=production needs real senders for codes; {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not set, so verification, sign-in and "
        "password-reset codes would reach nobody. Configure them (see README), or set "
        f"{OPT_OUT_VARIABLE}=1 to run without: codes are then dropped, never logged."
    )


@dataclass(frozen=True)
class Delivery:
    channel: str
    #: Who it is for; only for the log.
    recipient: str
    send: Callable[[], Awaitable[None]]


class Outbox:
    def __init__(
        self,
        *,
        mailer: Mailer,
        sms: SmsSender,
        mail_from: str,
        attempts: int = 4,
        first_delay: float = 0.5,
    ) -> None:
        self._mailer = mailer
        self._sms = sms
        self._mail_from = mail_from
        self._attempts = attempts
        self._first_delay = first_delay
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=10_000)
        self._record: SupervisedTask | None = None
        self._counters = {"sent": 0, "retries": 0, "dropped": 0}

    def queue(self, *, to: str, subject: str, body: str) -> None:
        """Queue a plain-text mail."""
        message = EmailMessage()
        message["From"] = self._mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        self.submit(Delivery("mail", to, partial(self._mailer.send, message)))

    def queue_sms(self, *, to: str, body: str) -> None:
        """Queue a text message to an E.164 phone number."""
        self.submit(Delivery("sms", to, partial(self._sms.send, to=to, body=body)))

    def submit(self, delivery: Delivery) -> None:
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self._counters["dropped"] += 1
            log.error("outbox full; dropping %s to %s", delivery.channel, delivery.recipient)

    def metrics(self) -> dict[str, int]:
        return {**self._counters, "queued": self._queue.qsize()}

    async def start(self, supervisor: Supervisor) -> None:
        self._record = supervisor.spawn("outbox", self._run)

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Give queued jobs a moment to go out, then stop the task; never raises.

        Runs before the supervisor stops the other tasks, so what was queued gets its chance.
        """
        task = self._record.task if self._record is not None else None
        if task is None or task.done():
            return
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await self._queue.join()
            task.cancel()
            await asyncio.wait([task])
        except Exception:
            log.exception("outbox: stopping failed")
        if not self._queue.empty():
            log.warning("outbox: %d deliveries not sent at shutdown", self._queue.qsize())

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception:
                self._counters["dropped"] += 1
                log.exception(
                    "%s to %s failed unexpectedly; dropped", delivery.channel, delivery.recipient
                )
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            try:
                await delivery.send()
                self._counters["sent"] += 1
                return
            except (DeliveryFailed, OSError) as error:
                if attempt == self._attempts:
                    self._counters["dropped"] += 1
                    log.error(
                        "giving up on %s to %s: %s", delivery.channel, delivery.recipient, error
                    )
                    return
                self._counters["retries"] += 1
                log.warning(
                    "%s to %s failed (%s); retrying", delivery.channel, delivery.recipient, error
                )
                await asyncio.sleep(delay)
                delay *= 2
