"""Every error has a code a client can act on; only bugs are masked, and each is logged once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from gql import Client, gql
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from graphql import GraphQLError
from sqlalchemy.exc import OperationalError

from chatr.errors import StreamFailed
from chatr.schema.broadcast import BroadcastRenderer
from chatr.schema.errors import present
from chatr.services import streams, users
from tests.support.api import ME, register
from tests.support.ids import Kind, global_id
from tests.support.servers import RunningApp
from tests.support.ws import CONVERSATION_EVENTS, PROTOCOLS, TRANSPORT_WS, subscribe


class _Errors(logging.Handler):
    """Every ERROR chatr logs, with whether it carries a traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def with_traceback_of(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.exc_info and text in str(r.exc_info[1])]


@pytest.fixture
def logged_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("chatr")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


async def test_a_subscription_posted_over_http_is_a_bad_request(app: RunningApp) -> None:
    alice = await register(app.http)
    response = await app.http.post(
        "/graphql",
        json={
            "query": CONVERSATION_EVENTS,
            "variables": {"id": global_id(Kind.CONVERSATION, 1), "afterSeq": 0},
        },
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 400
    body = response.json()
    assert _codes(body) == ["BAD_REQUEST"]
    assert "WebSocket" in body["errors"][0]["message"]


async def test_a_query_naming_an_operation_the_document_lacks_is_a_bad_request(
    app: RunningApp,
) -> None:
    response = await app.http.post("/graphql", json={"query": ME, "operationName": "Nope"})
    assert response.status_code == 200  # application/json: a well-formed request (the spec)
    assert _codes(response.json()) == ["BAD_REQUEST"]


async def test_a_masked_error_is_logged_exactly_once_with_its_traceback(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch, logged_errors: _Errors
) -> None:
    async def explode(*_: object, **__: object) -> None:
        raise RuntimeError("a bug, with detail=hunter2")

    monkeypatch.setattr(users, "list_by_ids", explode)
    alice = await register(app.http)
    response = await app.http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {alice.token}"}
    )
    body = response.json()
    assert _codes(body) == ["INTERNAL_SERVER_ERROR"] and "hunter2" not in response.text
    assert len(logged_errors.with_traceback_of("hunter2")) == 1
    assert len(logged_errors.records) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_failed_live_stream_says_stream_failed_with_its_cursor(
    server: RunningApp,
    monkeypatch: pytest.MonkeyPatch,
    logged_errors: _Errors,
    protocol: str,
) -> None:
    # given a subscriber that has had one message
    alice, bob = await register(server.http), await register(server.http)
    conversation_id = (await alice.send("m1", to=bob))["conversationId"]
    assert server.ws_url
    async with subscribe(
        server.ws_url,
        bob.token,
        CONVERSATION_EVENTS,
        {"id": conversation_id, "afterSeq": 0},
        protocol=protocol,
    ) as feed:
        first = await feed.next_of("MessagePostedEvent")
        await server.until_live(1)

        # when rendering the next live event fails (a bug)
        async def broken(*_: object, **__: object) -> None:
            raise RuntimeError("a rendering bug")

        monkeypatch.setattr(BroadcastRenderer, "render", broken)
        await alice.send("m2", conversation_id=conversation_id)
        # then the stream ends with STREAM_FAILED, a real message and where to resume from
        with pytest.raises(TransportQueryError) as ended:
            while True:
                await feed.next(timeout=10)
    assert ended.value.errors is not None
    (error,) = ended.value.errors
    assert error["extensions"]["code"] == "STREAM_FAILED"
    assert error["extensions"]["cursor"] == first["cursor"]
    assert "resubscribe" in error["message"]
    # and the bug is in the log once
    assert len(logged_errors.with_traceback_of("a rendering bug")) == 1


