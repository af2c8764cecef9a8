"""Malformed input from an attacker's side: every one gets a coded error or a protocol close
code, never HTTP 500, a dropped socket or a traceback in the log.

Over HTTP: status 400 and `{"errors": [{"extensions": {"code": "BAD_REQUEST"}}]}`.
Over graphql-transport-ws: close code 4400 (the protocol's "bad request").
Over legacy graphql-ws: a coded `connection_error` frame, then close code 4400.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.support.api import ME, register
from tests.support.servers import RunningApp
from tests.support.ws import LEGACY_WS, MY_EVENTS, PROTOCOLS, TRANSPORT_WS


def _no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    logged = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info is not None
    ]
    assert logged == [], [record.getMessage() for record in logged]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


MALFORMED_BODIES: dict[str, bytes] = {
    "nested_5000_deep": _deep(5000).encode(),
    "variables_nested_5000_deep": (
        '{"query": "{ me { id } }", "variables": {"x": ' + _deep(5000) + "}}"
    ).encode(),
    "invalid_utf8": b'{"query": "{ me { id } }\xff\xfe"}',
    "not_json": b"{query: me}",
    "empty": b"",
    "a_number": b"42",
    "null": b"null",
    "an_empty_list": b"[]",
    "a_string": b'"str"',
    "a_list_of_non_objects": b"[1, 2, 3]",
    "query_not_a_string": b'{"query": 42}',
    "variables_not_an_object": b'{"query": "{ me { id } }", "variables": "x"}',
    "extensions_not_an_object": b'{"query": "{ me { id } }", "extensions": []}',
    "operation_name_not_a_string": b'{"query": "{ me { id } }", "operationName": 7}',
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
async def test_a_malformed_body_is_a_coded_400_without_a_traceback(
    app: RunningApp, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await app.http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"] and "Traceback" not in error["message"]
    _no_traceback_logged(caplog)


async def test_an_unsupported_content_type_is_a_coded_415(app: RunningApp) -> None:
    response = await app.http.post(
        "/graphql", content=b"query=%7Bme%7D", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_a_well_formed_request_still_runs(app: RunningApp) -> None:
    alice = await register(app.http)
    body = await alice.call(ME)
    assert body["me"]["id"]


# WebSockets --------------------------------------------------------------------------------


async def _authenticated(server: RunningApp, protocol: str) -> ClientConnection:
    assert server.ws_url
    alice = await register(server.http)
    socket = await websockets.connect(server.ws_url, subprotocols=[protocol])  # type: ignore[list-item]
    await socket.send(
        json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}
        )
    )
    reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert reply["type"] == "connection_ack", reply
    return socket


async def _until_closed(socket: ClientConnection, timeout: float = 5) -> list[dict[str, Any]]:
    """The frames the server sent before closing (keep-alives left out)."""
    frames = []

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in socket:
                message = json.loads(frame)
                if message.get("type") != "ka":
                    frames.append(message)

    await asyncio.wait_for(drain(), timeout)
    return frames


def _subscribe(protocol: str, payload: object, operation_id: object = "1") -> str:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    return json.dumps({"id": operation_id, "type": kind, "payload": payload})


MALFORMED_FRAMES: dict[str, Any] = {
    "not_json": lambda protocol: "{type: subscribe",
    "binary": lambda protocol: b'{"type": "ping"}',
    "nested_20000_deep": lambda protocol: _deep(20000),
    "a_number": lambda protocol: "42",
    "a_list": lambda protocol: "[]",
    "no_type": lambda protocol: '{"id": "1"}',
    "type_not_a_string": lambda protocol: '{"type": ["subscribe"]}',
    "payload_not_an_object": lambda protocol: _subscribe(protocol, "{ me { id } }"),
    "payload_null": lambda protocol: _subscribe(protocol, None),
    "no_query": lambda protocol: _subscribe(protocol, {"variables": {}}),
    "query_not_a_string": lambda protocol: _subscribe(protocol, {"query": 42}),
    "variables_not_an_object": lambda protocol: _subscribe(
        protocol, {"query": MY_EVENTS, "variables": "x"}
    ),
    "variables_nested_20000_deep": lambda protocol: (
        '{"id": "1", "type": "'
        + ("subscribe" if protocol == TRANSPORT_WS else "start")
        + '", "payload": {"query": "{ me { id } }", "variables": {"x": '
        + _deep(20000)
        + "}}}"
    ),
    "id_not_a_string": lambda protocol: _subscribe(protocol, {"query": MY_EVENTS}, ["1"]),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("frame", MALFORMED_FRAMES.values(), ids=MALFORMED_FRAMES.keys())
async def test_a_malformed_frame_closes_the_socket_with_4400_without_a_traceback(
    server: RunningApp, protocol: str, frame: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    socket = await _authenticated(server, protocol)
    await socket.send(frame(protocol))
    frames = await _until_closed(socket)
    assert socket.close_code == 4400, (socket.close_code, frames)
    if protocol == LEGACY_WS:
        (error,) = frames
        assert error["type"] == "connection_error"
        assert error["payload"]["extensions"]["code"] == "BAD_REQUEST"
    else:
        assert frames == []
    _no_traceback_logged(caplog)


async def test_a_syntax_error_in_a_subscribe_closes_with_4400_without_a_traceback(
    server: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    socket = await _authenticated(server, TRANSPORT_WS)
    await socket.send(_subscribe(TRANSPORT_WS, {"query": "subscription { myEvents( }"}))
    await _until_closed(socket)
    assert socket.close_code == 4400
    _no_traceback_logged(caplog)


async def test_a_syntax_error_in_a_legacy_start_is_a_coded_error_without_a_traceback(
    server: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    socket = await _authenticated(server, LEGACY_WS)
    await socket.send(_subscribe(LEGACY_WS, {"query": "subscription { myEvents( }"}))
    reply = await _next_reply(socket)
    assert reply["type"] == "error" and reply["id"] == "1"
    assert reply["payload"]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    await socket.close()
    _no_traceback_logged(caplog)


async def _next_reply(socket: ClientConnection) -> dict[str, Any]:
    while True:
        reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if reply["type"] != "ka":
            return reply


async def test_a_well_formed_query_still_runs_over_graphql_transport_ws(server: RunningApp) -> None:
    socket = await _authenticated(server, TRANSPORT_WS)
    await socket.send(_subscribe(TRANSPORT_WS, {"query": "{ me { id } }"}))
    reply = await _next_reply(socket)
    assert reply["type"] == "next" and reply["payload"]["data"]["me"]["id"], reply
    await socket.close()


async def test_a_well_formed_legacy_subscription_is_accepted(server: RunningApp) -> None:
    socket = await _authenticated(server, LEGACY_WS)
    await socket.send(_subscribe(LEGACY_WS, {"query": MY_EVENTS, "variables": {}}))
    await server.until_live(1)
    await socket.send(_subscribe(LEGACY_WS, {"query": "{ me { id } }"}, "2"))
    reply = await _next_reply(socket)  # the first frame is the second operation's
    assert reply["id"] == "2" and reply["type"] == "error", reply
    await socket.close()


async def test_a_query_over_legacy_graphql_ws_is_a_coded_error_without_a_traceback(
    server: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    socket = await _authenticated(server, LEGACY_WS)
    await socket.send(_subscribe(LEGACY_WS, {"query": "{ me { id } }"}))
    reply = await _next_reply(socket)
    assert reply["type"] == "error" and reply["payload"]["extensions"]["code"] == "BAD_REQUEST"
    await socket.close()
    _no_traceback_logged(caplog)
