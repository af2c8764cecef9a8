"""The SMS webhook provider: what it posts, and what counts as a failure."""

from __future__ import annotations

import pytest

from chatr.infra.delivery import DeliveryFailed
from chatr.infra.sms import LogSms, WebhookSms, create_sms_sender
from tests.support.services import free_port
from tests.support.sms_sink import running_sms_sink


async def test_posts_the_number_and_text_as_json_with_the_bearer_token() -> None:
    async with running_sms_sink() as sink:
        await WebhookSms(sink.url, token="s3cret").send(to="+15551234567", body="hello")
    (received,) = sink.messages
    assert (received.to, received.body) == ("+15551234567", "hello")
    assert received.authorization == "Bearer s3cret"


async def test_without_a_token_no_authorization_header_is_sent() -> None:
    async with running_sms_sink() as sink:
        await WebhookSms(sink.url).send(to="+15551234567", body="hello")
    assert sink.messages[0].authorization is None


@pytest.mark.parametrize("status", [400, 401, 500, 503])
async def test_a_non_2xx_answer_is_a_failure(status: int) -> None:
    async with running_sms_sink() as sink:
        sink.fail_next(1, status=status)
        with pytest.raises(DeliveryFailed, match=str(status)):
            await WebhookSms(sink.url).send(to="+15551234567", body="hello")
    assert sink.messages == []


async def test_an_unreachable_webhook_is_a_failure() -> None:
    closed = f"http://127.0.0.1:{free_port()}/sms"
    with pytest.raises(DeliveryFailed):
        await WebhookSms(closed, timeout=2).send(to="+15551234567", body="hello")


def test_without_a_webhook_url_texts_go_to_the_log() -> None:
    assert isinstance(create_sms_sender(""), LogSms)
    assert isinstance(create_sms_sender("http://sms.example/hook"), WebhookSms)
