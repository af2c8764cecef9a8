"""Outgoing email: an SMTP (or log-only) mailer behind an in-process outbox.

Requests never wait for SMTP: they queue a message and answer. The outbox sends in the
background with a few retries, so a slow or briefly unreachable mail server costs nothing on
the request path (a message still failing after the retries is logged and dropped; the user
can ask for a new code).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger("chatr.mail")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """`smtp://[user:password@]host[:port][?starttls=1]`, or `smtps://` for implicit TLS."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self._options: dict[str, object] = {
            "hostname": parts.hostname or "localhost",
            "port": parts.port or (465 if parts.scheme == "smtps" else 25),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "use_tls": parts.scheme == "smtps",
            "start_tls": query.get("starttls", ["0"])[0] in ("1", "true"),
            "timeout": timeout,
        }

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(message, **self._options)  # type: ignore[arg-type]


class LogMailer:
    """The embedded default: mail is written to the log (codes visible to the developer)."""

    async def send(self, message: EmailMessage) -> None:
        log.info("mail to %s: %s\n%s", message["To"], message["Subject"], message.get_content())


class Outbox:
    def __init__(
        self, mailer: Mailer, *, sender: str, attempts: int = 4, first_delay: float = 0.5
    ) -> None:
        self._mailer = mailer
        self._sender = sender
        self._attempts = attempts
        self._first_delay = first_delay
        self._queue: asyncio.Queue[EmailMessage] = asyncio.Queue(maxsize=10_000)
        self._task: asyncio.Task[None] | None = None

    def queue(self, *, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            log.error("outbox full; dropping mail to %s", to)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chatr-outbox")

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Give queued mail a moment to go out, then stop."""
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
            message = await self._queue.get()
            try:
                await self._deliver(message)
            finally:
                self._queue.task_done()

    async def _deliver(self, message: EmailMessage) -> None:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            try:
                await self._mailer.send(message)
                return
            except (aiosmtplib.SMTPException, OSError) as error:
                if attempt == self._attempts:
                    log.error("giving up on mail to %s: %s", message["To"], error)
                    return
                log.warning("mail to %s failed (%s); retrying", message["To"], error)
                await asyncio.sleep(delay)
                delay *= 2


def create_mailer(smtp_url: str) -> Mailer:
    return SmtpMailer(smtp_url) if smtp_url else LogMailer()
