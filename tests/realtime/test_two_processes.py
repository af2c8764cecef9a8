"""Two real uvicorn processes on one PostgreSQL + Redis behave as one server."""

from __future__ import annotations

import httpx

from chatr.settings import Settings
from tests.support.api import register
from tests.support.processes import uvicorn_process
from tests.support.ws import MY_EVENTS, PROTOCOLS, subscribe


async def test_subscriber_on_process_a_receives_messages_sent_through_process_b(
    settings: Settings, database: str
) -> None:
    with uvicorn_process(settings) as a, uvicorn_process(settings) as b:
        async with (
            httpx.AsyncClient(base_url=a.http_url) as http_a,
            httpx.AsyncClient(base_url=b.http_url) as http_b,
        ):
            alice = await register(http_a)
            bob = (await register(http_a)).via(http_b)
            for protocol in PROTOCOLS:
                async with subscribe(
                    a.ws_url, alice.token, MY_EVENTS, {"after": "0"}, protocol=protocol
                ) as feed:
                    body = f"through B over {protocol}"
                    await bob.send(body, to=alice)
                    # after "0" the earlier protocol's message is replayed first
                    received = [
                        (await feed.next_of("MessagePostedEvent"))["message"]
                        for _ in range(PROTOCOLS.index(protocol) + 1)
                    ]
                    assert received[-1]["body"] == body
                    assert received[-1]["sender"]["id"] == bob.id
