"""The GraphQL-over-HTTP spec's MUST and SHOULD rules at /graphql: media types and their
status codes, GET parameters, content types, and every transport-level refusal as a GraphQL
JSON error with `extensions.code` (never text/plain, never a 500)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.api import ME, register
from tests.support.servers import RunningApp

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def _media(response_content_type: str) -> str:
    return response_content_type.split(";")[0].strip()


def _code(body: dict[str, Any]) -> str:
    (error,) = body["errors"]
    return str(error["extensions"]["code"])


@pytest.mark.smoke
async def test_a_query_accepting_graphql_response_json_is_answered_in_that_type(
    app: RunningApp,
) -> None:
    response = await app.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 200
    assert _media(response.headers["content-type"]) == GRAPHQL_RESPONSE
    assert "charset=utf-8" in response.headers["content-type"]
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (JSON, JSON),
        ("*/*", JSON),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (None, GRAPHQL_RESPONSE),  # the spec's default since 2025-01-01
    ],
)
async def test_the_answer_uses_the_most_preferred_accepted_media_type(
    app: RunningApp, accept: str | None, expected: str
) -> None:
    headers = {"Content-Type": JSON}
    if accept is not None:
        headers["Accept"] = accept
    request = app.http.build_request(
        "POST", "/graphql", content=json.dumps({"query": "{ __typename }"}), headers=headers
    )
    if accept is None:
        del request.headers["accept"]
    response = await app.http.send(request)
    assert response.status_code == 200
    assert _media(response.headers["content-type"]) == expected


async def test_an_accept_header_naming_no_supported_type_is_406_not_acceptable(
    app: RunningApp,
) -> None:
    response = await app.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Accept": "text/xml"}
    )
    assert response.status_code == 406
    assert _code(response.json()) == "NOT_ACCEPTABLE"


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("{", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_a_request_error_is_400_without_data_in_graphql_response_json_and_200_in_json(
    app: RunningApp, document: str, code: str
) -> None:
    strict = await app.http.post(
        "/graphql", json={"query": document}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert strict.status_code == 400
    assert "data" not in strict.json()
    assert _code(strict.json()) == code
    legacy = await app.http.post("/graphql", json={"query": document}, headers={"Accept": JSON})
    assert legacy.status_code == 200
    assert _code(legacy.json()) == code


async def test_a_variable_that_cannot_be_coerced_is_a_request_error(app: RunningApp) -> None:
    response = await app.http.post(
        "/graphql",
        json={
            "query": "query($n: Int) { conversations(first: $n) { edges { cursor } } }",
            "variables": {"n": "ten"},
        },
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    assert _code(response.json()) == "BAD_USER_INPUT"


async def test_an_operation_the_document_lacks_is_400_in_graphql_response_json(
    app: RunningApp,
) -> None:
    response = await app.http.post(
        "/graphql",
        json={"query": ME, "operationName": "Nope"},
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    assert _code(response.json()) == "BAD_REQUEST"


async def test_a_field_error_is_answered_200_with_data_in_both_types(
    app: RunningApp,
) -> None:
    """The operation ran: `data` is there (null here, since `mySessions` is non-null), so
    even application/graphql-response+json answers 200."""
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await app.http.post(
            "/graphql",
            json={"query": "{ __typename mySessions { id } }"},
            headers={"Accept": accept},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["data"] is None
        assert _code(body) == "UNAUTHENTICATED"


@pytest.mark.smoke
async def test_a_query_runs_over_get_with_json_encoded_variables(app: RunningApp) -> None:
    alice = await register(app.http)
    response = await app.http.get(
        "/graphql",
        params={
            "query": (
                "query Me($u: String!) "
                "{ me { username } usernameAvailable(username: $u) { available } }"
            ),
            "operationName": "Me",
            "variables": json.dumps({"u": "someone-else-entirely"}),
        },
        headers={"Authorization": f"Bearer {alice.token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["username"] == alice.username


async def test_an_empty_operation_name_over_get_means_none(app: RunningApp) -> None:
    response = await app.http.get(
        "/graphql", params={"query": "{ __typename }", "operationName": ""}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


async def test_a_mutation_over_get_is_405_with_allow_post_and_does_not_run(
    app: RunningApp,
) -> None:
    alice = await register(app.http)
    response = await app.http.get(
        "/graphql",
        params={"query": "mutation { logout }"},
        headers={"Authorization": f"Bearer {alice.token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert _code(response.json()) == "METHOD_NOT_ALLOWED"
    still_signed_in = await alice.call(ME)
    assert still_signed_in["me"]["username"] == alice.username


async def test_a_subscription_over_get_is_a_bad_request(app: RunningApp) -> None:
    response = await app.http.get(
        "/graphql", params={"query": "subscription { myEvents { cursor } }"}
    )
    assert response.status_code == 400
    assert _code(response.json()) == "BAD_REQUEST"
    assert "WebSocket" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"query": "{ __typename }", "variables": "{not json"},
        {"query": "{ __typename }", "variables": "[1]"},
        {"query": "{ __typename }", "extensions": "7"},
    ],
    ids=["no_query", "variables_not_json", "variables_not_an_object", "extensions_not_object"],
)
async def test_malformed_get_parameters_are_a_coded_400(
    app: RunningApp, params: dict[str, str]
) -> None:
    response = await app.http.get("/graphql", params=params, headers={"Accept": JSON})
    assert response.status_code == 400
    assert _code(response.json()) == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [
        ("text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("application/json; charset=latin-1", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (None, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
async def test_a_post_body_that_is_not_utf8_json_is_refused_with_a_code(
    app: RunningApp, content_type: str | None, status: int, code: str
) -> None:
    request = app.http.build_request("POST", "/graphql", content=b'{"query": "{ __typename }"}')
    if content_type is None:
        request.headers.pop("content-type", None)
    else:
        request.headers["content-type"] = content_type
    response = await app.http.send(request)
    assert response.status_code == status
    assert _media(response.headers["content-type"]) == JSON
    assert _code(response.json()) == code


async def test_utf8_is_assumed_when_the_charset_is_not_given(app: RunningApp) -> None:
    response = await app.http.post(
        "/graphql",
        content='{"query": "{ __type(name: \\"Run🏃\\") { name } }"}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__type": None}}


@pytest.mark.parametrize(
    ("body", "accept", "status"),
    [
        (b"", JSON, 400),
        (b"   ", GRAPHQL_RESPONSE, 400),
        (b"{not json", GRAPHQL_RESPONSE, 400),
        (b'{"qeury": "{ __typename }"}', GRAPHQL_RESPONSE, 400),
        (b'{"query": "{ __typename }", "variables": [7]}', JSON, 400),
    ],
    ids=["empty", "blank", "not_json", "no_query", "variables_a_list"],
)
async def test_a_malformed_post_is_400_bad_request_without_data(
    app: RunningApp, body: bytes, accept: str, status: int
) -> None:
    response = await app.http.post(
        "/graphql", content=body, headers={"Content-Type": JSON, "Accept": accept}
    )
    assert response.status_code == status
    assert _media(response.headers["content-type"]) == accept
    assert "data" not in response.json()
    assert _code(response.json()) == "BAD_REQUEST"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_an_unsupported_method_is_405_method_not_allowed(
    app: RunningApp, method: str
) -> None:
    response = await app.http.request(method, "/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST, OPTIONS"
    assert _code(response.json()) == "METHOD_NOT_ALLOWED"


async def test_a_body_over_the_limit_is_413_payload_too_large_even_without_a_length(
    app: RunningApp,
) -> None:
    limit = app.runtime.settings.max_request_body_bytes
    padding = b"x" * (limit + 10)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "variables": {"p": "'
        yield padding
        yield b'"}}'

    response = await app.http.post("/graphql", content=chunks(), headers={"Content-Type": JSON})
    assert response.status_code == 413
    assert _code(response.json()) == "PAYLOAD_TOO_LARGE"


async def test_graphql_is_served_under_the_root_path_the_server_mounts_it_at(
    app: RunningApp,
) -> None:
    # given the app served under /chat (a proxy's prefix, uvicorn --root-path)
    transport = httpx.ASGITransport(app=app.app, root_path="/chat")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        # when a client posts to /chat/graphql, then the GraphQL endpoint answers it
        answered = await http.post("/chat/graphql", json={"query": "{ __typename }"})
        assert answered.status_code == 200
        assert answered.json() == {"data": {"__typename": "Query"}}
        # and a path that only starts like it is not GraphQL
        elsewhere = await http.post("/chatgraphql", json={"query": "{ __typename }"})
        assert elsewhere.status_code == 404


async def test_a_trailing_slash_on_graphql_is_redirected_by_the_router(app: RunningApp) -> None:
    response = await app.http.post("/graphql/", json={"query": "{ __typename }"})

    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith("/graphql")
