"""GraphQL hardening: limits, error masking, introspection, batching, body size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatr.services import users
from chatr.settings import Settings
from tests.support.api import ME, graphql, register
from tests.support.servers import RunningApp, in_process_app


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


def _nested(depth: int) -> str:
    """A valid query of operation depth `depth`, counted as graphql-depth-limit and strawberry
    do: top-level fields are depth 0. Message.conversation provides the cycle."""
    chain = [("lastMessage", "conversation")[level % 2] for level in range(depth - 3)]
    selection = "id"
    for field in reversed(chain):
        selection = f"{field} {{ {selection} }}"
    return "{ conversations { edges { node { " + selection + " } } } }"


async def test_query_of_depth_ten_runs(app: RunningApp) -> None:
    alice = await register(app.http)
    body = await graphql(app.http, _nested(10), token=alice.token)
    assert "errors" not in body


async def test_query_of_depth_eleven_is_refused_with_a_code(app: RunningApp) -> None:
    alice = await register(app.http)
    body = await graphql(app.http, _nested(11), token=alice.token)
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_more_than_fifteen_aliases_are_refused(app: RunningApp) -> None:
    alice = await register(app.http)
    fields = " ".join(f"a{i}: me {{ id }}" for i in range(16))
    body = await graphql(app.http, "{ " + fields + " }", token=alice.token)
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_oversized_query_is_refused(app: RunningApp) -> None:
    body = await graphql(app.http, "{ me { " + "id " * 3000 + "} }")
    assert _codes(body) in (["GRAPHQL_VALIDATION_FAILED"], ["GRAPHQL_PARSE_FAILED"])


async def test_syntax_error_has_parse_failed_code(app: RunningApp) -> None:
    body = await graphql(app.http, "{ me { id ")
    assert _codes(body) == ["GRAPHQL_PARSE_FAILED"]


async def test_unknown_field_has_validation_failed_code(app: RunningApp) -> None:
    body = await graphql(app.http, "{ nope }")
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_wrongly_typed_variable_is_bad_user_input(app: RunningApp) -> None:
    body = await graphql(
        app.http,
        "query($first: Int) { conversations(first: $first) { edges { cursor } } }",
        {"first": "ten"},
    )
    assert _codes(body) == ["BAD_USER_INPUT"]


async def test_a_batch_over_the_limit_is_refused(app: RunningApp, settings: Settings) -> None:
    batch = [{"query": ME}] * (settings.max_batch + 1)
    response = await app.http.post("/graphql", json=batch)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_request_body_over_the_limit_gets_413(app: RunningApp, settings: Settings) -> None:
    padding = "x" * (settings.max_request_body_bytes + 1)
    response = await app.http.post("/graphql", json={"query": ME, "variables": {"p": padding}})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_get_requests_cannot_run_mutations(app: RunningApp) -> None:
    response = await app.http.get("/graphql", params={"query": "mutation { logout }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_unexpected_errors_are_masked_without_internals(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    monkeypatch.setattr(users, "list_by_ids", explode)
    alice = await register(app.http)
    body = await graphql(app.http, ME, token=alice.token)
    assert _codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "hunter2" not in str(body) and "Traceback" not in str(body)


@pytest.fixture
async def production_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings.with_overrides(environment="production")) as running:
        yield running


async def test_introspection_and_suggestions_are_off_in_production(
    production_app: RunningApp,
) -> None:
    introspection = await graphql(production_app.http, "{ __schema { types { name } } }")
    assert set(_codes(introspection)) == {"GRAPHQL_VALIDATION_FAILED"}
    typo = await graphql(production_app.http, "{ mee { id } }")
    assert "Did you mean" not in typo["errors"][0]["message"]
    ide = await production_app.http.get("/graphql", headers={"Accept": "text/html"})
    assert "graphiql" not in ide.text.lower()


async def test_introspection_is_on_in_development(app: RunningApp) -> None:
    body = await graphql(app.http, "{ __schema { queryType { name } } }")
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
