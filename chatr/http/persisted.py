"""Automatic persisted queries (Apollo's APQ protocol) and trusted documents.

APQ: a client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the
document; if the hash is unknown the answer is `PERSISTED_QUERY_NOT_FOUND` (message
"PersistedQueryNotFound", which Apollo Client looks for) and the client sends it again with
the document, which is checked against the hash and stored. Stored in Redis under the channel
prefix with a TTL renewed on use, so every instance knows every hash; in a bounded LRU in
memory on the embedded default. Redis being down only costs the client a resend.

Trusted documents (`CHATR_TRUSTED_DOCUMENTS`): a manifest of pre-registered documents; then
only those run, named by hash or sent in full, and anything else is `DOCUMENT_NOT_TRUSTED`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatr.errors import DocumentNotTrusted, MalformedRequest, PersistedQueryNotFound
from chatr.http.params import OperationRequest

log = logging.getLogger("chatr.http.persisted")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class DocumentStore(Protocol):
    async def get(self, digest: str) -> str | None: ...

    async def put(self, digest: str, document: str) -> None: ...

    async def close(self) -> None: ...


class MemoryDocumentStore:
    """An LRU bounded by the total size of its documents (each is at most a request body)."""

    def __init__(self, *, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    async def get(self, digest: str) -> str | None:
        document = self._documents.get(digest)
        if document is not None:
            self._documents.move_to_end(digest)
        return document

    async def put(self, digest: str, document: str) -> None:
        if digest in self._documents:
            self._documents.move_to_end(digest)
            return
        self._documents[digest] = document
        self._size += len(document)
        while self._size > self.max_bytes and self._documents:
            _, evicted = self._documents.popitem(last=False)
            self._size -= len(evicted)

    async def close(self) -> None:
        self._documents.clear()


class RedisDocumentStore:
    """Documents in Redis with a TTL renewed on each use (`GETEX`). An unreachable Redis is
    a miss (the client resends the document), logged once per outage."""

    def __init__(self, url: str, *, prefix: str, ttl_seconds: int) -> None:
        self._redis = aioredis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._prefix = f"{prefix}:apq:"
        self._ttl = ttl_seconds
        self._failing = False

    async def get(self, digest: str) -> str | None:
        try:
            value = await self._redis.getex(self._prefix + digest, ex=self._ttl)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        self._failing = False
        return None if value is None else bytes(value).decode()

    async def put(self, digest: str, document: str) -> None:
        try:
            await self._redis.set(self._prefix + digest, document, ex=self._ttl)
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._failing = False

    def _failed(self, error: BaseException) -> None:
        if not self._failing:
            log.warning("persisted queries: Redis unavailable (%s); clients resend", error)
        self._failing = True

    async def close(self) -> None:
        await self._redis.aclose()


def create_document_store(broker_url: str, *, prefix: str, ttl_seconds: int) -> DocumentStore:
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisDocumentStore(broker_url, prefix=prefix, ttl_seconds=ttl_seconds)
    return MemoryDocumentStore()


def load_trusted_documents(path: Path) -> dict[str, str]:
    """Hash → document from a manifest: either a JSON object `{"<sha256>": "<document>"}` or
    Apollo's persisted-query manifest (`{"format": "apollo-persisted-query-manifest",
    "operations": [{"id", "body"}]}`). A hash that does not match its document stops the
    server: a typo must not silently refuse (or admit) documents."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(manifest, dict) and isinstance(manifest.get("operations"), list):
        pairs = [(entry["id"], entry["body"]) for entry in manifest["operations"]]
    elif isinstance(manifest, dict):
        pairs = list(manifest.items())
    else:
        raise ValueError(f"CHATR_TRUSTED_DOCUMENTS: {path} is not a manifest object")
    documents = {}
    for digest, document in pairs:
        if not isinstance(document, str) or document_hash(document) != digest:
            raise ValueError(
                f"CHATR_TRUSTED_DOCUMENTS: {path}: {digest!r} is not the sha256 of its document"
            )
        documents[digest] = document
    return documents


def untrusted(trusted: Mapping[str, str] | None, digest: str) -> DocumentNotTrusted | None:
    """The refusal of a document outside the trusted manifest (over HTTP or a WebSocket),
    or None when it is listed or the mode is off."""
    if trusted is None or digest in trusted:
        return None
    return DocumentNotTrusted(
        "This server runs only pre-registered documents; this one is not registered."
    )


class PersistedQueries:
    """Turns an operation's parameters into the document to run."""

    def __init__(self, store: DocumentStore, *, trusted: dict[str, str] | None = None) -> None:
        self.store = store
        self.trusted = trusted

    async def document(self, operation: OperationRequest) -> str:
        persisted = (operation.extensions or {}).get("persistedQuery")
        if persisted is None:
            if operation.query is None:
                raise MalformedRequest("No GraphQL query found in the request.")
            if self.trusted is not None:  # (no hashing otherwise: it is per request)
                self._check_trusted(document_hash(operation.query))
            return operation.query
        digest = _requested_hash(persisted)
        if operation.query is not None:
            if document_hash(operation.query) != digest:
                raise MalformedRequest("provided sha does not match query")
            self._check_trusted(digest)
            if self.trusted is None:
                await self.store.put(digest, operation.query)
            return operation.query
        if self.trusted is not None:
            found = self.trusted.get(digest)
        else:
            found = await self.store.get(digest)
        if found is None:
            raise PersistedQueryNotFound()
        return found

    def _check_trusted(self, digest: str) -> None:
        refused = untrusted(self.trusted, digest)
        if refused is not None:
            raise refused

    async def close(self) -> None:
        await self.store.close()


def _requested_hash(persisted: object) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise MalformedRequest("Unsupported persisted query version: send version 1.")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise MalformedRequest("persistedQuery.sha256Hash must be a lowercase hex SHA-256.")
    return digest
