"""No document under the parse limits can hold an instance's event loop while it is validated.

Each adversarial family (bench/adversarial.py) is grown to the largest document the token and
body limits let through, then sent anonymously: it is either refused with a coded error or
valid, and checking it takes well under half a second (the bound is generous so the test cannot
flake on a busy machine; bench/validation.py measures the real figures, ~10-20 ms). Before the
bounds, the first two families took seconds and nested fragments did not finish.
"""

from __future__ import annotations

import random
import time

import pytest
from graphql import parse

from bench.adversarial import FAMILIES, Limits, largest, repeated_fields
from chatr.schema import build_schema
from chatr.schema.validation import TOO_COMPLEX, validator
from chatr.settings import Settings
from tests.support.api import graphql, register
from tests.support.servers import RunningApp

#: Codes an adversarial document may be answered with (a valid one may also fail execution).
REFUSALS = {"GRAPHQL_VALIDATION_FAILED", "UNAUTHENTICATED", "BAD_USER_INPUT", "BAD_REQUEST"}
GENEROUS_SECONDS = 0.5


def _limits(settings: Settings) -> Limits:
    return Limits(settings.max_query_tokens, settings.max_request_body_bytes)


def _adversarial(family: str, settings: Settings, seed: int = 7) -> str:
    builder = FAMILIES[family]
    return builder(largest(builder, _limits(settings)), random.Random(seed))


@pytest.mark.parametrize("family", FAMILIES)
async def test_each_adversarial_document_is_refused_with_a_code_or_runs(
    app: RunningApp, settings: Settings, family: str
) -> None:
    response = await app.http.post("/graphql", json={"query": _adversarial(family, settings)})
    # (400: a subscription document, which only a WebSocket may run)
    assert response.status_code in (200, 400), response.text[:300]
    body = response.json()
    codes = {error["extensions"]["code"] for error in body.get("errors", [])}
    assert codes <= REFUSALS, body["errors"][:3]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_adversarial_document_is_checked_quickly(settings: Settings, family: str) -> None:
    check = validator(build_schema(settings)._schema, settings)
    document = parse(_adversarial(family, settings), max_tokens=settings.max_query_tokens)
    started = time.perf_counter()
    check(document)
    assert time.perf_counter() - started < GENEROUS_SECONDS


async def test_three_hundred_repeated_fields_are_refused_as_too_complex(
    app: RunningApp,
) -> None:
    # the document of the report: ~330 `me { a b }` without aliases, ~7 KB
    document = repeated_fields(330, random.Random(1))
    started = time.perf_counter()
    body = await graphql(app.http, document)
    elapsed = time.perf_counter() - started
    assert [error["extensions"]["code"] for error in body["errors"]] == [
        "GRAPHQL_VALIDATION_FAILED"
    ]
    assert body["errors"][0]["message"] == TOO_COMPLEX
    assert elapsed < GENEROUS_SECONDS


async def test_fragments_that_expand_past_the_selection_limit_are_refused(
    app: RunningApp, settings: Settings
) -> None:
    # four spreads of the next fragment, nine deep: 1 KB that expands to ~260,000 fields
    body = await graphql(app.http, FAMILIES["nested fragments"](9, random.Random(1)))
    assert [error["extensions"]["code"] for error in body["errors"]] == [
        "GRAPHQL_VALIDATION_FAILED"
    ]
    assert f"more than {settings.max_selections} fields" in body["errors"][0]["message"]


async def test_a_client_query_with_overlapping_fragments_still_runs(app: RunningApp) -> None:
    # the shape real clients send: colocated fragments repeating `id` and `__typename`
    alice = await register(app.http)
    fragments = " ".join(
        f"fragment Part{i} on User {{ id __typename username displayName }}" for i in range(12)
    )
    spreads = " ".join(f"...Part{i}" for i in range(12))
    document = (
        f"query Me {{ me {{ id __typename {spreads} }} "
        f"conversations(first: 5) {{ edges {{ cursor node {{ id __typename }} }} "
        f"pageInfo {{ hasNextPage }} }} }} {fragments}"
    )
    body = await graphql(app.http, document, token=alice.token)
    assert "errors" not in body, body["errors"]
    assert body["data"]["me"]["username"] == alice.username
