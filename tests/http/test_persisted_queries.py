"""Automatic persisted queries (Apollo's protocol) over POST and GET, shared by instances
through Redis (memory on the embedded default), and the trusted-documents mode."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from chatr.http.persisted import MemoryDocumentStore, load_trusted_documents
from chatr.settings import Settings
from tests.support.api import ME, register
from tests.support.servers import RunningApp, in_process_app

QUERY = "query Typename { __typename }"


def _sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _extensions(document: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": _sha(document)}}


@pytest.mark.smoke
async def test_an_unknown_hash_is_persisted_query_not_found_then_the_resend_is_stored(
    app: RunningApp,
) -> None:
    first = await app.http.post("/graphql", json={"extensions": _extensions(QUERY)})
    assert first.status_code == 200
    (error,) = first.json()["errors"]
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

    resent = await app.http.post(
        "/graphql", json={"query": QUERY, "extensions": _extensions(QUERY)}
    )
    assert resent.json() == {"data": {"__typename": "Query"}}

    by_hash = await app.http.post("/graphql", json={"extensions": _extensions(QUERY)})
    assert by_hash.json() == {"data": {"__typename": "Query"}}


async def test_a_stored_query_runs_by_hash_over_get_with_variables(app: RunningApp) -> None:
    alice = await register(app.http)
    headers = {"Authorization": f"Bearer {alice.token}"}
    await app.http.post("/graphql", json={"query": ME, "extensions": _extensions(ME)})
    response = await app.http.get(
        "/graphql", params={"extensions": json.dumps(_extensions(ME))}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["me"]["username"] == alice.username


async def test_a_hash_that_does_not_match_the_document_is_refused_and_not_stored(
    app: RunningApp,
) -> None:
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": _sha("{ me { id } }")}}
    response = await app.http.post("/graphql", json={"query": QUERY, "extensions": wrong})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    again = await app.http.post("/graphql", json={"extensions": wrong})
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": _sha(QUERY)}, {"version": 1}, {"version": 1, "sha256Hash": 7}],
    ids=["version_2", "no_hash", "hash_not_a_string"],
)
async def test_a_malformed_persisted_query_extension_is_a_bad_request(
    app: RunningApp, persisted: dict[str, object]
) -> None:
    response = await app.http.post("/graphql", json={"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_query_stored_through_one_instance_runs_by_hash_on_another(
    settings: Settings, database: str, redis_url: str
) -> None:
    document = "query Other { __typename }"
    async with in_process_app(settings) as first, in_process_app(settings) as second:
        await first.http.post(
            "/graphql", json={"query": document, "extensions": _extensions(document)}
        )
        response = await second.http.post("/graphql", json={"extensions": _extensions(document)})
    assert response.json() == {"data": {"__typename": "Query"}}
    client = aioredis.from_url(redis_url)
    try:
        key = f"{settings.channel_prefix}:apq:{_sha(document)}"
        ttl = await client.ttl(key)
        assert 0 < ttl <= settings.persisted_query_ttl_seconds
    finally:
        await client.delete(f"{settings.channel_prefix}:apq:{_sha(document)}")
        await client.aclose()


async def test_the_memory_store_forgets_the_least_recently_used_documents_first() -> None:
    store = MemoryDocumentStore(max_bytes=30)
    await store.put("a", "x" * 10)
    await store.put("b", "y" * 10)
    await store.get("a")  # a is now the most recently used
    await store.put("c", "z" * 15)
    assert await store.get("a") == "x" * 10
    assert await store.get("b") is None
    assert await store.get("c") == "z" * 15


# Trusted documents -------------------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps({_sha(QUERY): QUERY, _sha(ME): ME}))
    return path


@pytest.fixture
async def trusted_app(
    settings: Settings, database: str, manifest: Path
) -> AsyncIterator[RunningApp]:
    configured = settings.with_overrides(trusted_documents=manifest, environment="production")
    async with in_process_app(configured) as running:
        yield running


async def test_trusted_mode_runs_a_registered_document_by_hash(trusted_app: RunningApp) -> None:
    response = await trusted_app.http.post("/graphql", json={"extensions": _extensions(QUERY)})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_trusted_mode_runs_a_registered_document_sent_in_full(
    trusted_app: RunningApp,
) -> None:
    response = await trusted_app.http.post("/graphql", json={"query": QUERY})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_trusted_mode_refuses_any_other_document_with_a_code(
    trusted_app: RunningApp,
) -> None:
    other = "{ __schema { types { name } } }"
    for body in ({"query": other}, {"query": other, "extensions": _extensions(other)}):
        response = await trusted_app.http.post("/graphql", json=body)
        assert response.status_code == 403
        assert response.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
    unknown = await trusted_app.http.post("/graphql", json={"extensions": _extensions(other)})
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


def test_an_apollo_manifest_loads_and_a_wrong_hash_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    operations = [{"id": _sha(QUERY), "body": QUERY, "name": "Typename", "type": "query"}]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    assert load_trusted_documents(path) == {_sha(QUERY): QUERY}
    path.write_text(json.dumps({_sha(ME): QUERY}))
    with pytest.raises(ValueError, match="sha256"):
        load_trusted_documents(path)
