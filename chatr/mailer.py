"""Outgoing email: an SMTP (or log-only) mailer.

Nothing here is called on the request path: services queue mail in `chatr.outbox`, whose
background task calls `send` and retries on `DeliveryFailed` (or a network error).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from chatr.outbox import DeliveryFailed

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
        try:
            await aiosmtplib.send(message, **self._options)  # type: ignore[arg-type]
        except aiosmtplib.SMTPException as error:
            raise DeliveryFailed(str(error)) from error


class LogMailer:
    """The embedded default: mail is written to the log (codes visible to the developer)."""

    async def send(self, message: EmailMessage) -> None:
        log.info("mail to %s: %s\n%s", message["To"], message["Subject"], message.get_content())


def create_mailer(smtp_url: str) -> Mailer:
    return SmtpMailer(smtp_url) if smtp_url else LogMailer()
