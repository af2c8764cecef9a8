"""A real SMTP server on a free loopback port that keeps what it receives (aiosmtpd)."""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.services import free_port

CODE = re.compile(r"\b(\d{6})\b")


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        self._collector = _Collector()
        self.port = free_port()
        self._controller = Controller(self._collector, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Message]:
        return self._collector.messages

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def mail_to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]

    async def next_code(self, address: str, *, after: int = 0, timeout: float = 5) -> str:
        """The code in the first mail to `address` beyond the `after` already seen."""
        async with asyncio.timeout(timeout):
            while len(self.mail_to(address)) <= after:
                await asyncio.sleep(0.02)
        payload = self.mail_to(address)[after].get_payload(decode=True)
        assert isinstance(payload, bytes), payload
        body = payload.decode()
        match = CODE.search(body)
        assert match, body
        return match.group(1)