async def _first_error_of(server: RunningApp, token: str, protocol: str) -> dict[str, Any]:
    assert server.ws_url
    async with subscribe(
        server.ws_url,
        token,
        CONVERSATION_EVENTS,
        {"id": global_id(Kind.CONVERSATION, 1), "afterSeq": 0},
        protocol=protocol,
    ) as feed:
        with pytest.raises(TransportQueryError) as ended:
            await feed.next(timeout=10)
    assert ended.value.errors is not None
    (error,) = ended.value.errors
    return error


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_bug_in_a_live_stream_is_masked_and_logged_exactly_once(
    server: RunningApp,
    monkeypatch: pytest.MonkeyPatch,
    logged_errors: _Errors,
    protocol: str,
) -> None:
    async def broken(*_: object, **__: object) -> Any:
        raise RuntimeError("a stream bug, detail=hunter2")
        yield  # an async generator, as the real one

    monkeypatch.setattr(streams, "conversation_events", broken)
    alice = await register(server.http)
    error = await _first_error_of(server, alice.token, protocol)
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "hunter2" not in str(error)
    assert len(logged_errors.with_traceback_of("hunter2")) == 1
    assert len(logged_errors.records) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_database_outage_under_a_live_stream_is_service_unavailable(
    server: RunningApp,
    monkeypatch: pytest.MonkeyPatch,
    logged_errors: _Errors,
    protocol: str,
) -> None:
    async def unreachable(*_: object, **__: object) -> Any:
        raise OperationalError("SELECT events", {}, ConnectionResetError(104, "reset"))
        yield  # an async generator, as the real one

    monkeypatch.setattr(streams, "conversation_events", unreachable)
    alice = await register(server.http)
    error = await _first_error_of(server, alice.token, protocol)
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["retryAfter"] > 0
    assert logged_errors.records == []


def test_a_database_outage_is_service_unavailable_not_a_bug(
    logged_errors: _Errors,
) -> None:
    refused = OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused"))
    (error,) = present([GraphQLError("x", original_error=refused)])
    assert error.extensions is not None
    assert error.extensions["code"] == "SERVICE_UNAVAILABLE"
    assert error.extensions["retryAfter"] > 0
    assert "SELECT" not in error.message and "refused" not in error.message
    assert logged_errors.records == []


def test_an_error_raised_from_a_database_outage_is_unavailable_too() -> None:
    try:
        try:
            raise TimeoutError("no answer from the server")
        except TimeoutError as timeout:
            raise RuntimeError("could not load the page") from timeout
    except RuntimeError as wrapped:
        (error,) = present([GraphQLError("x", original_error=wrapped)])
    assert error.extensions is not None and error.extensions["code"] == "SERVICE_UNAVAILABLE"


def test_a_bug_while_handling_an_outage_is_still_a_bug(logged_errors: _Errors) -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError:
            raise KeyError("a bug in the except block")  # noqa: B904 - the point of the test
    except KeyError as bug:
        (error,) = present([GraphQLError("x", original_error=bug)])
    assert error.extensions is not None and error.extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert len(logged_errors.records) == 1


def test_stream_failed_keeps_its_message_and_cursor() -> None:
    failed = StreamFailed("The live stream failed; resubscribe.", cursor="42")
    (error,) = present([GraphQLError(failed.message, original_error=failed)])
    assert error.message == "The live stream failed; resubscribe."
    assert error.extensions == {"cursor": "42", "code": "STREAM_FAILED"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_naming_an_operation_the_document_lacks_is_refused_not_a_bug(
    server: RunningApp, logged_errors: _Errors, protocol: str
) -> None:
    assert server.ws_url
    alice = await register(server.http)
    transport = WebsocketsTransport(
        url=server.ws_url,
        init_payload={"authorization": f"Bearer {alice.token}"},
        subprotocols=[protocol],
    )
    request = gql("subscription Mine { myEvents { cursor } }")
    request.operation_name = "Nope"
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        with pytest.raises((TransportQueryError, TransportConnectionFailed)) as refused:
            async for _ in session.subscribe(request):
                pass
    if protocol == TRANSPORT_WS:
        # graphql-transport-ws: an invalid subscribe message closes the socket with 4400
        assert isinstance(refused.value, TransportConnectionFailed)
        assert 'received 4400 (private use) Unknown operation named "Nope"' in str(
            refused.value.__cause__
        )
    else:
        assert isinstance(refused.value, TransportQueryError) and refused.value.errors
        assert [e["extensions"]["code"] for e in refused.value.errors] == ["BAD_REQUEST"]
    assert logged_errors.records == []
