"""CORS at /graphql from CHATR_ALLOWED_ORIGINS (the same setting that opens the WebSocket):
an allowed page may send `Authorization` and JSON after a preflight and read the answer; no
credentials are involved (bearer tokens); any other origin gets no Access-Control header."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatr.settings import Settings
from tests.support.api import ME, register
from tests.support.servers import RunningApp, in_process_app

ALLOWED = "http://app.example.test:5173"


@pytest.fixture
async def cors_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings.with_overrides(allowed_origins=(ALLOWED,))) as running:
        yield running


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_preflight_from_an_allowed_origin_allows_authorization_and_json(
    cors_app: RunningApp,
) -> None:
    response = await cors_app.http.options("/graphql", headers=_preflight(ALLOWED))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers
    assert "Origin" in response.headers["vary"]


async def test_a_preflight_from_another_origin_is_refused_with_a_code_and_no_cors_headers(
    cors_app: RunningApp,
) -> None:
    response = await cors_app.http.options("/graphql", headers=_preflight("http://evil.test"))
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_allowed_origin_reads_an_authenticated_answer(cors_app: RunningApp) -> None:
    alice = await register(cors_app.http)
    response = await cors_app.http.post(
        "/graphql",
        json={"query": ME},
        headers={"Origin": ALLOWED, "Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.json()["data"]["me"]["username"] == alice.username


async def test_refusals_carry_the_cors_headers_so_the_page_can_read_the_code(
    cors_app: RunningApp,
) -> None:
    response = await cors_app.http.post(
        "/graphql",
        content=b"{nope",
        headers={"Origin": ALLOWED, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == ALLOWED


async def test_an_answer_to_another_origin_carries_no_allow_origin(cors_app: RunningApp) -> None:
    response = await cors_app.http.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Origin": "http://evil.test"}
    )
    assert "access-control-allow-origin" not in response.headers


async def test_without_allowed_origins_no_origin_is_allowed(app: RunningApp) -> None:
    response = await app.http.options("/graphql", headers=_preflight(ALLOWED))
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


async def test_a_plain_options_request_lists_the_methods(app: RunningApp) -> None:
    response = await app.http.options("/graphql")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, POST, OPTIONS"
