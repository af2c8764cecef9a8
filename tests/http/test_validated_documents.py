"""A document that validated before runs without strawberry's per-request machinery
(chatr.schema.execution), and answers exactly as strawberry answers it: same data, same
coded errors, same refusals of operations it may not run."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route
from strawberry.schema import Schema

from chatr.http.endpoint import GraphQLHTTP
from tests.support.api import SEND, graphql, register
from tests.support.ids import Kind, missing
from tests.support.servers import RunningApp

SEND_TO = """
mutation SendTo($input: SendMessageInput!) {
  sendMessage(input: $input) { seq body conversationId }
}
"""


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """The answer with what differs between two sends (seq) left out."""
    data = body.get("data") or {}
    return {
        "data": {key: {"body": value["body"]} for key, value in data.items() if value},
        "errors": body.get("errors"),
    }


@pytest.fixture
def strawberry_runs(app: RunningApp, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every document strawberry's `Schema.execute` ran from now on (the others took the
    fast path)."""
    ran: list[str | None] = []
    endpoint = next(
        route.endpoint
        for route in app.app.routes
        if isinstance(route, Route) and isinstance(route.endpoint, GraphQLHTTP)
    )
    assert endpoint.fast_path
    schema = endpoint.schema
    assert isinstance(schema, Schema)
    real = schema.execute

    async def counted(query: str | None, *args: Any, **kwargs: Any) -> Any:
        ran.append(query)
        return await real(query, *args, **kwargs)

    monkeypatch.setattr(schema, "execute", counted)
    return ran


async def test_a_repeated_document_takes_the_fast_path_and_answers_the_same(
    app: RunningApp, strawberry_runs: list[str | None]
) -> None:
    alice = await register(app.http)
    bob = await register(app.http)
    answers = [
        await graphql(
            app.http,
            SEND_TO,
            {"input": {"recipientId": bob.id, "body": f"hi {n}", "clientMessageId": f"c{n}"}},
            token=alice.token,
        )
        for n in range(4)
    ]
    # validated twice (strawberry), then served from the cache without strawberry
    assert strawberry_runs.count(SEND_TO) == 2
    assert [a["data"]["sendMessage"]["seq"] for a in answers] == [1, 2, 3, 4]
    assert all("errors" not in a for a in answers)


async def test_errors_on_the_fast_path_carry_the_same_codes(
    app: RunningApp, strawberry_runs: list[str | None]
) -> None:
    alice = await register(app.http)
    # a conversation alice is not in, and a variable of the wrong type
    cases: list[dict[str, Any]] = [
        {
            "input": {
                "conversationId": missing(Kind.CONVERSATION),
                "body": "x",
                "clientMessageId": "c",
            }
        },
        {"input": {"conversationId": missing(Kind.CONVERSATION), "body": 5, "clientMessageId": []}},
        {
            "input": {
                "recipientId": alice.id,
                "conversationId": missing(Kind.CONVERSATION),
                "body": "x",
            }
        },
    ]
    for variables in cases:
        answers = [await graphql(app.http, SEND, variables, token=alice.token) for _ in range(4)]
        # the first two through strawberry, the last two on the fast path: all alike
        assert all(_without_ids(a) == _without_ids(answers[0]) for a in answers)
        codes = [error["extensions"]["code"] for error in answers[0]["errors"]]
        assert codes and "INTERNAL_SERVER_ERROR" not in codes
    assert strawberry_runs.count(SEND) == 2  # one text: validated twice, then cached


async def test_an_operation_the_fast_path_may_not_run_is_left_to_strawberry(
    app: RunningApp, strawberry_runs: list[str | None]
) -> None:
    alice = await register(app.http)
    document = "query Me { me { username } } mutation Out { logout }"
    headers = {"Authorization": f"Bearer {alice.token}", "Accept": "application/json"}

    async def post(operation_name: str) -> dict[str, Any]:
        response = await app.http.post(
            "/graphql", json={"query": document, "operationName": operation_name}, headers=headers
        )
        return dict(response.json())

    for _ in range(3):
        assert (await post("Me"))["data"] == {"me": {"username": alice.username}}
    assert strawberry_runs.count(document) == 2  # validated twice, then the fast path
    # the validated document's mutation over GET: refused as before
    response = await app.http.get(
        "/graphql", params={"query": document, "operationName": "Out"}, headers=headers
    )
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    # an operation name it does not define: a request error
    body = await post("Other")
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # no name where it defines two: the first runs, on the fast path as strawberry runs it
    assert (await post(""))["data"] == {"me": {"username": alice.username}}
    assert strawberry_runs.count(document) == 4
