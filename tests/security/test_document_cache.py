"""Only documents that come back are kept parsed: one-off documents never grow the heap.

A cache that kept every document let two clients looping fresh adversarial documents fill it
with 1.8 million syntax-tree objects, and each full garbage collection then paused the server
for up to 0.8 s (bench/validation.py). These tests pin the admission rules of
chatr.schema.document_cache and that the schema really serves repeated texts from it.
"""

from __future__ import annotations

import random

import pytest
from graphql import parse

from bench.adversarial import FAMILIES
from chatr.schema import build_schema
from chatr.schema import validation as schema_validation
from chatr.schema.document_cache import DocumentCache
from chatr.settings import Settings


def _query(n: int) -> str:
    return f"query Q{n} {{ __typename }}"


def test_a_document_seen_once_is_not_kept() -> None:
    cache = DocumentCache()
    cache.validated(_query(1), parse(_query(1)))
    assert cache.get(_query(1)) is None
    assert len(cache) == 0


def test_a_document_validated_twice_is_kept() -> None:
    cache = DocumentCache()
    document = parse(_query(1))
    cache.validated(_query(1), document)
    cache.validated(_query(1), document)
    assert cache.get(_query(1)) is document


def test_a_large_document_is_never_kept() -> None:
    cache = DocumentCache(max_document_bytes=100)
    text = "query Big { " + "__typename " * 20 + "}"
    for _ in range(3):
        cache.validated(text, parse(text))
    assert cache.get(text) is None


def test_the_least_recently_used_documents_go_when_the_byte_budget_is_spent() -> None:
    texts = [_query(n) for n in range(10)]
    cache = DocumentCache(max_total_bytes=len(texts[0]) * 3)
    for text in texts[:3]:
        cache.validated(text, parse(text))
        cache.validated(text, parse(text))
    assert cache.get(texts[0]) is not None  # now the most recently used
    cache.validated(texts[3], parse(texts[3]))
    cache.validated(texts[3], parse(texts[3]))
    assert [cache.get(text) is not None for text in texts[:4]] == [True, False, True, True]
    assert cache.total_bytes <= len(texts[0]) * 3


def test_the_memory_of_one_off_texts_is_bounded() -> None:
    cache = DocumentCache(max_seen_once=5)
    for n in range(6):  # the first one is forgotten when the sixth arrives
        cache.validated(_query(n), parse(_query(n)))
    cache.validated(_query(0), parse(_query(0)))
    assert cache.get(_query(0)) is None
    cache.validated(_query(5), parse(_query(5)))
    assert cache.get(_query(5)) is not None


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the schema parses from now on (the cache's misses), in order."""
    texts: list[str] = []
    real_parse = schema_validation.parse

    def counting_parse(source: str, **options: object) -> object:
        texts.append(source)
        return real_parse(source, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(schema_validation, "parse", counting_parse)
    return texts


async def test_a_repeated_query_is_parsed_twice_and_then_served_from_the_cache(
    parsed: list[str],
) -> None:
    schema = build_schema(Settings())
    for _ in range(5):
        result = await schema.execute("query Again { __typename }")
        assert result.errors is None and result.data == {"__typename": "Query"}
    assert len(parsed) == 2


async def test_refused_documents_are_never_kept_however_often_they_come(
    parsed: list[str],
) -> None:
    schema = build_schema(Settings())
    rnd = random.Random(3)
    refused = [FAMILIES["repeated fields"](330, rnd) for _ in range(3)]
    for text in refused + refused + refused:
        result = await schema.execute(text)
        assert result.errors and "too" in result.errors[0].message.lower()
    # each refused text was parsed every time it came
    assert [parsed.count(text) for text in refused] == [3, 3, 3]
