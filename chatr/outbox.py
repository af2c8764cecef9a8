"""One in-process outbox for everything sent to people outside the app: mail and SMS.

Requests never wait for a mail server or an SMS provider: they queue a delivery job and
answer. A single background task sends the jobs, retrying each a few times with backoff, so a
slow or briefly failing provider costs nothing on the request path (a job still failing after
the retries is logged and dropped; the user can ask for a new code).

A job is a channel name, a recipient (for the log) and the channel sender's bound `send`: the
queue and the retry policy are the same for every channel, only the sender differs.
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

if TYPE_CHECKING:
    from chatr.mailer import Mailer
    from chatr.sms import SmsSender

log = logging.getLogger("chatr.outbox")


class DeliveryFailed(Exception):
    """A sender could not hand a message over this time (worth retrying)."""


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
        self._task: asyncio.Task[None] | None = None

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
            log.error("outbox full; dropping %s to %s", delivery.channel, delivery.recipient)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chatr-outbox")

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Give queued jobs a moment to go out, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            try:
                await delivery.send()
                return
            except (DeliveryFailed, OSError) as error:
                if attempt == self._attempts:
                    log.error(
                        "giving up on %s to %s: %s", delivery.channel, delivery.recipient, error
                    )
                    return
                log.warning(
                    "%s to %s failed (%s); retrying", delivery.channel, delivery.recipient, error
                )
                await asyncio.sleep(delay)
                delay *= 2
