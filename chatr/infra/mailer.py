"""Outgoing email: an SMTP (or log-only) mailer.

Nothing here is called on the request path: services queue mail in `chatr.infra.outbox`, whose
background task calls `send` and retries on `DeliveryFailed` (or a network error).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from chatr.infra.delivery import DeliveryFailed

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
    """No mail server: mail is written to the log.

    In development the body is logged too, so a newcomer can read their sign-up code there.
    In production (`show_content=False`) only that a mail was dropped is logged: logs are
    read by more people than the mail's recipient, and a code in them would let any of them
    verify, sign in as, or reset the password of its recipient.
    """

    def __init__(self, *, show_content: bool = True) -> None:
        self._show_content = show_content

    async def send(self, message: EmailMessage) -> None:
        if self._show_content:
            log.info("mail to %s: %s\n%s", message["To"], message["Subject"], message.get_content())
        else:
            log.warning("no mail server configured; mail to %s not sent", message["To"])


def create_mailer(smtp_url: str, *, log_content: bool = True) -> Mailer:
    """SMTP when configured, else the log (`log_content=False`: without the mail's text)."""
    return SmtpMailer(smtp_url) if smtp_url else LogMailer(show_content=log_content)
