"""Batched operations (a JSON array, as Apollo's BatchHttpLink sends): at most
CHATR_MAX_BATCH, each answered in its place and counted as if it had been sent alone."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from chatr.settings import Settings
from tests.support.api import ME, PASSWORD, REGISTER, register
from tests.support.servers import RunningApp, in_process_app


@pytest.mark.smoke
async def test_a_batch_is_answered_in_order_with_each_operations_own_result(
    app: RunningApp,
) -> None:
    alice = await register(app.http)
    response = await app.http.post(
        "/graphql",
        json=[
            {"query": ME},
            {"query": "{ nope }"},
            {"query": "query Q { __typename }", "operationName": "Q"},
        ],
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 200
    first, second, third = response.json()
    assert first["data"]["me"]["username"] == alice.username
    assert second["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert third == {"data": {"__typename": "Query"}}


async def test_a_batch_of_one_is_answered_as_an_array(app: RunningApp) -> None:
    response = await app.http.post("/graphql", json=[{"query": "{ __typename }"}])
    assert response.json() == [{"data": {"__typename": "Query"}}]


async def test_a_batch_over_the_limit_is_refused_whole_with_the_limit(
    settings: Settings, database: str
) -> None:
    async with in_process_app(settings.with_overrides(max_batch=3)) as small:
        response = await small.http.post("/graphql", json=[{"query": "{ __typename }"}] * 4)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "maxBatch": 3}


async def test_query_limits_apply_to_each_operation_of_a_batch_alone(
    app: RunningApp, settings: Settings
) -> None:
    """Ten aliases each stay under the alias limit (15) although the batch holds 30."""
    aliased = "{ " + " ".join(f"a{i}: __typename" for i in range(10)) + " }"
    too_many = "{ " + " ".join(f"a{i}: __typename" for i in range(settings.max_aliases + 1)) + " }"
    response = await app.http.post(
        "/graphql", json=[{"query": aliased}, {"query": aliased}, {"query": too_many}]
    )
    first, second, third = response.json()
    assert len(first["data"]) == 10
    assert len(second["data"]) == 10
    assert third["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.fixture
async def limited_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings.with_overrides(rate_limits=True)) as running:
        yield running


async def test_rate_limits_count_each_operation_of_a_batch(limited_app: RunningApp) -> None:
    """Registration allows 5 per address per 15 minutes: the sixth of one batch is refused."""
    tag = secrets.token_hex(4)
    operations = [
        {
            "query": REGISTER,
            "variables": {
                "input": {
                    "username": f"b{i}_{tag}",
                    "email": f"b{i}_{tag}@example.test",
                    "password": PASSWORD,
                }
            },
        }
        for i in range(6)
    ]
    response = await limited_app.http.post("/graphql", json=operations)
    results = response.json()
    assert [result.get("errors") is None for result in results] == [True] * 5 + [False]
    assert results[5]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
