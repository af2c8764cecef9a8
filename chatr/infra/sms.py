"""Outgoing SMS through a provider: an HTTP webhook, or the log on the embedded default.

The webhook is the one integration every SMS gateway (or a small relay in front of Twilio,
Vonage, SNS…) can offer: chatr POSTs `{"to": "+15551234567", "body": "…"}` as JSON to the
configured URL, with `Authorization: Bearer <token>` when a token is set. Any 2xx answer is
success; another status or a network error is a failure the outbox retries.

Like mail, nothing here runs on the request path: services queue texts in `chatr.infra.outbox`.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from chatr.infra.delivery import DeliveryFailed

log = logging.getLogger("chatr.sms")


class SmsSender(Protocol):
    async def send(self, *, to: str, body: str) -> None: ...


class WebhookSms:
    def __init__(self, url: str, *, token: str = "", timeout: float = 10.0) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout

    async def send(self, *, to: str, body: str) -> None:
        # A client per text: codes are rare, and nothing is left open between lifespans.
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self._url, json={"to": to, "body": body}, headers=self._headers
                )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"SMS webhook unreachable: {error!r}") from error
        if not response.is_success:
            raise DeliveryFailed(f"SMS webhook answered {response.status_code}")


class LogSms:
    """No SMS webhook: texts are written to the log, their body only in development (see
    `chatr.infra.mailer.LogMailer`: a code in a production log is a credential leak)."""

    def __init__(self, *, show_content: bool = True) -> None:
        self._show_content = show_content

    async def send(self, *, to: str, body: str) -> None:
        if self._show_content:
            log.info("sms to %s: %s", to, body)
        else:
            log.warning("no SMS webhook configured; text to %s not sent", to)


def create_sms_sender(webhook_url: str, *, token: str = "", log_content: bool = True) -> SmsSender:
    """The webhook when configured, else the log (`log_content=False`: without the text)."""
    if webhook_url:
        return WebhookSms(webhook_url, token=token)
    return LogSms(show_content=log_content)
