"""App variants the API tests share: with real mail (and SMS), and with rate limits on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from chatr.settings import Settings
from tests.support.servers import RunningApp, in_process_app
from tests.support.sms_sink import SmsSink, running_sms_sink
from tests.support.smtp_sink import SmtpSink


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on a free port that keeps what the app sends."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def mail_app(settings: Settings, database: str, smtp: SmtpSink) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings.with_overrides(smtp_url=smtp.url)) as running:
        yield running


@pytest.fixture
async def limited(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    """The app with rate limits on (the suite's default settings switch them off)."""
    async with in_process_app(settings.with_overrides(rate_limits=True)) as running:
        yield running


@pytest.fixture
async def sms() -> AsyncIterator[SmsSink]:
    """A real SMS webhook on a free port that keeps the texts the app sends."""
    async with running_sms_sink() as sink:
        yield sink


@pytest.fixture
async def code_app(
    settings: Settings, database: str, smtp: SmtpSink, sms: SmsSink
) -> AsyncIterator[RunningApp]:
    """The app sending mail to `smtp` and texts to `sms`."""
    configured = settings.with_overrides(
        smtp_url=smtp.url, sms_webhook_url=sms.url, sms_webhook_token="test-token"
    )
    async with in_process_app(configured) as running:
        yield running


@pytest.fixture
async def limited_code_app(
    settings: Settings, database: str, smtp: SmtpSink, sms: SmsSink
) -> AsyncIterator[RunningApp]:
    """`code_app` with rate limits on."""
    configured = settings.with_overrides(
        smtp_url=smtp.url, sms_webhook_url=sms.url, rate_limits=True
    )
    async with in_process_app(configured) as running:
        yield running
