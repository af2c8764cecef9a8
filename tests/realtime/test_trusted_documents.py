"""Trusted-documents mode holds on the WebSocket too: a subscription outside the manifest is
refused with DOCUMENT_NOT_TRUSTED on both protocols, while a registered one runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gql.transport.exceptions import TransportQueryError
from graphql import parse, print_ast

from chatr.settings import Settings
from tests.support.api import REGISTER, SEND, register
from tests.support.servers import RunningApp, served_app
from tests.support.ws import PROTOCOLS, subscribe

#: As gql sends it: it prints the document it parsed (a manifest holds the exact text).
REGISTERED = print_ast(parse("subscription Mine { myEvents { __typename cursor } }"))
NOT_REGISTERED = "subscription Other { myEvents { cursor } }"


@pytest.fixture
async def trusted_server(
    settings: Settings, database: str, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    """Only signing up, sending and the one subscription are registered."""
    manifest = tmp_path / "trusted.json"
    documents = [REGISTER, SEND, REGISTERED]
    manifest.write_text(json.dumps({hashlib.sha256(d.encode()).hexdigest(): d for d in documents}))
    async with served_app(settings.with_overrides(trusted_documents=manifest)) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_outside_the_manifest_is_refused_on_the_socket(
    trusted_server: RunningApp, protocol: str
) -> None:
    assert trusted_server.ws_url
    alice = await register(trusted_server.http)
    async with subscribe(
        trusted_server.ws_url, alice.token, NOT_REGISTERED, protocol=protocol
    ) as feed:
        with pytest.raises(TransportQueryError) as refused:
            await feed.next(timeout=10)
    assert refused.value.errors is not None
    assert [e["extensions"]["code"] for e in refused.value.errors] == ["DOCUMENT_NOT_TRUSTED"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_registered_subscription_runs_on_the_socket(
    trusted_server: RunningApp, protocol: str
) -> None:
    assert trusted_server.ws_url
    alice, bob = await register(trusted_server.http), await register(trusted_server.http)
    async with subscribe(trusted_server.ws_url, alice.token, REGISTERED, protocol=protocol) as feed:
        for attempt in range(20):  # until the subscription is live and hears one
            await bob.send("through the manifest", to=alice, client_id=f"t-{attempt}")
            if not feed.empty():
                break
            await asyncio.sleep(0.25)
        event = await feed.next(timeout=10)
    assert event["__typename"] == "MessagePostedEvent" and event["cursor"]
